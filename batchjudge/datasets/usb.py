"""USB, the Unified Summarization Benchmark's factuality task (Krishna et al., 2023; Apache-2.0).

USB writes each human-corrected summary sentence as two consecutive rows over the same
evidence: first the sentence after the annotator's fix (consistent, USB ``label`` 0), then
the one before it (inconsistent, ``label`` 1). The cookbook's copy (``usb-train.jsonl``,
``usb-val.csv``) lost those labels: every row says consistent. :func:`repair_usb` detects
that defect (one class only, rows in same-premise pairs) and restores the labels from the
pairs, 2,525/2,525 on train and 1,334/1,334 on validation, and says so: it returns a
:class:`UsbReport` and issues a :class:`UsbLabelsRepaired` warning.

Readable inputs: the cookbook's files, and USB's own ``factuality_classification/{train,
validation,test}.jsonl`` (``{id, summ_idx, input_lines: [...], summary_sent, label}``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from batchjudge.datasets.cookbook import guess_split, load_cookbook
from batchjudge.datasets.io import read_records, require_columns
from batchjudge.datasets.schema import dataset_table, row_ids
from batchjudge.errors import InputError

__all__ = [
    "USB_SOURCE",
    "UsbLabelsRepaired",
    "UsbReport",
    "build_usb",
    "find_usb_files",
    "load_usb",
    "repair_usb",
]

USB_SOURCE = "usb"
_SPLIT_ORDER = ("train", "val", "test")
_NATIVE_COLUMNS = ("id", "input_lines", "summary_sent", "label")


class UsbLabelsRepaired(UserWarning):
    """Labels of a USB file were wrong (all one class) and were rebuilt from its row pairs."""


@dataclass(frozen=True, slots=True)
class UsbReport:
    """What loading one USB split found: its size, its classes, whether labels were repaired."""

    split: str
    rows: int
    consistent: int
    inconsistent: int
    repaired: bool
    """True when every row carried one label and the pair structure gave the true ones."""
    single_class_unrepaired: bool = False
    """True when every row carried one label but the rows were not in pairs to repair from."""

    @property
    def message(self) -> str:
        """One line for a user: the counts, and the repair when there was one."""
        counts = f"USB {self.split}: {self.rows} rows, {self.consistent} consistent / {self.inconsistent} inconsistent"
        if self.repaired:
            return (
                f"{counts}; REPAIRED: every row was labelled one class (the cookbook's copy is "
                "all-consistent); labels rebuilt from the same-premise row pairs "
                "(first consistent, second inconsistent)"
            )
        if self.single_class_unrepaired:
            return f"{counts}; WARNING: one class only and no row pairs to repair it from"
        return counts


def load_usb(path: Path, *, split: str | None = None) -> pa.Table:
    """Read one USB file (cookbook JSONL/CSV or USB's own JSONL) as it is labelled.

    USB's own ``label`` 0 (the corrected sentence) becomes target 1 and ``label`` 1 target 0;
    ``premise`` is the evidence lines joined by spaces, as in the cookbook's CSV.
    """
    split = split or guess_split(path)
    records = read_records(path)
    first = next(records, None)
    if first is None:
        raise InputError(f"{path}: no rows")
    _, record = first
    if not isinstance(record.get("input_lines"), list):
        return load_cookbook(path, source=USB_SOURCE, split=split)
    doc_ids: list[str] = []
    premises: list[str] = []
    hypotheses: list[str] = []
    targets: list[int] = []
    for number, row in (first, *records):
        require_columns(path, row, _NATIVE_COLUMNS)
        if row["label"] not in (0, 1) or not isinstance(row["input_lines"], list):
            raise InputError(f"{path}:{number}: expected input_lines as a list and label 0 or 1")
        doc_ids.append(str(row["id"]))
        premises.append(" ".join(row["input_lines"]))
        hypotheses.append(row["summary_sent"])
        targets.append(1 - row["label"])
    return dataset_table(
        ids=row_ids(doc_ids, hypotheses),
        doc_ids=doc_ids,
        premises=premises,
        hypotheses=hypotheses,
        targets=targets,
        source=USB_SOURCE,
        split=split,
    )


def repair_usb(table: pa.Table) -> tuple[pa.Table, UsbReport]:
    """Detect the all-one-class defect and rebuild labels from consecutive row pairs.

    The defect is recognised when every target is the same and rows ``2k`` and ``2k + 1``
    share a premise and differ in summary for every ``k``; then targets become 1, 0, 1, 0...
    Otherwise the table is returned unchanged.
    """
    split = table.column("split")[0].as_py() if table.num_rows else "?"
    targets = table.column("target")
    single = table.num_rows > 0 and pc.count_distinct(targets).as_py() == 1
    repaired = single and _in_pairs(table)
    if repaired:
        fixed = pa.array([1 - (i % 2) for i in range(table.num_rows)], pa.int8())
        index = table.column_names.index("target")
        table = table.set_column(index, table.schema.field(index), fixed)
    consistent = pc.sum(table.column("target")).as_py() or 0
    report = UsbReport(
        split=split,
        rows=table.num_rows,
        consistent=consistent,
        inconsistent=table.num_rows - consistent,
        repaired=repaired,
        single_class_unrepaired=single and not repaired,
    )
    if repaired:
        warnings.warn(report.message, UsbLabelsRepaired, stacklevel=2)
    return table, report


def _in_pairs(table: pa.Table) -> bool:
    """True when rows come in consecutive same-premise, different-summary pairs."""
    n = table.num_rows
    if n % 2:
        return False
    premises = table.column("premise").combine_chunks()
    hypotheses = table.column("hypothesis").combine_chunks()
    even, odd = pa.array(range(0, n, 2)), pa.array(range(1, n, 2))
    same_premise = pc.all(pc.equal(premises.take(even), premises.take(odd))).as_py()
    new_summary = pc.all(pc.not_equal(hypotheses.take(even), hypotheses.take(odd))).as_py()
    return bool(same_premise and new_summary)


def find_usb_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their USB files (cookbook ``usb-*`` or USB's ``train/validation/test``).

    Files are returned in train, val, test order; a folder with none raises
    :class:`InputError`.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise InputError(f"{path}: does not exist")
        candidates = [
            p
            for p in sorted(path.iterdir())
            if p.suffix in (".jsonl", ".csv")
            and (p.name.startswith("usb") or p.stem in ("train", "validation", "test"))
        ]
        if not candidates:
            raise InputError(f"{path}: no USB files (usb-*.jsonl/csv or train/validation/test.jsonl)")
        found.extend(candidates)
    return sorted(found, key=lambda p: _SPLIT_ORDER.index(guess_split(p, default="test")))


def build_usb(sources: Sequence[Path]) -> tuple[dict[str, pa.Table], list[UsbReport]]:
    """Load and repair every USB file found in ``sources``: tables keyed ``"usb-<split>"``.

    Two files of the same split are refused (:class:`InputError`), since their rows would
    silently be merged.
    """
    tables: dict[str, pa.Table] = {}
    reports: list[UsbReport] = []
    for path in find_usb_files(sources):
        table, report = repair_usb(load_usb(path))
        name = f"{USB_SOURCE}-{report.split}"
        if name in tables:
            raise InputError(f"{path}: a second file for the USB {report.split} split")
        tables[name] = table
        reports.append(report)
    return tables, reports
