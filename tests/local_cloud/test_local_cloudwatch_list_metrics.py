"""ListMetrics lists each metric once on the local cloud, however many data points it has, as on AWS.

moto listed a metric with two dimensions or more once per data point, after a quadratic scan: AWS/Lambda's
per-alias metrics (``FunctionName`` + ``Resource`` [+ ``ExecutedVersion``]) made one ListMetrics take minutes
once the e2e suite had run a few thousand invocations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DATA_POINTS = 400


def _dimensions(version: str) -> list[dict[str, str]]:
    return [
        {"Name": "FunctionName", "Value": "listed-once"},
        {"Name": "Resource", "Value": "listed-once:live"},
        {"Name": "ExecutedVersion", "Value": version},
    ]


def test_a_metric_with_many_data_points_is_listed_once_per_dimension_set(aws: Callable[[str], Any]) -> None:
    # Given many data points of one three-dimension metric for two versions, and one without dimensions
    cloudwatch = aws("cloudwatch")
    for start in range(0, DATA_POINTS, 20):
        cloudwatch.put_metric_data(
            Namespace="ListedOnce",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": _dimensions(str(1 + n % 2)), "Value": 1.0}
                for n in range(start, start + 20)
            ]
            + [{"MetricName": "Invocations", "Value": 1.0}],
        )

    # When they are listed, by name and then filtered by one dimension
    pages = cloudwatch.get_paginator("list_metrics").paginate(Namespace="ListedOnce", MetricName="Invocations")
    listed = [m["Dimensions"] for page in pages for m in page["Metrics"]]
    version_2 = cloudwatch.list_metrics(Namespace="ListedOnce", Dimensions=[{"Name": "ExecutedVersion", "Value": "2"}])[
        "Metrics"
    ]

    # Then each dimension set is one metric, as ListMetrics answers on AWS
    assert sorted(listed, key=str) == sorted([[], _dimensions("1"), _dimensions("2")], key=str)
    assert [m["Dimensions"] for m in version_2] == [_dimensions("2")]
