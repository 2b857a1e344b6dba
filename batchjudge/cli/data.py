"""``batchjudge data ...``: build FIB, USB, synthetic and sample datasets; check labels.

Thin wrappers over :mod:`batchjudge.datasets`: parse options, call the library, render a
summary and any label warnings. Library errors become one red line and exit 2. Each
builder is imported inside its command, so ``--help`` stays fast and the generator's and
FIB's heavier dependencies load only when used.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from batchjudge.cli._console import err_console, fail, out_console
from batchjudge.cli._options import flag
from batchjudge.errors import BatchJudgeError, InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from batchjudge.datasets.sanity import SanityWarning

__all__ = ["register"]

data_app = typer.Typer(
    name="data",
    help="Build datasets (FIB, USB, synthetic, the shipped sample, perturbation twins) and check their labels.",
    no_args_is_help=True,
)
_err = err_console


def _fail(exc: BatchJudgeError) -> typer.Exit:
    return fail(str(exc))


def _render_warnings(found: list[SanityWarning]) -> None:
    for warning in found:
        line = escape(f"[{warning.code}] {warning.message}")
        _err.print(f"[yellow]warning[/] {line}", highlight=False, soft_wrap=True)


def _write_all(tables: dict[str, pa.Table], out: Path) -> None:
    """Write each table as ``out/<name>.parquet``, print a summary, then check the labels."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from rich.table import Table

    from batchjudge.datasets.io import write_dataset
    from batchjudge.datasets.sanity import check_labels

    summary = Table("file", "rows", "consistent", "inconsistent", "documents")
    for name, table in tables.items():
        path = write_dataset(table, out / f"{name}.parquet")
        consistent = pc.sum(table.column("target")).as_py() or 0
        documents = pc.count_distinct(table.column("doc_id")).as_py()
        summary.add_row(str(path), str(table.num_rows), str(consistent), str(table.num_rows - consistent), str(documents))
    out_console().print(summary)
    _render_warnings(check_labels(pa.concat_tables(tables.values(), promote_options="default")))


@data_app.command("fib")
def fib_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for fib-<part>-<split>.parquet.")],
    source: Annotated[str, typer.Option(help="Folder of raw FIB files (xsum/, cnn_dm/), or 'hf' for the Hugging Face hub.")] = "hf",
    part: Annotated[list[str] | None, typer.Option(help="FIB part(s) to build: xsum, cnn_dm (default: all found).")] = None,
) -> None:
    """Build FIB train/val exactly as the cookbook did (reproduces fib-train/fib-val.jsonl)."""
    from batchjudge.datasets.fib import FIB_PARTS, build_fib

    try:
        tables = build_fib("hf" if source == "hf" else Path(source), parts=part or FIB_PARTS)
        _write_all(tables, out)
    except BatchJudgeError as exc:
        raise _fail(exc) from None


@data_app.command("usb")
def usb_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for usb-<split>.parquet.")],
    source: Annotated[list[Path], typer.Option(help="The cookbook's data folder, USB's factuality_classification/ folder, or USB files; repeatable.")],
) -> None:
    """Build USB, repairing the cookbook copy's all-consistent labels from its row pairs."""
    from batchjudge.datasets.usb import UsbLabelsRepaired, build_usb

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UsbLabelsRepaired)  # rendered below from the reports
            tables, reports = build_usb(source)
        for report in reports:
            if report.repaired or report.single_class_unrepaired:
                _err.print(f"[bold yellow]warning:[/] {escape(report.message)}", highlight=False, soft_wrap=True)
        _write_all(tables, out)
    except BatchJudgeError as exc:
        raise _fail(exc) from None


@data_app.command("synth")
def synth_command(
    rows: Annotated[int, typer.Option(help="Rows to generate.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for part-NNNNN.parquet shards.")],
    shards: Annotated[int, typer.Option(help="Number of Parquet shards.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same rows.")] = 0,
) -> None:
    """Generate deterministic synthetic (document, summary, target) rows for scale tests."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from batchjudge.datasets.synth import write_synth

    bar = Progress(
        TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=_err, transient=True,
    )  # fmt: skip
    task = bar.add_task("synth", total=rows)
    try:
        with bar:
            paths = write_synth(
                out, rows=rows, shards=shards, seed=seed,
                progress=lambda written: bar.update(task, completed=written),
            )  # fmt: skip
    except BatchJudgeError as exc:
        raise _fail(exc) from None
    out_console().print(f"wrote {rows} rows in {len(paths)} shard(s) under {out}", highlight=False)


@data_app.command("sample")
def sample_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for sample.parquet.")],
) -> None:
    """Write the project's own labelled sample (about 100 pairs) as Parquet."""
    from batchjudge.datasets.sample import load_sample

    try:
        _write_all({"sample": load_sample()}, out)
    except BatchJudgeError as exc:
        raise _fail(exc) from None


@data_app.command("perturb")
def perturb_command(
    inputs: Annotated[list[Path], typer.Argument(help="Dataset files (Parquet, cookbook JSONL/CSV) or folders of Parquet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <input>-perturbed.parquet.")],
    kinds: Annotated[str | None, typer.Option(help="Comma-separated kinds (default all): entity_swap, number_swap, date_swap, pronoun_swap, negation.")] = None,
    sentences: Annotated[int, typer.Option(help="Also use up to N sentences of each document as claims (FactCC's way).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same twins.")] = 0,
) -> None:
    """Make inconsistent twins of the consistent summaries by rule, each recording its kind and pair."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from rich.table import Table

    from batchjudge.datasets.io import write_dataset
    from batchjudge.datasets.perturb import KINDS, perturb_table

    chosen = KINDS if kinds is None else tuple(k.strip() for k in kinds.split(",") if k.strip())
    try:
        files = _expand(inputs)
        table = pa.concat_tables([_dataset(path) for path in files], promote_options="default")
        result = perturb_table(table, kinds=chosen, seed=seed, sentences=sentences)
        if result.num_rows == 0:
            raise InputError(f"{', '.join(map(str, inputs))}: no consistent summary offers a fact to change")
        path = write_dataset(result, out / f"{files[0].stem}-perturbed.parquet")
    except BatchJudgeError as exc:
        raise _fail(exc) from None
    summary = Table("kind", "rows")
    for entry in pc.value_counts(result.column("kind")).to_pylist():
        summary.add_row(str(entry["values"]), str(entry["counts"]))
    out_console().print(summary)
    out_console().print(f"wrote {result.num_rows} rows to {path}", highlight=False)


def _dataset(path: Path) -> pa.Table:
    """A dataset file whole: Parquet in the dataset schema, or a cookbook JSONL/CSV file."""
    import pyarrow as pa

    return pa.Table.from_batches(list(_batches(path)))


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file; read a JSONL/CSV cookbook file whole (they are small)."""
    from batchjudge.datasets.cookbook import load_cookbook
    from batchjudge.datasets.io import iter_dataset_batches

    if path.suffix.lower() == ".parquet":
        yield from iter_dataset_batches(path)
    else:
        yield from load_cookbook(path).to_batches()


def _expand(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(path.rglob("*.parquet"))
            if not found:
                raise InputError(f"{path}: no .parquet files in this folder")
            files.extend(found)
        else:
            files.append(path)
    return files


@data_app.command("check")
def check_command(
    inputs: Annotated[list[Path], typer.Argument(help="Dataset files (Parquet, cookbook JSONL/CSV) or folders of Parquet.")],
    split_column: Annotated[str, typer.Option(help="Column naming each row's split.")] = "split",
    group_column: Annotated[str, typer.Option(help="Column naming each row's document.")] = "doc_id",
    strict: Annotated[bool, flag("strict", "Exit 1 when any warning is found.")] = False,
) -> None:
    """Check labels across INPUTs together: single class, duplicates, conflicts, split leaks."""
    from batchjudge.datasets.sanity import LabelChecker

    checker = LabelChecker(split_column=split_column, group_column=group_column)
    try:
        for path in _expand(inputs):
            for batch in _batches(path):
                checker.update(batch, origin=path.name)
    except BatchJudgeError as exc:
        raise _fail(exc) from None
    found = checker.finish()
    _render_warnings(found)
    if not found:
        out_console().print(f"no label problems found in {checker.rows} rows", highlight=False)
    if found and strict:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the CLI."""
    app.add_typer(data_app)
