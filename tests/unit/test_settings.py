"""One configuration source: the component models share their common fields, the one
accessor parses each model once, and the Athena configuration is derived from settings."""

from __future__ import annotations

import pytest

from covidlake.emr_cluster import EmrSettings
from covidlake.query import AthenaConfig
from covidlake.settings import CovidlakeEnv, Settings, get_settings

EMR_REQUIRED = {
    "COVIDLAKE_LAKE_URI": "s3://lake",
    "COVIDLAKE_EMR_SERVICE_ROLE": "svc",
    "COVIDLAKE_EMR_INSTANCE_PROFILE": "prof",
}


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_components_read_the_shared_fields_from_the_same_variables(monkeypatch):
    for key, value in EMR_REQUIRED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COVIDLAKE_ATHENA_DATABASE", "other_db")
    monkeypatch.setenv("COVIDLAKE_ATHENA_WORKGROUP", "wg")
    local, emr = Settings(), EmrSettings()
    assert isinstance(local, CovidlakeEnv) and isinstance(emr, CovidlakeEnv)
    assert (local.athena_database, local.athena_workgroup) == (emr.athena_database, emr.athena_workgroup)
    assert (local.athena_database, local.athena_workgroup) == ("other_db", "wg")
    assert local.lake_uri == emr.lake_uri == "s3://lake"


def test_shared_fields_are_declared_once():
    shared = set(CovidlakeEnv.model_fields)
    for model in (Settings, EmrSettings):
        own = {name for name in model.__annotations__ if name in model.model_fields}
        # EmrSettings only narrows lake_uri (required, s3:// only); nothing else is redeclared
        assert own & shared <= {"lake_uri"}, f"{model.__name__} redeclares {own & shared}"


def test_athena_config_defaults_are_the_settings_defaults():
    assert AthenaConfig() == AthenaConfig.from_settings(Settings(_env_file=None))


def test_athena_config_follows_settings():
    settings = Settings(athena_workgroup="wg", athena_database="db", query_timeout_seconds=3, athena_catalog="cat")
    config = AthenaConfig.from_settings(settings)
    assert (config.workgroup, config.database, config.catalog, config.timeout_seconds) == ("wg", "db", "cat", 3)


def test_accessor_parses_each_model_once(monkeypatch, fresh_settings):
    monkeypatch.setenv("COVIDLAKE_QUERY_TIMEOUT_SECONDS", "7")
    first = get_settings()
    assert first is get_settings(Settings) and first.query_timeout_seconds == 7
    monkeypatch.setenv("COVIDLAKE_QUERY_TIMEOUT_SECONDS", "9")
    assert get_settings().query_timeout_seconds == 7  # parsed once per process
    for key, value in EMR_REQUIRED.items():
        monkeypatch.setenv(key, value)
    assert isinstance(get_settings(EmrSettings), EmrSettings)
    get_settings.cache_clear()
    assert get_settings().query_timeout_seconds == 9
