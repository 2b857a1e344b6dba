"""The label-sanity check run before every evaluation and export.

It warns, by name, about data whose scores could not be trusted:

``single_class``        every labelled row (of one ``source``, when that column exists) has the
                        same target (the cookbook's USB copy, even when mixed with others)
``missing_labels``      some rows have a target, others none
``duplicate_rows``      the same (premise, hypothesis) pair appears more than once
``conflicting_labels``  the same pair carries both targets
``split_leak``          one document appears in more than one split

It streams: :class:`LabelChecker` takes record batches one at a time and keeps only 64-bit
hashes and targets as numpy arrays (9 bytes a row) plus one entry per distinct (document,
split), never the text, so the engine can run it over inputs far larger than memory (polars
frames per batch measured ~260 MB at 1M rows; these arrays ~25 MB).
:func:`check_labels` is the one-call form for a table or an iterator of batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

__all__ = ["LabelChecker", "SanityWarning", "check_labels"]

_PREMISE_SEED, _HYPOTHESIS_SEED, _GROUP_SEED = 0x5EED1, 0x5EED2, 0x5EED3


@dataclass(frozen=True, slots=True)
class SanityWarning:
    """One problem found in labelled data: a stable ``code``, a one-line ``message`` and how
    many rows (or documents, for ``split_leak``) it concerns."""

    code: str
    message: str
    count: int


class LabelChecker:
    """Incremental label-sanity check: :meth:`update` with each batch, then :meth:`finish`.

    Columns that are absent switch off the checks that need them: no ``target``, no label
    checks; no ``split``, no leak check; no group column, the premise stands for the document.
    """

    def __init__(
        self,
        *,
        split_column: str = "split",
        group_column: str = "doc_id",
        target_column: str = "target",
        premise_column: str = "premise",
        hypothesis_column: str = "hypothesis",
        source_column: str = "source",
    ) -> None:
        self._split = split_column
        self._group = group_column
        self._target = target_column
        self._premise = premise_column
        self._hypothesis = hypothesis_column
        self._source = source_column
        self._rows = 0
        self._origins: list[tuple[int, str]] = []
        self._pairs: list[tuple[int, np.ndarray, np.ndarray]] = []
        """Per batch: first row, pair hashes (uint64), targets (int8, -1 unlabelled)."""
        self._docs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        """Per batch: document hashes (uint64), split codes (int32), first row (int64)."""
        self._split_codes: dict[str, int] = {}
        self._classes: dict[str, list[int]] = {}
        """Per source value ("" without a source column): [labelled rows, positives]."""
        self._has_target = False
        self._has_split = False
        self._doc_column = group_column

    @property
    def rows(self) -> int:
        """Rows seen so far."""
        return self._rows

    def update(self, batch: pa.RecordBatch | pa.Table, origin: str | None = None) -> None:
        """Fold one batch in; ``origin`` (a file name) labels its rows in messages."""
        if origin is not None and (not self._origins or self._origins[-1][1] != origin):
            self._origins.append((self._rows, origin))
        wanted = [self._target, self._premise, self._hypothesis, self._group, self._split, self._source]
        present = [name for name in batch.schema.names if name in wanted]
        frame = pl.from_arrow(batch.select(present))
        assert isinstance(frame, pl.DataFrame)
        n = frame.height
        row = pl.int_range(self._rows, self._rows + n, dtype=pl.Int64, eager=True).alias("row")
        self._rows += n
        if n == 0:
            return
        names = set(frame.columns)
        target = pl.lit(-1, pl.Int8)
        if self._target in names:
            self._has_target = True
            by_source = pl.col(self._source).cast(pl.String).fill_null("") if self._source in names else pl.lit("")
            labels = pl.col(self._target).cast(pl.Int8)
            counts = frame.group_by(by_source.alias("source")).agg(
                labels.count().alias("labelled"), (labels == 1).sum().alias("positives")
            )
            for source, labelled, positives in counts.iter_rows():
                totals = self._classes.setdefault(source, [0, 0])
                totals[0] += labelled
                totals[1] += positives
            target = pl.col(self._target).cast(pl.Int8).fill_null(-1)
        if {self._premise, self._hypothesis} <= names:
            pair_hash = pl.col(self._premise).hash(_PREMISE_SEED) ^ pl.col(self._hypothesis).hash(_HYPOTHESIS_SEED)
            pairs = frame.select(pair_hash.alias("h"), target.alias("t"))
            self._pairs.append((self._rows - n, pairs["h"].to_numpy(), pairs["t"].to_numpy()))
        doc_column = self._group if self._group in names else self._premise
        if self._split in names and doc_column in names:
            self._has_split = True
            self._doc_column = doc_column
            splits = frame[self._split].cast(pl.String).fill_null("")
            for value in splits.unique().to_list():
                self._split_codes.setdefault(value, len(self._split_codes))
            docs = frame.select(
                pl.col(doc_column).cast(pl.String).hash(_GROUP_SEED).alias("d"),
                splits.replace_strict(self._split_codes, return_dtype=pl.Int32).alias("s"),
                row,
            )
            docs = docs.group_by("d", "s").agg(pl.col("row").min())
            self._docs.append((docs["d"].to_numpy(), docs["s"].to_numpy(), docs["row"].to_numpy()))

    def finish(self) -> list[SanityWarning]:
        """All warnings for the rows seen so far, in a fixed order of codes."""
        found: list[SanityWarning] = []
        found += self._label_warnings()
        found += self._pair_warnings()
        found += self._leak_warnings()
        return found

    def _where(self, row: int) -> str:
        """``file row N`` (0-based within the file) when origins were given, else ``row N``."""
        for start, origin in reversed(self._origins):
            if row >= start:
                return f"{origin} row {row - start}"
        return f"row {row}"

    def _label_warnings(self) -> list[SanityWarning]:
        if not self._has_target or self._rows == 0:
            return []
        found = []
        labelled = sum(counts[0] for counts in self._classes.values())
        missing = self._rows - labelled
        if 0 < missing:
            found.append(SanityWarning(
                "missing_labels",
                f"{missing} of {self._rows} rows have no {self._target!r}; they are left out of every metric",
                missing,
            ))
        for source, (labelled, positives) in sorted(self._classes.items()):
            if labelled == 0 or 0 < positives < labelled:
                continue
            value, name = (1, "consistent") if positives else (0, "inconsistent")
            where = f"{self._source} {source!r}: " if source else ""
            found.append(SanityWarning(
                "single_class",
                f"{where}all {labelled} labelled rows have {self._target}={value} ({name}): accuracy, "
                "precision and recall cannot be trusted; if rows come in same-premise pairs this is "
                "the cookbook's USB defect (`batchjudge data usb` repairs it)",
                labelled,
            ))
        return found

    def _pair_warnings(self) -> list[SanityWarning]:
        if not self._pairs:
            return []
        hashes = np.concatenate([h for _, h, _ in self._pairs])
        targets = np.concatenate([t for _, _, t in self._pairs])
        rows = np.concatenate([np.arange(start, start + len(h)) for start, h, _ in self._pairs])
        order = np.argsort(hashes, kind="stable")  # stable: rows stay in order within a pair
        hashes, targets, rows = hashes[order], targets[order], rows[order]
        _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
        repeated = counts > 1
        if not repeated.any():
            return []
        starts, sizes = first[repeated], counts[repeated]
        extra = int((sizes - 1).sum())
        example = int(np.argmin(rows[starts]))
        found = [SanityWarning(
            "duplicate_rows",
            f"{extra} rows repeat an earlier (premise, hypothesis) pair ({len(starts)} distinct pairs "
            f"repeated), e.g. {self._where(int(rows[starts[example]]))} and "
            f"{self._where(int(rows[starts[example] + 1]))}",
            extra,
        )]
        positive = np.maximum.reduceat(targets == 1, first)[repeated]
        negative = np.maximum.reduceat(targets == 0, first)[repeated]
        conflicts = np.flatnonzero(positive & negative)
        if conflicts.size:
            start = starts[conflicts[np.argmin(rows[starts[conflicts]])]]
            found.append(SanityWarning(
                "conflicting_labels",
                f"{conflicts.size} (premise, hypothesis) pairs carry both targets, "
                f"e.g. {self._where(int(rows[start]))} and {self._where(int(rows[start + 1]))}",
                int(conflicts.size),
            ))
        return found

    def _leak_warnings(self) -> list[SanityWarning]:
        if not self._has_split or not self._docs:
            return []
        docs = np.concatenate([d for d, _, _ in self._docs])
        splits = np.concatenate([sp for _, sp, _ in self._docs])
        rows = np.concatenate([r for _, _, r in self._docs])
        order = np.lexsort((rows, splits, docs))  # by document, then split, then first row
        docs, splits, rows = docs[order], splits[order], rows[order]
        keep = np.ones(len(docs), dtype=bool)  # one entry per (document, split): its first row
        keep[1:] = (docs[1:] != docs[:-1]) | (splits[1:] != splits[:-1])
        docs, splits, rows = docs[keep], splits[keep], rows[keep]
        _, first, counts = np.unique(docs, return_index=True, return_counts=True)
        leaked = np.flatnonzero(counts > 1)
        if leaked.size == 0:
            return []
        names = {code: value for value, code in self._split_codes.items()}
        # the example: the leaking document seen first, its splits in the order they appeared
        earliest = [int(rows[first[g]:first[g] + counts[g]].min()) for g in leaked]
        group = leaked[int(np.argmin(earliest))]
        span = slice(first[group], first[group] + counts[group])
        seen = sorted(zip(rows[span].tolist(), splits[span].tolist(), strict=True))[:2]
        places = " and ".join(f"{names[sp]!r} ({self._where(r)})" for r, sp in seen)
        return [SanityWarning(
            "split_leak",
            f"{leaked.size} documents ({self._doc_column}) appear in more than one {self._split!r}, "
            f"e.g. one in {places}: scores on the held-out side are inflated",
            int(leaked.size),
        )]


def check_labels(
    data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch],
    *,
    split_column: str = "split",
    group_column: str = "doc_id",
) -> list[SanityWarning]:
    """Check labelled data in one call; ``data`` may be a table or any iterable of batches."""
    checker = LabelChecker(split_column=split_column, group_column=group_column)
    if isinstance(data, pa.Table | pa.RecordBatch):
        checker.update(data)
    else:
        for batch in data:
            checker.update(batch)
    return checker.finish()
