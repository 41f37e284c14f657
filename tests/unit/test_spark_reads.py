"""Reads that start no Spark job: a raw CSV whose header ingest recorded, a trusted table
read with the registry's schema. The names ingest works out must be the ones Spark's
own header reading gives, and the rows read the same either way."""

from __future__ import annotations

import itertools

import pytest

from covidlake.raw.capture import CsvRowCounter, spark_column_names
from covidlake.settings import BUNDLED_DATA
from covidlake.trusted.typed import read_csv_as_strings, read_trusted

HEAD_BYTES = CsvRowCounter.HEAD_BYTES  # what ingest keeps of a file's start
GROUPS = itertools.count()
# Headers Spark names differently from a plain split: a byte order mark, spaces kept,
# names repeated in another case, empty names, CRLF line ends.
TRICKY = {
    "bom_dupes_empty.csv": "\ufeffiso_code, location ,Dup,dup,,date,\n1,2,3,4,5,6,7\n8,9,10,11,12,13,14\n",
    "crlf.csv": "iso_code,location,date\r\nALA,Aland,2024-01-01\r\nBOR,Borduria,2024-01-02\r\n",
}


def csv_files(tmp_path):
    files = sorted(BUNDLED_DATA.glob("*.csv"))
    for name, text in TRICKY.items():
        (tmp_path / name).write_bytes(text.encode("utf-8"))
        files.append(tmp_path / name)
    return files


def jobs_started(spark, action) -> list[int]:
    """The ids of the Spark jobs `action` starts (in this thread)."""
    context = spark.sparkContext
    group = f"test-{next(GROUPS)}"
    context.setJobGroup(group, "jobs a read starts")
    try:
        action()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    return list(context.statusTracker().getJobIdsForGroup(group))


def test_ingests_column_names_are_sparks_and_read_the_same_rows(spark, tmp_path):
    for path in csv_files(tmp_path):
        names = spark_column_names(path.read_bytes()[:HEAD_BYTES])
        assert names is not None, path.name  # every bundled layout and these headers take the quick path
        inferred = read_csv_as_strings(spark, path.as_uri())
        given = read_csv_as_strings(spark, path.as_uri(), names)
        assert given.columns == inferred.columns, path.name
        assert given.collect() == inferred.collect(), path.name


def test_a_recorded_header_saves_the_job_that_reads_it(spark):
    url = (BUNDLED_DATA / "covid_data.csv").as_uri()
    names = spark_column_names((BUNDLED_DATA / "covid_data.csv").read_bytes()[:HEAD_BYTES])
    assert jobs_started(spark, lambda: read_csv_as_strings(spark, url))  # Spark reads the header itself
    assert jobs_started(spark, lambda: read_csv_as_strings(spark, url, names)) == []


def test_a_trusted_table_read_with_its_schema_starts_no_job(spark, tmp_path):
    url = (tmp_path / "snapshot").as_uri()
    rows = [("Aland", "ALA")]
    spark.createDataFrame(rows, "location string, iso_code string").write.parquet(url)
    assert jobs_started(spark, lambda: spark.read.parquet(url))  # footers read by a job
    read = []
    assert jobs_started(spark, lambda: read.append(read_trusted(spark, url, "snapshot"))) == []
    assert [(r["location"], r["iso_code"], r["continent"]) for r in read[0].collect()] == [("Aland", "ALA", None)]


@pytest.mark.parametrize(
    "head",
    [
        b'iso_code,"location",date\n1,2,3\n',  # a quote: only Spark's parser can tell
        b"\niso_code,location\n1,2\n",  # a blank first line (Spark skips it)
        b"iso_code,location\rALA,Aland\r",  # lone CR line ends
        b"iso_code,location,date",  # no whole line within the head
        b"\xff\xfeiso_code\n1\n",  # not UTF-8
    ],
)
def test_headers_only_spark_can_name_are_left_to_spark(head):
    assert spark_column_names(head) is None
