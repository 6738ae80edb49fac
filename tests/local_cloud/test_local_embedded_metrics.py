"""The local cloud turns the EMF lines of a function's log into CloudWatch metrics, as CloudWatch Logs does."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from conveyor_local.lambda_telemetry import embedded_metrics


def _printed(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


def test_powertools_metrics_become_metric_data_with_their_dimension_sets(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a handler's log: a START line, Powertools' flushed metrics and an outcome metric of its own
    metrics = Metrics(namespace="Conveyor", service="conveyor")
    metrics.add_metric(name="Rollbacks", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RollbackDuration", unit=MetricUnit.Milliseconds, value=180.5)
    metrics.flush_metrics()
    with single_metric(
        name="Deployments",
        unit=MetricUnit.Count,
        value=1,
        namespace="Conveyor",
        default_dimensions={"service": "conveyor"},
    ) as metric:
        metric.add_dimension(name="outcome", value="ROLLED_BACK")
    logs = "START RequestId: r Version: 3\n" + _printed(capsys) + "END RequestId: r\n"

    # When the local cloud reads it
    found = embedded_metrics(logs)

    # Then each metric is data of its namespace, with the dimensions it was printed with
    data = [
        (namespace, d["MetricName"], d["Value"], d["Unit"], d["Dimensions"])
        for namespace, batch in found
        for d in batch
    ]
    service = {"Name": "service", "Value": "conveyor"}
    assert ("Conveyor", "Rollbacks", 1.0, "Count", [service]) in data
    assert ("Conveyor", "RollbackDuration", 180.5, "Milliseconds", [service]) in data
    outcome = [d for d in data if d[1] == "Deployments"]
    assert len(outcome) == 1
    assert sorted(outcome[0][4], key=lambda x: x["Name"]) == [{"Name": "outcome", "Value": "ROLLED_BACK"}, service]


def test_a_list_of_values_is_one_datum_each() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1,
                "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["a"]], "Metrics": [{"Name": "M"}]}],
            },
            "a": "x",
            "M": [1, 2, 3],
        }
    )

    ((namespace, data),) = embedded_metrics(line)

    assert namespace == "N"
    assert [d["Value"] for d in data] == [1.0, 2.0, 3.0]
    assert {d["Unit"] for d in data} == {"None"}


@pytest.mark.parametrize(
    "line",
    [
        "plain text",
        '{"message": "a structured log line"}',
        '{"_aws": "not a directive"}',
        json.dumps(
            {
                "_aws": {
                    "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["gone"]], "Metrics": [{"Name": "M"}]}]
                },
                "M": 1,
            }
        ),
        '{"_aws": {"CloudWatchMetrics": [{"Namespace": "N", "Metrics": [{"Name": "M"}]}]}, "M": "not a number"}',
        "{not json",
    ],
)
def test_lines_that_carry_no_usable_metric_are_only_log_lines(line: str) -> None:
    assert embedded_metrics(line) == []
