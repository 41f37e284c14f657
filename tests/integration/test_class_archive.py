"""The class archive is built from a real run and a later JVM loads Spark's classes from it.

Each JVM here is its own process (the test session's JVM is already up). The archive is the
install's (`make install` builds it; built here if missing): building it is idempotent.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from covidlake.class_archive import archive_path
from covidlake.settings import get_settings

pytestmark = pytest.mark.spark

PROBE = textwrap.dedent(
    """
    import sys
    from covidlake.settings import get_settings
    from covidlake.spark import local_session

    spark = local_session(get_settings(), 1, extra_java_options=tuple(sys.argv[1:]))
    assert spark.range(3).count() == 3
    spark.stop()
    """
)


def loaded_from(tmp_path, *options: str) -> str:
    """Where a fresh driver JVM loaded org.apache.spark.SparkContext from."""
    log = tmp_path / f"classes-{len(options)}.log"
    subprocess.run(
        [sys.executable, "-c", PROBE, *options, f"-Xlog:class+load=info:file={log}"], check=True, timeout=300
    )
    lines = [line for line in log.read_text().splitlines() if "org.apache.spark.SparkContext " in line]
    assert lines, f"SparkContext not in {log}"
    return lines[0]


def test_a_built_archive_serves_spark_classes(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "covidlake.cli", "class-archive"], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    path = archive_path(get_settings())
    assert path is not None and path.is_file() and path.stat().st_size > 10 * 1024**2
    assert str(path) in built.stdout

    without = loaded_from(tmp_path)
    assert "shared objects file" not in without and "SparkContext source: " in without  # from its jar
    assert "shared objects file (top)" in loaded_from(tmp_path, f"-XX:SharedArchiveFile={path}")
