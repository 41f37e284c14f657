"""Typed settings from environment variables (prefix COVIDLAKE_), shared by the CLI,
the Lambda handlers and the Spark jobs. Nothing account-specific has a default.

One source, composed per component (as aws-lambda-handler-cookbook composes its env-var
models): :class:`CovidlakeEnv` holds the prefix and the fields every component shares
(the lake, the Athena database and workgroup); :class:`Settings` (CLI, ingest, API) and
``covidlake.emr_cluster.EmrSettings`` (the create_emr Lambda) extend it, and the query
layer's ``AthenaConfig`` is built from :class:`Settings` (``AthenaConfig.from_settings``).
One accessor, :func:`get_settings`, parses each model once per process.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from covidlake.defaults import (
    ATHENA_MAX_RESULT_REUSE_MINUTES,
    COUNTRY_DB_NAME,
    DEFAULT_ATHENA_CATALOG,
    DEFAULT_ATHENA_RESULT_REUSE_MINUTES,
    DEFAULT_ATHENA_WORKGROUP,
    DEFAULT_DB_PORT,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_REJECTED_SHARE,
    DEFAULT_QUERY_TIMEOUT_SECONDS,
)
from covidlake.schemas import ATHENA_DATABASE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DATA = PROJECT_ROOT / "data"

ENV_PREFIX = "COVIDLAKE_"


# beside the install it belongs to (the virtualenv), so it goes when the install goes
DEFAULT_CLASS_ARCHIVE_DIR = Path(sys.prefix) / "share" / "covidlake"


class CovidlakeEnv(BaseSettings):
    """What every component reads: the lake and where its refined tables are served."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # where the lake lives: a folder or s3://bucket[/prefix]
    lake_uri: str = "./lake"
    athena_database: str = ATHENA_DATABASE
    athena_workgroup: str = DEFAULT_ATHENA_WORKGROUP


class Settings(CovidlakeEnv):
    """The CLI, the ingest and results Lambdas, and the local runner."""

    # the COVID CSV; None means the bundled data/covid_data.csv served on 127.0.0.1
    source_url: str | None = None
    # PostgreSQL holding country_data; None means the embedded server (local runs)
    db_url: str | None = None
    # AWS: a Secrets Manager secret with username/password (RDS-managed or your own)
    db_secret_arn: str | None = None
    db_host: str | None = None
    db_port: int = DEFAULT_DB_PORT
    db_name: str = COUNTRY_DB_NAME

    http_connect_timeout: float = Field(5.0, gt=0)
    http_read_timeout: float = Field(30.0, gt=0)
    http_retries: int = Field(3, ge=0)
    http_backoff: float = Field(0.5, ge=0)
    max_download_bytes: int = Field(DEFAULT_MAX_DOWNLOAD_BYTES, gt=0)
    # the whole download, first byte to last: a source that drips cannot hold ingest until
    # the Lambda's own timeout (900 s, shared with the database extract)
    http_download_deadline_seconds: float = Field(600.0, gt=0)
    # a redirect to another host: follow it (the manifest records the final URL) or refuse it;
    # https -> http is always refused
    http_cross_host_redirects: Literal["follow", "refuse"] = "follow"
    db_connect_timeout: int = Field(5, gt=0)
    # AWS: the RDS CA bundle the layer ships (layer/Makefile); URLs built from the secret use
    # sslmode=verify-full against it. Other URLs get sslmode=require unless they name a mode.
    db_ca_bundle: str = "/opt/rds-ca/global-bundle.pem"

    max_rejected_share: float = Field(DEFAULT_MAX_REJECTED_SHARE, ge=0, le=1)

    # Spark on one machine
    spark_master: str = "local[*]"
    spark_driver_memory: str = "2g"
    shuffle_partitions: int | None = Field(None, ge=1, description="None: sized to the input")
    # the JVM class archive that shortens Spark's start (covidlake.class_archive), built by
    # `covidlake class-archive` (make install); switch it off with COVIDLAKE_SPARK_CLASS_ARCHIVE=false
    spark_class_archive: bool = True
    spark_class_archive_dir: Path = DEFAULT_CLASS_ARCHIVE_DIR

    # local runner
    state_dir: Path = Path(".covidlake")
    # how long a run waits for another run on the same lake before giving up
    lock_wait_seconds: float = Field(0.0, ge=0)

    # results API (POST /showResults): which engine answers, and how
    query_backend: Literal["duckdb", "athena"] = "duckdb"
    athena_catalog: str = DEFAULT_ATHENA_CATALOG
    # None: the workgroup's own result location (set it on the workgroup)
    athena_output_location: str | None = None
    athena_result_reuse_minutes: int = Field(
        DEFAULT_ATHENA_RESULT_REUSE_MINUTES, ge=1, le=ATHENA_MAX_RESULT_REUSE_MINUTES
    )
    # whole time budget of one query (start, poll, read); HTTP API integrations stop at 30 s
    query_timeout_seconds: float = Field(DEFAULT_QUERY_TIMEOUT_SECONDS, gt=0)
    # how long a read of refined/_version.json is trusted before it is read again
    version_check_seconds: float = Field(0.0, ge=0)
    api_cors_origin: str = "*"


Model = TypeVar("Model", bound=CovidlakeEnv)


@lru_cache
def _parsed(model: type[CovidlakeEnv]) -> CovidlakeEnv:
    return model()


def get_settings(model: type[Model] = Settings) -> Model:  # type: ignore[assignment]
    """The settings of one component, parsed from the environment once per process
    (``get_settings(EmrSettings)`` for the cluster's); ``get_settings.cache_clear()``
    makes the next call read the environment again."""
    return _parsed(model)  # type: ignore[return-value]


get_settings.cache_clear = _parsed.cache_clear  # type: ignore[attr-defined]
