"""The trusted zone: typed, checked, joined Parquet built from the raw zone with Spark.

typed.py    reading a raw CSV as strings and typing it by the schema registry
rules.py    the quality rules and the rejected rows
build.py    the trusted tables (daily, snapshot, rejected) as DataFrame -> DataFrame
quality.py  the quality summary and the rejected-share check
job.py      write_trusted: read, build, stage, check, publish (EMR and local alike)

Every module imports pyspark: nothing a Lambda imports may import this package.
"""
