"""The trusted build's quality metrics are defined once: the local runner (Powertools) and
the EMR step (PutMetricData) emit the same names and values."""

from __future__ import annotations

from aws_lambda_powertools import Metrics

from covidlake.observability import add_quality_metrics, publish_quality_metrics, quality_metrics

QUALITY = {
    "rows_in": {"covid_data": 10, "country_data": 5},
    "rows_out": {"daily": 7, "snapshot": 4},
    "rejected": {
        "covid_data": {"negative_count": 2, "missing_location": 1},
        "country_data": {"missing_location": 1},
    },
}


class RecordingCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def put_metric_data(self, **kwargs) -> None:
        self.calls.append(kwargs)


def test_a_rule_failed_in_both_sources_is_counted_once_with_the_sum():
    assert quality_metrics(QUALITY) == {
        "RowsTrusted_daily": 7,
        "RowsTrusted_snapshot": 4,
        "RowsRejected": 4,
        "RowsRejected_negative_count": 2,
        "RowsRejected_missing_location": 2,
    }


def test_the_local_runner_and_emr_emit_the_same_quality_metrics():
    metrics = Metrics(namespace="covidlake-test", service="covidlake")
    add_quality_metrics(metrics, QUALITY)
    emf = metrics.serialize_metric_set()
    metrics.clear_metrics()
    names = [m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    local = {name: sum(emf[name]) if isinstance(emf[name], list) else emf[name] for name in names}

    cloudwatch = RecordingCloudWatch()
    publish_quality_metrics(QUALITY, "covidlake-test", cloudwatch)
    published = {d["MetricName"]: d["Value"] for call in cloudwatch.calls for d in call["MetricData"]}

    assert local == published == quality_metrics(QUALITY)
    assert {d["Unit"] for call in cloudwatch.calls for d in call["MetricData"]} == {"Count"}
    assert emf["service"] == "covidlake"
    assert all(
        d["Dimensions"] == [{"Name": "service", "Value": "covidlake"}]
        for c in cloudwatch.calls
        for d in c["MetricData"]
    )
