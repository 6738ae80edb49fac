"""Weighted alias routing and the AWS/Lambda metrics canary analysis reads."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

INVOCATIONS = 1000
CANARY_WEIGHT = 0.1


def _publish_two_versions(aws: Callable[[str], Any], name: str) -> tuple[str, str]:
    lambda_ = aws("lambda")
    stable = lambda_.publish_version(FunctionName=name)["Version"]
    variables = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": {**variables, "BUILD": "2"}})
    canary = lambda_.publish_version(FunctionName=name)["Version"]
    assert stable != canary
    return stable, canary


def test_alias_weights_route_traffic_and_metrics_name_the_executed_version(
    local_cloud: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    # Given an alias on the stable version sending 10% to the canary version
    name = local_cloud["outputs"]["CanaryProbeFunctionName"]
    stable, canary = _publish_two_versions(aws, name)
    aws("lambda").create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion=stable,
        RoutingConfig={"AdditionalVersionWeights": {canary: CANARY_WEIGHT}},
    )

    # When the alias is invoked many times (concurrently, as real traffic would)
    def call(_: int) -> tuple[str, str]:
        response = aws("lambda").invoke(FunctionName=name, Qualifier="live", Payload=json.dumps({"env": ["BUILD"]}))
        payload = json.loads(response["Payload"].read())
        return response["ExecutedVersion"], payload["env"]["BUILD"] or "1"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(INVOCATIONS)))

    # Then the canary share is binomial(n, 10%) within 5 sigma, and the executed version really ran
    executed = Counter(version for version, _ in results)
    assert set(executed) == {stable, canary}
    sigma = math.sqrt(INVOCATIONS * CANARY_WEIGHT * (1 - CANARY_WEIGHT))
    assert abs(executed[canary] - INVOCATIONS * CANARY_WEIGHT) < 5 * sigma, executed
    assert all(build == ("2" if version == canary else "1") for version, build in results)

    # And AWS/Lambda Invocations are published per ExecutedVersion under Resource=<name>:live
    for version in (stable, canary):
        assert _sum(aws, "Invocations", name, version) == executed[version]
        assert _sum(aws, "Errors", name, version) == 0
    assert _sum(aws, "Invocations", name, None) == INVOCATIONS


def _sum(aws: Callable[[str], Any], metric: str, name: str, version: str | None) -> float:
    """Sum of a metric over exactly these dimensions (GetMetricData matches dimension sets exactly, like AWS)."""
    dimensions = [{"Name": "FunctionName", "Value": name}]
    if version is not None:
        dimensions += [{"Name": "Resource", "Value": f"{name}:live"}, {"Name": "ExecutedVersion", "Value": version}]
    now = datetime.now(UTC)
    query = {
        "Id": "m",
        "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dimensions},
            "Period": 3600,
            "Stat": "Sum",
        },
    }
    results = aws("cloudwatch").get_metric_data(
        MetricDataQueries=[query], StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1)
    )["MetricDataResults"]
    return sum(results[0]["Values"])
