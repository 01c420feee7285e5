"""Reading tables in chunks: CSV (pyarrow, with a pandas fallback) and Parquet, as DataFrames.

Files larger than memory stream through `read_frames` a chunk at a time; `gitmlm.stats.profile`
builds profiles from the chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from gitmlm.errors import MlmError

_PARQUET_SUFFIXES = frozenset({".parquet", ".pq", ".parq"})
# Bytes of CSV parsed per call: enough blocks for pyarrow's threads, little memory.
_CSV_PARSE_BYTES = 8 << 20
_COMPRESSED = frozenset({".gz", ".bz2", ".zst", ".zstd", ".lz4", ".br"})


def read_frames(
    path: str | Path, chunk_rows: int = 200_000, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream a CSV or Parquet file as DataFrames of about `chunk_rows` rows.

    Parquet is recognised by its `PAR1` magic bytes (whatever the suffix); anything else is read as
    CSV (tab-separated for `.tsv`; `.gz`/`.bz2` are decompressed). Problems that can be seen up
    front (missing or empty file, a `.parquet` that is not Parquet, an unreadable CSV header,
    unknown columns) raise MlmError here rather than at the first chunk.
    """
    p = Path(path)
    if not p.exists():
        raise MlmError(f"{p}: no such file")
    if not p.is_file():
        raise MlmError(f"{p}: not a file")
    if p.stat().st_size == 0:
        raise MlmError(f"{p}: file is empty")
    if chunk_rows < 1:
        raise MlmError("chunk_rows must be at least 1")
    with p.open("rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return _read_parquet(p, chunk_rows, columns)
    if p.suffix.lower() in _PARQUET_SUFFIXES:
        raise MlmError(f"{p}: not a Parquet file (it lacks the PAR1 magic bytes)")
    return _read_csv(p, chunk_rows, columns)


def read_parquet_file(
    f: IO[bytes], name: str, chunk_rows: int = 200_000, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream an open Parquet file (an object store's, say) as `read_frames` streams a path;
    `name` says which file in errors. The caller keeps `f` open until the frames are read."""
    if chunk_rows < 1:
        raise MlmError("chunk_rows must be at least 1")
    return _read_parquet(f, chunk_rows, columns, name)


def _read_parquet(
    p: Path | IO[bytes], chunk_rows: int, columns: list[str] | None, name: str | None = None
) -> Iterator[pd.DataFrame]:
    shown = name if name is not None else str(p)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise MlmError("reading Parquet needs pyarrow: pip install 'gitmlm[parquet]'") from e
    try:
        # Without pre_buffer pyarrow holds one row group's pages, not several: half the memory.
        pf = pq.ParquetFile(p, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise MlmError(f"{shown}: cannot read Parquet: {_first_line(e)}") from e
    if columns is not None:
        _check_columns(shown, columns, list(pf.schema_arrow.names))

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from pf.iter_batches(batch_size=min(chunk_rows, 65_536), columns=columns)
        except (pa.ArrowException, OSError) as e:
            raise MlmError(f"{shown}: cannot read Parquet: {_first_line(e)}") from e
        finally:
            pf.close()

    return _rechunk(batches(), chunk_rows)


def _check_columns(p: Path | str, wanted: list[str], present: list[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        names = ", ".join(map(repr, missing))
        raise MlmError(f"{p}: no column {names} (has: {', '.join(present)})")


def _first_line(e: BaseException) -> str:
    # Parse errors quote the offending row, which may be binary junk: keep it short and printable.
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    line = "".join(ch if ch.isprintable() else "?" for ch in line)
    return line if len(line) <= 160 else line[:157] + "..."


def _read_csv(p: Path, chunk_rows: int, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    delimiter = "\t" if ".tsv" in p.suffixes else ","
    try:
        import pyarrow as pa
    except ImportError:
        return _read_csv_pandas(p, chunk_rows, columns, delimiter, None)
    opts = _CsvOptions(p, chunk_rows, columns, delimiter)
    compressed = bool({s.lower() for s in p.suffixes} & _COMPRESSED)
    try:
        # Reads the header and one block: column names, a first guess at types, checks.
        reader = opts.open(0, probe=not compressed)
    except pa.ArrowInvalid as e:
        try:
            # Quoted newlines need pyarrow's slower, serial row splitter.
            opts.newlines = True
            reader = opts.open(0, probe=not compressed)
        except (pa.ArrowException, OSError):
            # pandas' parser is slower but more forgiving of odd quoting: try it before giving
            # up, and report pyarrow's message if it fails too.
            return _read_csv_pandas(p, chunk_rows, columns, delimiter, e)
    except (pa.ArrowException, OSError) as e:
        raise MlmError(f"{p}: cannot read CSV: {_first_line(e)}") from e
    if not compressed:
        return _rechunk(_split_csv(p, opts), chunk_rows)

    def reopen(done: int, error: Exception) -> Any:
        # Types are inferred from the first block, so a later block that does not fit (a "3.5"
        # in an int column) is re-read with that column widened; a row split by a quoted
        # newline is re-read with the serial splitter. The new reader resumes after `done` rows.
        for _ in range(2 * len(opts.inferred) + 2):
            opts.adapt(error)
            try:
                return opts.open(done)
            except pa.ArrowInvalid as e:
                error = e
            except (pa.ArrowException, OSError) as e:
                raise MlmError(f"{p}: cannot read CSV: {_first_line(e)}") from e
        raise MlmError(f"{p}: cannot read CSV: {_first_line(error)}") from error

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal reader
        done = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                reader = reopen(done, e)
                continue
            except (pa.ArrowException, OSError) as e:
                raise MlmError(f"{p}: cannot read CSV: {_first_line(e)}") from e
            done += batch.num_rows
            yield batch

    return _rechunk(batches(), chunk_rows)


def _rechunk(batches: Iterator[Any], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Frames of exactly `chunk_rows` rows (the last may be shorter) from record batches."""
    import pyarrow as pa

    pending: list[Any] = []
    pending_rows = 0
    for batch in batches:
        if pending and not batch.schema.equals(pending[0].schema):
            # A CSV column was widened mid-file: the rows before it go out as a short frame.
            yield pa.Table.from_batches(pending).to_pandas()
            pending, pending_rows = [], 0
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows < chunk_rows:
            continue
        table = pa.Table.from_batches(pending)
        start = 0
        while pending_rows - start >= chunk_rows:
            yield table.slice(start, chunk_rows).to_pandas()
            start += chunk_rows
        rest = table.slice(start)
        pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending).to_pandas()


class _CsvOptions:
    """How to (re)open one CSV with pyarrow's streaming reader."""

    def __init__(self, p: Path, chunk_rows: int, columns: list[str] | None, delimiter: str):
        self.path = p
        # About `chunk_rows` rows per block, but at most 8 MiB: pyarrow's threads parse a
        # read_csv call's blocks in parallel, and smaller calls keep memory low.
        self.block_size = min(_block_size(p, chunk_rows), _CSV_PARSE_BYTES)
        self.columns = columns
        self.delimiter = delimiter
        self.types: dict[str, Any] | None = None  # fixed after the first chunk, then widened
        self.inferred: dict[str, Any] = {}  # every file column, as inferred from the first block
        self.newlines = False

    def column_types(self) -> dict[str, Any]:
        """The types to read with: those fixed so far, and text for columns pyarrow would read
        as times. A CSV holds text; pandas' read_csv (what a training script uses) keeps a time
        column as text, and so must the profile of the file, or one column gets two kinds."""
        import pyarrow as pa

        texts = {n: pa.string() for n, t in self.inferred.items() if pa.types.is_temporal(t)}
        return {**(self.types or {}), **texts}

    def adapt(self, error: Exception) -> None:
        """Change how to read after `error`: widen a column whose type did not fit, or use the
        serial row splitter for a quoted newline; when neither helps, a clear error."""
        retyped = _widen(list(self.inferred), self.types or self.inferred, str(error))
        if retyped is not None:
            self.types = retyped
        elif "parse error" in str(error) and not self.newlines:
            self.newlines = True
        else:
            raise MlmError(f"{self.path}: cannot read CSV: {_first_line(error)}") from error

    def parse(self, data: memoryview) -> Any:
        """One chunk of whole records (no header) as a table, with the types of earlier chunks.

        pyarrow's read_csv parses the chunk's blocks in parallel, which its streaming reader
        does not: this is what makes CSV reading about twice as fast as the streaming reader.
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(column_names=list(self.inferred), use_threads=True)
        for _ in range(2 * len(self.inferred) + 2):
            parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=self.newlines)
            convert = pacsv.ConvertOptions(
                column_types=self.column_types(), include_columns=self.columns or []
            )
            try:
                table = pacsv.read_csv(pa.py_buffer(data), read, parse, convert)
            except pa.ArrowInvalid as e:
                self.adapt(e)
                continue
            except (pa.ArrowException, OSError) as e:
                raise MlmError(f"{self.path}: cannot read CSV: {_first_line(e)}") from e
            binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
            if binary:
                raise MlmError(
                    f"{self.path}: cannot read CSV: column {binary[0]!r} is not UTF-8 text; "
                    "re-encode the file"
                )
            if self.types is None:
                self.types = {f.name: f.type for f in table.schema}
            return table
        raise MlmError(f"{self.path}: cannot read CSV: column types keep changing")

    def open(self, skip: int, probe: bool = False) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        p = self.path
        read = pacsv.ReadOptions(
            block_size=min(self.block_size, 1 << 20) if probe else self.block_size,
            use_threads=True,
            skip_rows_after_names=skip,
        )
        parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=self.newlines)
        convert = pacsv.ConvertOptions(column_types=self.column_types())
        reader = pacsv.open_csv(
            str(p), read_options=read, parse_options=parse, convert_options=convert
        )
        if not self.inferred:
            self.inferred = {f.name: f.type for f in reader.schema}
            if any(pa.types.is_temporal(t) for t in self.inferred.values()):
                return self.open(skip, probe)  # again, with those columns as text
        binary = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
        if binary:
            raise MlmError(
                f"{p}: cannot read CSV: column {binary[0]!r} is not UTF-8 text; re-encode the file"
            )
        if self.columns is not None:
            _check_columns(p, self.columns, list(reader.schema.names))
            # include_columns also fixes the order; set it only once the names are known good.
            convert = pacsv.ConvertOptions(
                column_types=self.column_types(), include_columns=self.columns
            )
            reader = pacsv.open_csv(
                str(p), read_options=read, parse_options=parse, convert_options=convert
            )
        return reader


def _block_size(p: Path, chunk_rows: int) -> int:
    # Size blocks so one block is about `chunk_rows` rows: bytes per row from the first 64 KiB.
    with p.open("rb") as f:
        head = f.read(1 << 16)
    lines = max(head.count(b"\n"), 1)
    per_row = max(len(head) // lines, 1)
    return int(min(max(per_row * chunk_rows, 1 << 16), 1 << 28))


def _widen(names: list[str], types: dict[str, Any], message: str) -> dict[str, Any] | None:
    """`types` with the column a conversion error names widened (null, int → float → text).

    `names` are all the file's columns in order: pyarrow numbers columns by file position.
    """
    import re

    import pyarrow as pa

    m = re.search(r"CSV column #(\d+)", message)
    if m is None or "conversion error" not in message or int(m.group(1)) >= len(names):
        return None
    name = names[int(m.group(1))]
    old = types.get(name)
    if old is None or pa.types.is_string(old) or pa.types.is_large_string(old):
        return None
    wider = pa.float64() if pa.types.is_integer(old) or pa.types.is_null(old) else pa.string()
    return {**types, name: wider}


def _split_csv(p: Path, opts: _CsvOptions) -> Iterator[Any]:
    """Record batches of an uncompressed CSV, parsed at most 8 MiB at a time.

    Chunks end at a newline outside quotes: with RFC 4180 quoting (a quote inside a field is
    doubled) that is a newline preceded by an even number of quote characters in the chunk.
    """
    with p.open("rb") as f:
        head = f.read(1 << 20)
        start = _record_end(head, first=True)
        if start < 0:
            return  # a header and no records
        pos = start
        chunk = size = opts.block_size
        while True:
            f.seek(pos)
            buf = f.read(size)
            eof = len(buf) < size
            if not buf.strip():
                return
            cut = len(buf) if eof else _record_end(buf, first=False)
            if cut <= 0:
                size *= 2  # one record longer than a chunk: read more at once
                continue
            yield from opts.parse(memoryview(buf)[:cut]).to_batches()
            if eof:
                return
            # The partial record after `cut` is read again with the next chunk.
            pos += cut
            size = chunk


def _record_end(buf: bytes, *, first: bool) -> int:
    """Offset just past the first (or last) newline outside quotes in `buf`, or -1."""
    if first:
        i = buf.find(b"\n")
        while i >= 0 and buf.count(b'"', 0, i) % 2:
            i = buf.find(b"\n", i + 1)
        return i + 1 if i >= 0 else -1
    i = buf.rfind(b"\n")
    quotes = buf.count(b'"', 0, i) if i >= 0 else 0
    while i >= 0 and quotes % 2:
        j = buf.rfind(b"\n", 0, i)
        quotes -= buf.count(b'"', j + 1 if j >= 0 else 0, i)
        i = j
    return i + 1 if i >= 0 else -1


def _read_csv_pandas(
    p: Path,
    chunk_rows: int,
    columns: list[str] | None,
    delimiter: str,
    arrow_error: BaseException | None,
) -> Iterator[pd.DataFrame]:
    def fail(e: BaseException) -> MlmError:
        shown = arrow_error if arrow_error is not None else e
        return MlmError(f"{p}: cannot read CSV: {_first_line(shown)}")

    try:
        reader = pd.read_csv(p, sep=delimiter, chunksize=chunk_rows, usecols=columns)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise fail(e) from e

    def gen() -> Iterator[pd.DataFrame]:
        try:
            with reader:
                yield from reader
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
            raise fail(e) from e

    return gen()
