"""The refined zone: trusted snapshot -> the refined tables (Spark SQL and Spark ML).

* :mod:`covidlake.refined.tables` -- one builder per table, ``DataFrame -> DataFrame``;
* :mod:`covidlake.refined.build` -- every table of the registry (covidlake.schemas.
  REFINED_TABLES) built in its order, then staged, published together and versioned.

emr/analytics.py is the spark-submit entry point; the runner calls the same functions.
Nothing here is imported by the Lambda functions (these modules import pyspark).
"""
