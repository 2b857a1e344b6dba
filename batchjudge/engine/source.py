"""Input: resolve paths, validate them before any request, and stream rows in bounded batches.

Inputs are Parquet files, directories of shards, or globs; JSONL and CSV are accepted too; or
a table in memory (:mod:`~batchjudge.engine.input_kinds`), read as one input named ``<dataframe>``.
Everything is checked up front (:func:`open_source`) so that a missing file, a file that is
not what its name says, an empty dataset, a missing column or a column of the wrong type stops
the run with one clear :class:`~batchjudge.errors.InputError` before anything is sent. Rows
are then streamed with pyarrow datasets in record batches, so memory never grows with the
dataset. Per-row problems (a null premise, a target that is not 0/1) are not errors here:
they travel with the row and fail it alone.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast
from pathlib import Path

from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa
import pyarrow.lib
import pyarrow.parquet as pq

from batchjudge.engine.input_kinds import MEMORY_NAME, InMemory, in_memory, input_paths
from batchjudge.engine.stores import ObjectPath, input_filesystem, is_url, store_error
from batchjudge.errors import InputError, first_line

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

__all__ = [
    "LOGICAL_COLUMNS",
    "InputFile",
    "Source",
    "SourceRow",
    "open_source",
    "parse_columns",
    "row_key",
    "source_rows",
]

LOGICAL_COLUMNS: tuple[str, ...] = ("premise", "hypothesis", "target", "id")
"""The columns the engine reads; ``premise`` and ``hypothesis`` are required."""

_REQUIRED = ("premise", "hypothesis")
_FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".csv": "csv",
}
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True, slots=True)
class InputFile:
    """One resolved input file, with the stable name used in row keys."""

    path: Path | ObjectPath
    """A local path, or the URL of an object (``s3://bucket/key``)."""
    rel: str
    """Path relative to the input argument that named it (stable across machines)."""
    fmt: str
    """``parquet``, ``json``, ``csv``, or ``memory`` (a table given in memory: ``table``)."""
    size: int
    table: InMemory | None = field(default=None, compare=False)
    """The table of a ``memory`` input."""
    fs: pafs.FileSystem | None = field(default=None, compare=False)
    """The filesystem that reads an object (None: a local file)."""
    fs_path: str = ""
    """The object's path within ``fs`` (``bucket/key``)."""

    def open(self) -> BinaryIO | Any:
        """The file, opened for binary reading (a pyarrow file for an object)."""
        if self.fs is None:
            return Path(self.path).open("rb")
        return self.fs.open_input_file(self.fs_path)

    def source(self) -> Any:
        """What pyarrow's Parquet reader takes: the path, or an opened object."""
        return self.path if self.fs is None else self.fs.open_input_file(self.fs_path)


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One input row as the engine sees it. ``problem`` is set when the row cannot be judged."""

    row_id: str
    premise: str | None
    hypothesis: str | None
    target: int | None
    problem: str | None = None


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse ``premise=doc,hypothesis=summary`` into ``{logical: physical}``.

    Unmapped logical columns keep their own name.
    """
    mapping = {name: name for name in LOGICAL_COLUMNS}
    if spec is None:
        return mapping
    items: Mapping[str, str]
    if isinstance(spec, str):
        parsed: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InputError(f"--columns: expected LOGICAL=COLUMN, got {part!r}")
            parsed[key.strip()] = value.strip()
        items = parsed
    else:
        items = spec
    for key, value in items.items():
        if key not in mapping:
            raise InputError(
                f"--columns: unknown column role {key!r} (known: {', '.join(LOGICAL_COLUMNS)})"
            )
        mapping[key] = value
    _refuse_shared(mapping, set(items))
    return mapping


def _refuse_shared(mapping: Mapping[str, str], mapped: set[str]) -> None:
    """Refuse two roles reading one column (``premise=hypothesis`` leaves ``hypothesis``
    reading its default name too): the row would be judged against itself."""
    readers: dict[str, list[str]] = {}
    for role, column in mapping.items():
        readers.setdefault(column, []).append(role)
    for column, roles in readers.items():
        if len(roles) > 1:
            unmapped = [r for r in roles if r not in mapped]
            hint = f" ({unmapped[0]} reads {column!r} unless mapped)" if unmapped else ""
            raise InputError(
                f"--columns: {' and '.join(roles)} both read column {column!r}{hint}; "
                "map each role to its own column"
            )


def row_key(rel: str, index: int, premise: str | None, hypothesis: str | None) -> str:
    """The content key of a row without an ``id``: stable across runs and machines."""
    h = hashlib.blake2b(digest_size=12)
    for part in (rel, str(index), premise or "", hypothesis or ""):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


def _format_of(path: Path | ObjectPath) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r} "
            "(expected .parquet, .jsonl or .csv)"
        )
    return fmt


def _expand(arg: str) -> list[tuple[Path, Path]]:
    """Expand one input argument into (file, base) pairs; base anchors the row-key path."""
    if glob.has_magic(arg):
        matches = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
        if not matches:
            raise InputError(f"{arg}: no file matches this pattern")
        prefix = arg
        while glob.has_magic(prefix):
            prefix = os.path.dirname(prefix)
        base = Path(prefix or ".")
        return [(m, base) for m in matches]
    path = Path(arg)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _FORMATS
        )
        if not files:
            raise InputError(f"{path}: directory holds no .parquet, .jsonl or .csv file")
        return [(f, path) for f in files]
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not path.is_file():  # reading a FIFO would wait for a writer forever
        raise InputError(f"{path}: not a regular file ({_kind(path)}); give a file, a directory or a glob")
    return [(path, path.parent)]


def _expand_url(url: str) -> list[InputFile]:
    """Expand one input URL (an object, a folder of shards, or a glob) into its files, named
    in row keys relative to the folder (or the glob's fixed prefix), as local inputs are."""
    import pyarrow.fs as pafs

    fs, path = input_filesystem(url)
    scheme = url[: url.index("://") + 3]
    try:
        if glob.has_magic(path):
            prefix = path
            while glob.has_magic(prefix):
                prefix = os.path.dirname(prefix)
            listing = fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
            matcher = re.compile(_glob_regex(path))
            found = [(i, prefix) for i in listing if i.type == pafs.FileType.File and matcher.fullmatch(i.path)]
            if not found:
                _check_bucket(fs, path, url)
                raise InputError(f"{url}: no object matches this pattern")
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.File:
                found = [(info, os.path.dirname(path))]
            elif info.type == pafs.FileType.Directory or path.count("/") == 0:
                listing = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
                found = [(i, path) for i in listing if i.type == pafs.FileType.File
                         and os.path.splitext(i.path)[1].lower() in _FORMATS]
                if not found:
                    raise InputError(f"{url}: holds no .parquet, .jsonl or .csv object")
            else:
                _check_bucket(fs, path, url)
                raise InputError(f"{url}: no such object or folder")
    except OSError as exc:
        raise store_error(url, exc, "list the inputs") from exc
    files = []
    for info, base in sorted(found, key=lambda pair: pair[0].path):
        located = ObjectPath(scheme + info.path)
        rel = info.path[len(base):].lstrip("/") if base and info.path.startswith(base) else located.name
        files.append(InputFile(located, rel, _format_of(located), int(info.size or 0), fs=fs, fs_path=info.path))
    return files


def _check_bucket(fs: pafs.FileSystem, path: str, url: str) -> None:
    """InputError when the bucket of ``path`` does not exist (a path in it was not found)."""
    import pyarrow.fs as pafs

    bucket = path.split("/", 1)[0]
    if bucket and "/" in path and fs.get_file_info(bucket).type == pafs.FileType.NotFound:
        raise InputError(f"{url}: the bucket does not exist; create it, or fix the URL")


def _glob_regex(pattern: str) -> str:
    """A regex for a glob over object paths: ``**`` crosses folders, ``*`` and ``?`` do not."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def _kind(path: Path) -> str:
    """What a path that exists but is neither a file nor a directory is."""
    for test, name in ((Path.is_fifo, "a FIFO"), (Path.is_socket, "a socket"),
                       (Path.is_char_device, "a character device"), (Path.is_block_device, "a block device")):
        if test(path):
            return name
    return "another kind of file"


def _check_content(file: InputFile) -> None:
    """Refuse a file whose bytes are not what its name says (cheap sniff of the head/tail)."""
    path, fmt = file.path, file.fmt
    try:
        with file.open() as fh:
            head = fh.read(4096)
            if fmt == "parquet":
                if file.size < 12:
                    raise InputError(f"{path}: not a Parquet file (too short)")
                fh.seek(-4, os.SEEK_END)
                tail = fh.read(4)
                if head[:4] != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
                    raise InputError(f"{path}: not a Parquet file (bad magic bytes)")
                return
    except OSError as exc:
        if file.fs is not None:
            raise store_error(str(path), exc, "read the input") from exc
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if head[:4] == _PARQUET_MAGIC:
        raise InputError(f"{path}: is a Parquet file but is named {path.suffix}")
    if b"\x00" in head:
        raise InputError(f"{path}: binary content, not {fmt.upper()} text")
    if fmt == "json":
        first = head.lstrip()[:1]
        if first and first != b"{":
            raise InputError(f"{path}: line 1 is not a JSON object")


def _dataset(file: InputFile) -> ds.Dataset:
    """A pyarrow dataset over a JSONL or CSV file (imported here: Parquet never needs it, and
    importing it costs ~0.1 s of every run's start)."""
    import pyarrow.dataset as ds

    fmt: ds.FileFormat | str = file.fmt
    if file.fmt == "json":
        fmt = ds.JsonFileFormat()
    try:
        dataset = ds.dataset(file.fs_path or str(file.path), format=fmt, filesystem=file.fs)
        dataset.schema.names  # noqa: B018 - names must decode (a CSV header in another encoding)
    except (pa.ArrowInvalid, pyarrow.lib.ArrowException, OSError) as exc:
        raise InputError(f"{file.path}: cannot read as {file.fmt.upper()}: {first_line(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{file.path}: column names are not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    return dataset


def _shape(file: InputFile) -> tuple[pa.Schema, int]:
    """A file's schema and row count: from the Parquet footer, else from a dataset scan."""
    try:
        if file.table is not None:
            return file.table.schema, file.table.count_rows()
        if file.fmt == "parquet":
            metadata = pq.read_metadata(file.source())
            return metadata.schema.to_arrow_schema(), metadata.num_rows
        dataset = _dataset(file)
        return dataset.schema, dataset.count_rows()
    except (pa.ArrowInvalid, pyarrow.lib.ArrowException, OSError) as exc:
        raise InputError(f"{file.path}: cannot read as {file.fmt.upper()}: {first_line(exc)}") from exc


def _read_batches(file: InputFile, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` from one file, holding about one batch in memory.

    Parquet is read with ``ParquetFile.iter_batches``: the dataset scanner's read-ahead and
    its buffers grew RSS from 209 to 237+ MiB over eight 125k-row shards where this stays at
    ~98 MiB. JSONL and CSV go through the dataset scanner with read-ahead off.
    """
    if file.table is not None:
        yield from file.table.batches(columns, batch_size)
        return
    if file.fmt == "parquet":
        parquet = pq.ParquetFile(file.source(), pre_buffer=False)
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns)
        return
    scanner = _dataset(file).scanner(
        columns=columns, batch_size=batch_size, batch_readahead=1, fragment_readahead=1
    )
    yield from scanner.to_batches()


def _is_text(typ: pa.DataType) -> bool:
    """Text as Arrow holds it: strings, large strings, string views (polars')."""
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ))


def _check_type(file: InputFile, logical: str, physical: str, typ: pa.DataType) -> None:
    if logical in ("premise", "hypothesis"):
        ok = _is_text(typ) or pa.types.is_null(typ)
        want = "text"
    elif logical == "target":
        ok = pa.types.is_integer(typ) or pa.types.is_boolean(typ) or pa.types.is_null(typ)
        want = "integer 0/1 or boolean"
    else:  # id
        ok = _is_text(typ) or pa.types.is_integer(typ)
        want = "text or integer"
    if not ok:
        raise InputError(f"{file.path}: column {physical!r} ({logical}) has type {typ}, expected {want}")


class Source:
    """Validated inputs, ready to stream. Build it with :func:`open_source`."""

    def __init__(self, files: list[InputFile], columns: dict[str, str], present: set[str], rows: Sequence[int]):
        self.files = files
        self.columns = columns
        self.present = present
        """Logical columns present in every file (``target``/``id`` are optional)."""
        self.rows = list(rows)
        """Rows of each file, in ``files`` order."""
        self.total = sum(self.rows)

    def file(self, index: int) -> Source:
        """The source of ``files[index]`` alone (its rows keep their keys)."""
        return Source([self.files[index]], self.columns, self.present, [self.rows[index]])

    @property
    def labelled(self) -> bool:
        """Whether a target column is present."""
        return "target" in self.present

    def identity(self) -> list[dict[str, object]]:
        """What identifies the dataset in a run's fingerprint: the files' names. Their content
        is compared by its own fingerprint (:mod:`batchjudge.engine.inputs`), not their size,
        so a file rewritten with the same rows (another compression) resumes."""
        return [{"file": f.rel} for f in self.files]

    def arrow_batches(
        self, batch_size: int = 4096, extra: Sequence[str] = ()
    ) -> Iterator[tuple[InputFile, int, pa.RecordBatch]]:
        """Stream ``(file, first row index, batch)`` with columns renamed to their roles.

        ``extra`` names further input columns to carry along under their own names (take
        them from :meth:`shared_columns`: every file must have them).
        """
        roles = [c for c in LOGICAL_COLUMNS if c in self.present]
        physical = [self.columns[c] for c in roles]
        carried = [c for c in extra if c not in physical]
        for file in self.files:
            index = 0
            try:
                for batch in _read_batches(file, physical + carried, batch_size):
                    if batch.num_rows:
                        yield file, index, batch.rename_columns(roles + carried)
                        index += batch.num_rows
            except (pa.ArrowInvalid, pyarrow.lib.ArrowException) as exc:
                raise InputError(f"{file.path}: unreadable after row {index}: {first_line(exc)}") from exc
            except OSError as exc:
                if file.fs is None:
                    raise
                raise store_error(str(file.path), exc, f"read the input after row {index}") from exc

    def shared_columns(self) -> dict[str, pa.DataType]:
        """Input columns other than the roles that every file has with one type (a document
        or pair id, a split...), by name, in the first file's order. A column named like a
        role (``premise`` when ``premise=doc`` is mapped) is left out: it would clash."""
        mapped = {self.columns[c] for c in self.present} | set(LOGICAL_COLUMNS)
        shared: dict[str, pa.DataType] | None = None
        for file in self.files:
            schema, _ = _shape(file)
            types = {f.name: f.type for f in schema if f.name not in mapped}
            if shared is None:
                shared = types
            else:
                shared = {k: t for k, t in shared.items() if types.get(k) == t}
        return shared or {}

    def keyed_batches(
        self, extra: Sequence[str] = (), batch_size: int = 4096
    ) -> Iterator[tuple[list[SourceRow], pa.RecordBatch]]:
        """:meth:`batches` with each batch's columns as read: the roles and ``extra``."""
        for file, index, batch in self.arrow_batches(batch_size, extra):
            yield self._rows(file, batch, index), batch

    def batches(self, batch_size: int = 4096) -> Iterator[list[SourceRow]]:
        """Stream the rows in input order, ``batch_size`` at a time, with their keys."""
        for file, index, batch in self.arrow_batches(batch_size):
            yield self._rows(file, batch, index)

    def _rows(self, file: InputFile, batch: pa.RecordBatch, start: int) -> list[SourceRow]:
        return source_rows(batch, self.columns, file.rel, start)


def source_rows(
    batch: pa.RecordBatch | pa.Table, columns: Mapping[str, str], rel: str, start: int | None
) -> list[SourceRow]:
    """The rows of ``batch`` (columns named by role: ``premise``, ``hypothesis``, optional
    ``target`` and ``id``) with their keys and problems, as :meth:`Source.batches` yields them.

    ``rel`` and ``start`` (the file's stable name and the batch's first row index in it) go
    into the key of a row without an ``id``; ``start`` None is for rows with no stable place
    (a stream, e.g. a user's Ray dataset): their key is their content. ``columns`` maps roles
    to the input's own column names, which the problems name.
    """
    present = [c for c in LOGICAL_COLUMNS if c in batch.column_names]
    cols = {c: batch.column(c).to_pylist() for c in present}
    n = batch.num_rows
    premises: list[object] = cols["premise"]
    hypotheses: list[object] = cols["hypothesis"]
    targets: list[object] = cols.get("target", [None] * n)
    ids: list[object] | None = cols.get("id")
    rows: list[SourceRow] = []
    for i in range(n):
        premise, hypothesis, target = premises[i], hypotheses[i], targets[i]
        index = start + i if start is not None else 0
        where = f"{rel} row {index}" if start is not None else rel
        raw_id = ids[i] if ids is not None else None
        problem = None
        if ids is not None and raw_id is None:
            problem = f"{where}: null {columns['id']!r} (id)"
            key = row_key(rel, index, _str(premise), _str(hypothesis))
        else:
            key = str(raw_id) if ids is not None else row_key(rel, index, _str(premise), _str(hypothesis))
        label: int | None = None
        if target is not None:
            label = int(cast("int | bool", target))  # the column's type was checked up front
            if label not in (0, 1):
                problem = problem or f"{where}: {columns['target']!r} is {target!r}, expected 0 or 1"
                label = None
        for role, value in (("premise", premise), ("hypothesis", hypothesis)):
            if problem is None and (value is None or not str(value).strip()):
                what = "null" if value is None else "empty"
                problem = f"{where}: {what} {columns[role]!r} ({role})"
        rows.append(SourceRow(key, _str(premise), _str(hypothesis), label, problem))
    return rows


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def open_source(inputs: object, columns: Mapping[str, str] | str | None = None) -> Source:
    """Resolve and validate ``inputs`` (what :mod:`~batchjudge.engine.input_kinds` accepts: a
    path, paths, or a table in memory); raise :class:`InputError` naming the file or column,
    TypeError for an input of another type.

    Checks: every path exists and is a file or directory (a FIFO would block), each file is
    what its name says, every file has the required columns with usable types, no two roles
    read one column, and the dataset is not empty.
    """
    mapping = parse_columns(columns)
    table = in_memory(inputs)
    files = [InputFile(Path(MEMORY_NAME), MEMORY_NAME, "memory", 0, table)] if table is not None \
        else _files(input_paths(inputs))  # fmt: skip
    present = {"premise", "hypothesis", "target", "id"}
    counts: list[int] = []
    for file in files:
        schema, rows = _shape(file)
        for logical in LOGICAL_COLUMNS:
            physical = mapping[logical]
            if physical not in schema.names:
                if logical in _REQUIRED:
                    raise InputError(
                        f"{file.path}: missing column {physical!r} ({logical}); "
                        f"columns are {', '.join(schema.names) or '(none)'}"
                        + ("" if physical != logical else f" — map one with --columns {logical}=NAME")
                    )
                present.discard(logical)
                continue
            _check_type(file, logical, physical, schema.field(physical).type)
        counts.append(rows)
    if sum(counts) == 0:
        names = ", ".join(str(f.path) for f in files[:3]) + (" ..." if len(files) > 3 else "")
        raise InputError(f"{names}: the dataset is empty (0 rows)")
    return Source(files, mapping, present, counts)


def _files(inputs: Sequence[str | os.PathLike[str]]) -> list[InputFile]:
    """The files ``inputs`` name (local paths, or URLs of an object store), each once, checked
    to exist and to be what its name says."""
    if not inputs:
        raise InputError("no input given")
    seen: set[Path] = set()
    files: list[InputFile] = []
    for arg in inputs:
        if is_url(arg):
            for file in _expand_url(os.fspath(arg)):
                if file.path not in {f.path for f in files}:
                    _check_content(file)
                    files.append(file)
            continue
        for path, base in _expand(os.fspath(arg)):
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            fmt = _format_of(path)
            try:
                rel = path.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                rel = path.name
            file = InputFile(path, rel, fmt, path.stat().st_size)
            _check_content(file)
            files.append(file)
    return files
