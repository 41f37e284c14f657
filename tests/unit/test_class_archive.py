"""The class archive's key, and when a run maps it (covidlake.class_archive)."""

from __future__ import annotations

import os

import pytest

from covidlake import class_archive
from covidlake.class_archive import QUIET, archive_options, archive_path
from covidlake.settings import Settings
from covidlake.spark import driver_java_options


@pytest.fixture
def install(tmp_path, monkeypatch):
    """A fake java and jar folder, and settings keeping archives under tmp_path."""
    java = tmp_path / "jdk" / "java"
    jars = tmp_path / "jars"
    java.parent.mkdir()
    jars.mkdir()
    java.write_bytes(b"java")
    for name in ("spark-core.jar", "spark-sql.jar"):
        (jars / name).write_bytes(b"classes")
    monkeypatch.setattr(class_archive, "java_executable", lambda: java)
    monkeypatch.setattr(class_archive, "spark_jars", lambda: jars)
    for name in class_archive.JVM_OPTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return java, jars, Settings(spark_class_archive_dir=tmp_path / "archives")


def built(settings: Settings):
    """A (fake) archive where the settings' key puts it."""
    path = archive_path(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    return path


def test_the_key_follows_the_jvm_the_jars_and_the_heap(install):
    java, jars, settings = install
    first = archive_path(settings)
    assert first.parent == settings.spark_class_archive_dir and first == archive_path(settings)
    (jars / "spark-sql.jar").write_bytes(b"other classes")  # another size
    changed_jar = archive_path(settings)
    os.utime(java, ns=(1, 1))  # another JVM build, same size
    changed_java = archive_path(settings)
    (jars / "extra.jar").write_bytes(b"x")
    added_jar = archive_path(settings)
    bigger_heap = archive_path(settings.model_copy(update={"spark_driver_memory": "40g"}))
    keys = {first, changed_jar, changed_java, added_jar, bigger_heap}
    assert len(keys) == 5


def test_no_archive_no_option(install):
    _, _, settings = install
    assert archive_options(settings) == ()


def test_a_built_archive_is_mapped_quietly(install):
    _, _, settings = install
    path = built(settings)
    assert archive_options(settings) == (f"-XX:SharedArchiveFile={path}", QUIET)
    assert f"-XX:SharedArchiveFile={path}" in driver_java_options(1, archive_options(settings))


@pytest.mark.parametrize(
    "variable, value",
    [
        ("JAVA_TOOL_OPTIONS", "-XX:StartFlightRecording=filename=rec.jfr"),
        ("JDK_JAVA_OPTIONS", "-javaagent:/opt/apm.jar"),
        ("_JAVA_OPTIONS", "-agentlib:jdwp=transport=dt_socket"),
    ],
)
def test_never_beside_a_jvm_agent(install, monkeypatch, variable, value):
    _, _, settings = install
    built(settings)
    monkeypatch.setenv(variable, value)
    assert archive_options(settings) == ()


def test_switched_off(install):
    _, _, settings = install
    built(settings)
    assert archive_options(settings.model_copy(update={"spark_class_archive": False})) == ()


def test_without_java_there_is_no_key(install, monkeypatch):
    _, _, settings = install
    monkeypatch.setattr(class_archive, "java_executable", lambda: None)
    assert archive_path(settings) is None and archive_options(settings) == ()
