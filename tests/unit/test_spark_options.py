"""The local driver's JVM options follow the input's expected size."""

from __future__ import annotations

from covidlake.settings import BUNDLED_DATA
from covidlake.spark import QUICK_JIT_MAX_BYTES, driver_java_options

QUICK = "-XX:TieredStopAtLevel=1"


def test_small_inputs_stop_at_the_quick_compiler():
    assert QUICK in driver_java_options((BUNDLED_DATA / "covid_data.csv").stat().st_size)
    assert QUICK in driver_java_options(QUICK_JIT_MAX_BYTES)


def test_large_or_unknown_inputs_keep_the_optimising_compiler():
    for size in (0, QUICK_JIT_MAX_BYTES + 1, 2_662_019_292):  # 0: unknown; the last: 10^7 rows
        options = driver_java_options(size)
        assert QUICK not in options
        assert "-XX:-DontCompileHugeMethods" in options and "log4j.configurationFile" in options
