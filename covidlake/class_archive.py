"""A class-data-sharing archive of the classes a local pipeline run loads.

A short run spends seconds loading and verifying Spark's classes from ~250 jars. HotSpot's
dynamic CDS (JEP 350) saves the loaded classes at the end of one run
(`-XX:ArchiveClassesAtExit`) and maps them into later JVMs (`-XX:SharedArchiveFile`). The
archive is built once, at install (`covidlake class-archive`, run by `make install`), from
a real ETL and analytics run on the bundled data; runs use it when it exists.

The archive only fits the JVM build and the exact jars (path, size, mtime) it was made
with, so its file name is a digest of those: another JDK or Spark never sees it (the JVM
would refuse it anyway). It is not used beside a JVM agent (JFR, profilers): JDK 17.0.15
crashes mapping a dynamic archive while a class-file-load hook is on (seen here with
`-XX:StartFlightRecording`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from covidlake.settings import BUNDLED_DATA, Settings

log = logging.getLogger(__name__)

# options in these variables apply to every JVM; an agent among them rules the archive out
JVM_OPTION_VARIABLES = ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS")
AGENT_MARKERS = ("-agentlib", "-agentpath", "-javaagent", "FlightRecording", "-Xshare")
# the JVM reports an archive it cannot map (another build, changed jars) as a warning: the
# run goes on without it, so say nothing
QUIET = "-Xlog:cds*=off"
ARCHIVE_PREFIX, ARCHIVE_SUFFIX = "spark-classes-", ".jsa"


def java_executable() -> Path | None:
    """The java that spark-submit starts: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=os.path.join(home, "bin") if home else None)
    return Path(java).resolve() if java else None


def spark_jars() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "jars"


def archive_path(settings: Settings) -> Path | None:
    """Where the archive for this JVM, these jars and this heap size lives (it may not
    exist yet); None when there is no java or no jar folder to key it by."""
    java, jars = java_executable(), spark_jars()
    if java is None or not jars.is_dir():
        return None
    digest = hashlib.sha256()
    for path in (java, *sorted(jars.glob("*.jar"))):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    # the heap size decides compressed pointers, which the archive must share
    digest.update(settings.spark_driver_memory.encode())
    return settings.spark_class_archive_dir / f"{ARCHIVE_PREFIX}{digest.hexdigest()[:16]}{ARCHIVE_SUFFIX}"


def agent_configured() -> bool:
    options = " ".join(os.environ.get(name, "") for name in JVM_OPTION_VARIABLES)
    return any(marker in options for marker in AGENT_MARKERS)


def archive_options(settings: Settings) -> tuple[str, ...]:
    """The JVM options that map the archive, or none (switched off, not built, an agent)."""
    if not settings.spark_class_archive or agent_configured():
        return ()
    path = archive_path(settings)
    if path is None or not path.is_file():
        return ()
    return (f"-XX:SharedArchiveFile={path}", QUIET)


def build_archive(settings: Settings) -> Path | None:
    """Build the archive unless it exists: a fresh JVM runs the ETL and analytics on the
    bundled data in a scratch lake, then exits, dumping its classes to a temporary file
    that is renamed into place (a concurrent build or a crash leaves no half archive).
    Returns the archive, or None when this JVM cannot make one (it is an optimisation:
    runs work without it)."""
    path = archive_path(settings)
    if path is None:
        return None
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # dumped beside its final name, so the rename is atomic
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with tempfile.TemporaryDirectory(prefix="covidlake-class-archive-") as scratch:
            _run_and_dump(settings, partial, Path(scratch) / "lake")
        if not partial.is_file() or partial.stat().st_size == 0:
            log.warning("the JVM wrote no class archive; runs go on without one")
            return None
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    for stale in path.parent.glob(f"{ARCHIVE_PREFIX}*{ARCHIVE_SUFFIX}"):  # other JDKs or jars: unusable now
        if stale != path:
            stale.unlink(missing_ok=True)
    return path


def _run_and_dump(settings: Settings, dump: Path, lake: Path) -> None:
    from pyspark import SparkContext

    from covidlake.refined.build import write_refined
    from covidlake.spark import local_session
    from covidlake.storage import open_lake
    from covidlake.trusted.job import write_trusted

    if SparkContext._active_spark_context is not None:
        raise RuntimeError("build the class archive in a process without a Spark session")
    spark = local_session(settings, 1, extra_java_options=(f"-XX:ArchiveClassesAtExit={dump}", QUIET))
    gateway = spark.sparkContext._gateway
    try:
        storage = open_lake(str(lake))
        covid, country = (BUNDLED_DATA / name for name in ("covid_data.csv", "country_data.csv"))
        write_trusted(spark, storage, covid.as_uri(), country.as_uri(), "class-archive")
        write_refined(spark, storage, "class-archive")
        spark.stop()
    except BaseException:
        gateway.proc.kill()  # killed, the JVM dumps nothing: no half archive left behind
        raise
    finally:
        # The JVM writes the archive as it exits, which it does when its stdin closes;
        # wait for that (the dump takes seconds).
        gateway.shutdown()
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout=300)
        SparkContext._gateway = SparkContext._jvm = None
