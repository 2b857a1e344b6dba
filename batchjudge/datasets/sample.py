"""The project's own labelled sample: 100 (document, summary) pairs written for batchjudge.

Fifty short, news-like documents about invented places, people and organisations (so no
statement in them is a claim about the real world), each with one consistent and one
inconsistent one-sentence summary. The ``kind`` column names each inconsistent summary's
error: ``number``, ``name``, ``date``, ``negation``, ``unsupported`` (an addition the
document does not support), ``causal`` (a wrong cause) or ``entity_swap`` (two entities of
the document exchanged); consistent rows have ``kind = "consistent"``. Most errors are
visible to a lexical judge (a new number or name); entity swaps, wrong causes and numbers
borrowed from elsewhere in the document are the hard ones. It ships inside the package, so
the README's offline main job runs on a fresh machine.
"""

from __future__ import annotations

from importlib import resources

import pyarrow as pa

from batchjudge.datasets.io import read_records
from batchjudge.datasets.schema import dataset_table

__all__ = ["SAMPLE_SOURCE", "load_sample"]

SAMPLE_SOURCE = "sample"
_RESOURCE = "sample/sample.jsonl"


def load_sample() -> pa.Table:
    """The shipped sample in the dataset schema plus ``kind``; split ``test``."""
    with resources.as_file(resources.files(__package__).joinpath(_RESOURCE)) as path:
        records = [record for _, record in read_records(path)]
    return dataset_table(
        ids=[r["id"] for r in records],
        doc_ids=[r["doc_id"] for r in records],
        premises=[r["premise"] for r in records],
        hypotheses=[r["hypothesis"] for r in records],
        targets=[r["target"] for r in records],
        source=SAMPLE_SOURCE,
        split="test",
        extra={"kind": pa.array([r["kind"] for r in records], pa.string())},
    )
