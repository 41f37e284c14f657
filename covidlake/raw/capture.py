"""A captured source file, and the checks its bytes pass while they stream in.

Each source is captured to a local temporary file first, hashed and counted while it
streams, and only then handed to the raw zone, so a failed capture leaves nothing in the
lake. The checks here (header, UTF-8, quoting, width, row count) are shared by the HTTP
download (raw.download) and the PostgreSQL extract (raw.postgres).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from covidlake.errors import SchemaError
from covidlake.schemas import TableSchema, canonical_columns

# Spark's CSV reader stops at this many columns (option maxColumns) with a Java trace.
SPARK_MAX_COLUMNS = 20_480


@dataclass(frozen=True)
class Capture:
    path: Path
    sha256: str
    bytes: int
    rows: int
    final_url: str | None = None  # where the bytes came from after redirects (HTTP sources)
    columns: list[str] | None = None  # as Spark's CSV reader names them (spark_column_names)


def spark_column_names(head: bytes) -> list[str] | None:
    """The column names Spark's CSV reader (header=true, default options) gives a file
    that starts with `head`, worked out without a Spark job, so the ETL can hand Spark
    the schema instead of a job that reads the header; None when only Spark's own parser
    can tell: a quote, a blank line or a lone CR in the header line, or no whole line.

    As Spark does (CSVUtils.makeSafeHeader): a UTF-8 byte order mark is dropped, names
    keep their spaces, an empty name becomes `_c<index>` and names that repeat (ignoring
    case) get their index appended."""
    line, newline, _ = head.partition(b"\n")
    if not newline:
        return None
    try:
        text = line.removesuffix(b"\r").decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    if not text.strip() or '"' in text or "\r" in text:
        return None
    names = text.split(",")
    lowered = [name.lower() for name in names]
    repeated = {name for name in lowered if lowered.count(name) > 1}
    return [
        f"_c{index}" if not name else f"{name}{index}" if name.lower() in repeated else name
        for index, name in enumerate(names)
    ]


def check_header(header: list[str], schema: TableSchema, where: str) -> list[str]:
    """Normalised column names; raises SchemaError naming every missing required column."""
    names = canonical_columns(header)
    if not any(names):
        raise SchemaError(f"{where}: no header row (empty file?)")
    if len(names) == 1 and schema.required_names != names:
        raise SchemaError(f"{where}: not a comma-separated file with a header row (first line: {header[0][:80]!r})")
    missing = [c for c in schema.required_names if c not in names]
    if missing:
        raise SchemaError(
            f"{where}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {', '.join(names[:12])}{', …' if len(names) > 12 else ''})"
        )
    return names


class CsvRowCounter:
    """Counts a CSV's records while its bytes stream past (hashing and writing them),
    so no second read of the file: one pass at the speed of bytes.split/count.

    A record ends at a newline outside quotes. RFC 4180 doubles a quote inside a quoted
    field, so the parity of the quotes seen so far says whether a newline is inside one;
    each chunk is split on quotes and only the outside parts are searched for newlines.
    Empty lines are not records (Spark skips them). No pyarrow needed: this runs in the
    Lambda layer as it does locally (benchmarks/NOTES.md)."""

    HEAD_BYTES = 1 << 20

    def __init__(self) -> None:
        self.inside = False
        self.newlines = 0
        self.empty_lines = 0
        self.offset = 0
        self.tail = b""  # the last outside bytes, for an empty line split over two chunks
        self.head = bytearray()
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.bad_utf8: tuple[int, str] | None = None  # (byte, reason) of the first invalid sequence
        self.open_commas = 0  # separators seen so far in the record still open at the chunk's end
        self.too_wide: tuple[int, int] | None = None  # (record number, columns) of the first too wide
        # set by finish: the number of data rows, the header as Spark names it
        self.rows: int | None = None
        self.columns: list[str] | None = None

    def update(self, chunk: bytes) -> None:
        if self.bad_utf8 is None:
            try:
                self.decoder.decode(chunk)
            except UnicodeDecodeError as err:
                self.bad_utf8 = (self.offset + err.start, err.reason)
        if len(self.head) < self.HEAD_BYTES:
            self.head += chunk[: self.HEAD_BYTES - len(self.head)]
        self.offset += len(chunk)
        parts = chunk.split(b'"')
        # a separator where a quoted part was cut out: `\n""\n` is a record, not an empty line
        outside = b"\0".join(parts[1 if self.inside else 0 :: 2])
        if len(parts) % 2 == 0:
            self.inside = not self.inside
        self._check_widths(outside)
        self.newlines += outside.count(b"\n")
        joined = self.tail + outside
        if b"\n\n" in joined or b"\n\r\n" in joined:  # rare: count them exactly
            self.empty_lines += _empty_lines(joined) - _empty_lines(self.tail)
        self.tail = b"\0" if self.inside else joined[-2:]

    def _check_widths(self, outside: bytes) -> None:
        """Note the first record wider than Spark's CSV reader takes. Only a line of more than
        SPARK_MAX_COLUMNS bytes can have that many separators, so most chunks cost one max()."""
        if self.too_wide is not None:
            return
        lines = outside.split(b"\n")
        if len(lines) == 1:
            self.open_commas += lines[0].count(b",")
            return
        self._note_width(0, self.open_commas + lines[0].count(b","))
        if max(map(len, lines[1:-1]), default=0) > SPARK_MAX_COLUMNS:
            for index, line in enumerate(lines[1:-1], start=1):
                self._note_width(index, line.count(b","))
        self.open_commas = lines[-1].count(b",")

    def _note_width(self, index_in_chunk: int, commas: int) -> None:
        if commas + 1 > SPARK_MAX_COLUMNS and self.too_wide is None:
            self.too_wide = (self.newlines + index_in_chunk + 1, commas + 1)

    def finish(self, schema: TableSchema, where: str) -> int:
        """Check the header against schema; the number of data rows."""
        if self.too_wide is None and not self.inside:
            self._note_width(0, self.open_commas)
        if self.too_wide is not None:
            number, columns = self.too_wide
            which = "the header" if number == 1 else f"record {number}"
            raise SchemaError(f"{where}: {which} has {columns} columns; Spark reads at most {SPARK_MAX_COLUMNS}")
        if self.bad_utf8 is None:
            try:
                self.decoder.decode(b"", final=True)
            except UnicodeDecodeError as err:
                self.bad_utf8 = (self.offset - len(self.decoder.getstate()[0]) + err.start, err.reason)
        if self.bad_utf8 is not None:
            raise SchemaError(f"{where}: not UTF-8 text (byte {self.bad_utf8[0]}: {self.bad_utf8[1]})")
        if self.inside:
            raise SchemaError(f"{where}: not a readable CSV (a quoted field is never closed)")
        head = bytes(self.head)
        header = next(csv.reader(io.StringIO(head.decode("utf-8", errors="replace"))), [])
        check_header(header, schema, where)
        self.columns = spark_column_names(head)
        last_line_open = self.offset > 0 and not self.tail.endswith(b"\n")
        records = self.newlines - self.empty_lines + (1 if last_line_open else 0)
        self.rows = max(records - 1, 0)
        if self.rows == 0:
            raise SchemaError(f"{where}: header only, no data rows")
        return self.rows


def _empty_lines(data: bytes) -> int:
    return data.replace(b"\r\n", b"\n").split(b"\n")[1:-1].count(b"")


def count_csv_rows(chunks: Iterable[bytes], schema: TableSchema, where: str) -> CsvRowCounter:
    """CsvRowCounter over chunks, finished: the header checked against schema; its
    `rows` the number of data rows, its `columns` as Spark names them."""
    counter = CsvRowCounter()
    for chunk in chunks:
        counter.update(chunk)
    counter.finish(schema, where)
    return counter
