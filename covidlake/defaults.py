"""Default values named once, for the settings models and for code that cannot import them.

No imports on purpose: the Spark jobs on EMR (which have no pydantic) take their
command-line defaults from here, as covidlake.settings takes its field defaults.
"""

DEFAULT_ATHENA_WORKGROUP = "primary"
DEFAULT_ATHENA_CATALOG = "AwsDataCatalog"
DEFAULT_ATHENA_RESULT_REUSE_MINUTES = 60
ATHENA_MAX_RESULT_REUSE_MINUTES = 7 * 24 * 60  # Athena's ceiling: one week
DEFAULT_QUERY_TIMEOUT_SECONDS = 20.0  # HTTP API integrations stop at 30 s
COUNTRY_DB_NAME = "covid_data"  # the PostgreSQL database holding table country_data
DEFAULT_DB_PORT = 5432
# ETL: fail the run (publishing nothing) if more than this share of an input's rows is rejected
DEFAULT_MAX_REJECTED_SHARE = 0.05
DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024**3  # 2 GiB
