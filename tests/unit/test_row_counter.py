"""Ingest counts a CSV's rows while the bytes stream past: the quote-aware
counter, which runs without pyarrow (the Lambda layer has none), must agree with
pyarrow's streaming CSV reader and Python's csv module on quoted newlines, doubled
quotes, CRLF, empty lines and every chunk boundary."""

from __future__ import annotations

import csv
import io

import pyarrow.csv as pacsv
import pytest

from covidlake.errors import SchemaError
from covidlake.raw.capture import CsvRowCounter
from covidlake.schemas import COVID_FACTS

HEADER = b"iso_code,location,date,total_cases,total_deaths,note\r\n"
TRICKY = HEADER + (
    b'ALA,Aland,2024-01-01,1,0,"two\nlines"\r\n'
    b'ALA,"Aland",2024-01-02,2,0,"quote "" and\r\n\r\nblank lines inside"\r\n'
    b"\r\n"  # an empty line: not a row
    b'BOR,"Bor, duria",2024-01-01,3,0,""\n'
    b"\n\n"
    b'BOR,Borduria,2024-01-02,4,0,"ends\nwithout newline"'
)


def count(data: bytes, chunk: int) -> int:
    counter = CsvRowCounter()
    for i in range(0, len(data), chunk):
        counter.update(data[i : i + chunk])
    return counter.finish(COVID_FACTS, "test")


def pyarrow_rows(path) -> int:
    reader = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    return sum(batch.num_rows for batch in reader)


def csv_module_rows(data: bytes) -> int:
    records = list(csv.reader(io.StringIO(data.decode(), newline="")))
    return sum(1 for r in records[1:] if r)


def test_counts_agree_with_pyarrow_and_csv_at_every_chunk_boundary(tmp_path):
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY)
    expected = pyarrow_rows(path)
    assert expected == csv_module_rows(TRICKY) == 4
    assert {count(TRICKY, size) for size in range(1, len(TRICKY) + 1)} == {expected}


def test_a_plain_newline_count_would_be_wrong():
    """Negative control: the fixture does have newlines inside quotes and empty lines."""
    assert TRICKY.count(b"\n") - 1 != 4


def test_generated_owid_file_agrees_with_pyarrow(tmp_path):
    from benchmarks.generate import generate

    path = tmp_path / "owid.csv"
    generate(3000, path, seed=1)
    data = path.read_bytes()
    assert count(data, 1 << 16) == pyarrow_rows(path) == 3000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (HEADER + b'ALA,"Aland,2024-01-01,1,0,x\n', "quoted field is never closed"),
        (HEADER + b"ALA,\xc5land,2024-01-01,1,0,x\n", "not UTF-8 text \\(byte 58"),
        (HEADER + b"\n", "header only"),
        (b"location,total_cases\n1,2\n", "missing required column.*date"),
    ],
)
def test_bad_files_are_named(data, message):
    with pytest.raises(SchemaError, match=message):
        count(data, 7)


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_a_record_wider_than_spark_takes_is_named_whatever_the_chunking(chunk):
    from covidlake.raw.capture import SPARK_MAX_COLUMNS

    row = b"ALA,Aland,2024-01-01,1,0,x"
    wide = row + b"," * (SPARK_MAX_COLUMNS - 6 + 1) + b"\n"  # 20,481 columns
    data = HEADER + row + b"\n" + wide + row + b"\n"
    with pytest.raises(SchemaError, match=r"record 3 has 20481 columns; Spark reads at most 20480"):
        count(data, chunk)


def test_commas_inside_quotes_do_not_count_as_columns():
    """The negative control: 30,000 commas inside one quoted field are one column."""
    data = HEADER + b'ALA,Aland,2024-01-01,1,0,"' + b"," * 30_000 + b'"\n'
    assert count(data, 4096) == 1


def test_the_counter_records_the_header_as_spark_names_it():
    counter = CsvRowCounter()
    counter.update(b"\xef\xbb\xbfiso_code,location,date,total_cases,total_deaths,Note,note,\r\n")
    counter.update(b"ALA,Aland,2024-01-01,1,0,x,y,z\r\n")
    assert counter.finish(COVID_FACTS, "test") == 1
    names = ["iso_code", "location", "date", "total_cases", "total_deaths", "Note5", "note6", "_c7"]
    assert counter.columns == names
