"""FIB, the Factual Inconsistency Benchmark (Tam et al., 2022; CC BY 4.0), built as the cookbook did.

Raw FIB is one JSON line per (article, distractor) pair, ``{id, input, correct_choice,
list_choices: [a, b], lbl}``, in one file per distractor model
(``binary_choice-using_<model>_distractors.jsonl``). The cookbook's recipe, reproduced here
row for row (``fib-train.jsonl``: 820 rows, ``fib-val.jsonl``: 180 rows):

1. read the files in name order (bart-base, bart-large, bloom-560m, distil-bart,
   distil-pegasus, pegasus, t5-large), explode the two choices (stripped), label a choice
   consistent when it equals ``correct_choice``, drop repeated (article, summary) pairs;
2. split by article with scikit-learn's ``train_test_split`` over the articles sorted by
   text, stratified on each article's summary count, ``test_size=0.18``,
   ``random_state=1368`` (needs scikit-learn: the ``fib`` extra);
3. keep the first consistent and the first inconsistent summary of each article.

The same data is on the Hugging Face hub (``r-three/fib``, split ``test``, column
``dataset``); ``source="hf"`` loads it there with the ``datasets`` library when online.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchjudge.datasets.io import read_records, require_columns
from batchjudge.datasets.schema import dataset_table, row_ids, with_split
from batchjudge.datasets.splits import balance
from batchjudge.errors import ConfigError, InputError

__all__ = [
    "FIB_PARTS",
    "FIB_RANDOM_STATE",
    "FIB_TEST_SIZE",
    "build_fib",
    "explode_fib",
    "fib_raw_files",
    "load_fib_raw",
    "split_fib",
]

FIB_PARTS: tuple[str, ...] = ("xsum", "cnn_dm")
FIB_TEST_SIZE = 0.18
FIB_RANDOM_STATE = 1368
_FILE_GLOB = "binary_choice-using_*_distractors.jsonl"
_RAW_COLUMNS = ("id", "input", "correct_choice", "list_choices")
_HF_DATASET = "r-three/fib"


def fib_raw_files(folder: Path) -> dict[str, list[Path]]:
    """Find raw FIB parts under ``folder``: ``{"xsum": [files in name order], ...}``.

    ``folder`` is either one part's folder (``.../xsum`` or the repository's
    ``.../xsum/fib``) or a folder holding ``xsum/`` and/or ``cnn_dm/`` (each possibly with
    a ``fib/`` inside). Raises :class:`InputError` when no raw FIB file is found.
    """
    if not folder.exists():
        raise InputError(f"{folder}: does not exist (expected a folder of raw FIB files)")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected a folder of raw FIB files)")
    direct = sorted(folder.glob(_FILE_GLOB))
    if direct:
        name = folder.parent.name if folder.name == "fib" else folder.name
        return {name: direct}
    found: dict[str, list[Path]] = {}
    for part in FIB_PARTS:
        for candidate in (folder / part, folder / part / "fib"):
            files = sorted(candidate.glob(_FILE_GLOB))
            if files:
                found[part] = files
                break
    if not found:
        raise InputError(f"{folder}: no {_FILE_GLOB} files here or in {', '.join(FIB_PARTS)}/")
    return found


def load_fib_raw(files: Iterable[Path]) -> Iterator[Mapping[str, Any]]:
    """Yield raw FIB records from ``files`` in the order given, checking their columns."""
    for path in files:
        for number, record in read_records(path):
            require_columns(path, record, _RAW_COLUMNS)
            choices = record["list_choices"]
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise InputError(f"{path}:{number}: list_choices must be a list of strings")
            yield record


def _load_fib_hf(part: str) -> Iterator[Mapping[str, Any]]:
    """Yield the ``part`` rows of ``r-three/fib`` from the Hugging Face hub (needs network)."""
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(
            "loading FIB from the Hugging Face hub needs the `datasets` library "
            "(pip install 'batchjudge[fib]'), or pass --source DIR with the raw FIB files"
        ) from exc
    try:
        rows = datasets.load_dataset(_HF_DATASET, split="test")
    except Exception as exc:  # the hub client raises many unrelated types; report any
        raise InputError(f"could not load {_HF_DATASET} from the Hugging Face hub: {exc}") from exc
    for row in rows:
        if row.get("dataset") == part:
            yield row


def explode_fib(records: Iterable[Mapping[str, Any]], *, source: str) -> pa.Table:
    """One row per (article, choice): stripped summary, target 1 iff it is the correct choice.

    Repeated (article, summary) pairs keep their first occurrence. ``doc_id`` is FIB's
    article id; ``split`` is left empty for :func:`split_fib` to fill.
    """
    seen: set[tuple[str, str]] = set()
    doc_ids: list[str] = []
    premises: list[str] = []
    hypotheses: list[str] = []
    targets: list[int] = []
    for record in records:
        premise, correct = record["input"], record["correct_choice"]
        for choice in record["list_choices"]:
            summary = choice.strip()
            if (premise, summary) in seen:
                continue
            seen.add((premise, summary))
            doc_ids.append(str(record["id"]))
            premises.append(premise)
            hypotheses.append(summary)
            targets.append(1 if summary == correct else 0)
    return dataset_table(
        ids=row_ids(doc_ids, hypotheses),
        doc_ids=doc_ids,
        premises=premises,
        hypotheses=hypotheses,
        targets=targets,
        source=source,
        split="",
    )


def _train_test_split() -> Callable[..., Any]:
    """scikit-learn's splitter, or a ConfigError saying which extra installs it."""
    try:
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise ConfigError(
            "building FIB as the cookbook did needs scikit-learn (for its split): "
            'pip install "batchjudge[fib]"'
        ) from exc
    split: Callable[..., Any] = train_test_split
    return split


def split_fib(
    table: pa.Table, *, test_size: float = FIB_TEST_SIZE, seed: int = FIB_RANDOM_STATE
) -> tuple[pa.Table, pa.Table]:
    """The cookbook's article split: ``(train, val)``, rows in input order.

    Articles are sorted by text (pandas' ``groupby`` order) and handed with their summary
    counts to scikit-learn's ``train_test_split(..., stratify=counts, random_state=seed)``,
    the only way to reproduce the published split exactly.
    """
    train_test_split = _train_test_split()
    counts = pc.value_counts(table.column("premise"))
    articles = counts.field("values").to_pylist()
    sizes = dict(zip(articles, counts.field("counts").to_pylist(), strict=True))
    articles.sort()
    try:
        _, val_index = train_test_split(
            np.arange(len(articles)),
            test_size=test_size,
            stratify=[sizes[a] for a in articles],
            random_state=seed,
        )
    except ValueError as exc:
        raise InputError(f"cannot split {len(articles)} FIB articles as the cookbook did: {exc}") from exc
    val_articles = pa.array([articles[i] for i in val_index], pa.string())
    in_val = pc.is_in(table.column("premise"), value_set=val_articles)
    return with_split(table.filter(pc.invert(in_val)), "train"), with_split(table.filter(in_val), "val")


def build_fib(
    source: Path | Literal["hf"],
    *,
    parts: Iterable[str] = FIB_PARTS,
    test_size: float = FIB_TEST_SIZE,
    seed: int = FIB_RANDOM_STATE,
) -> dict[str, pa.Table]:
    """Build balanced FIB train/val tables, keyed ``"fib-<part>-<split>"``.

    ``source`` is a folder of raw FIB files (see :func:`fib_raw_files`) or ``"hf"``; with a
    folder, the parts present there are built (``parts`` filters them); from the hub, each
    of ``parts`` that has rows.
    """
    wanted = tuple(parts)
    _train_test_split()  # fail before reading the sources when scikit-learn is missing
    if source == "hf":
        streams = {part: _load_fib_hf(part) for part in wanted}
    else:
        streams = {
            part: load_fib_raw(files)
            for part, files in fib_raw_files(Path(source)).items()
            if part in wanted
        }
        if not streams:
            raise InputError(f"{source}: none of the FIB parts {list(wanted)} found")
    built: dict[str, pa.Table] = {}
    for part, records in streams.items():
        name = f"fib-{part}"
        exploded = explode_fib(records, source=name)
        if exploded.num_rows == 0:
            continue
        for split, table in zip(("train", "val"), split_fib(exploded, test_size=test_size, seed=seed), strict=True):
            built[f"{name}-{split}"] = balance(table, seed=None, by_group=True)
    if not built:
        raise InputError(f"no FIB rows found for parts {list(wanted)}")
    return built
