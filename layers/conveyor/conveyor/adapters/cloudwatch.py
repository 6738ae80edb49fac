"""CloudWatch: per-version AWS/Lambda metrics of an alias's traffic (GetMetricData), and alarm states.

Lambda publishes ``Invocations``, ``Errors`` and ``Duration`` for invocations through an alias
with the dimensions ``FunctionName``, ``Resource`` (``function:alias``) and ``ExecutedVersion``;
querying those three reads only the alias's real traffic to one version (direct invocations of
the version, such as the synthetic check, carry another ``Resource``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.adapters import aws
from conveyor.domain.errors import AlarmsUnavailableError, MetricsUnavailableError
from conveyor.domain.ports import VersionStats

_NAMESPACE = "AWS/Lambda"


def _whole_seconds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The window widened to whole seconds, CloudWatch's finest resolution, as it reads a window anyway: one shorter
    than a second (a step judged right after it started, or any step under a small time scale) is never sent with
    StartTime equal to EndTime once truncated, which CloudWatch refuses."""
    first, last = start.replace(microsecond=0), end.replace(microsecond=0)
    if last < end or last <= first:
        last = max(last, first) + timedelta(seconds=1)
    return first, last


def _period(start: datetime, end: datetime) -> int:
    """One period that spans the whole window (a multiple of 60 s, as standard-resolution metrics need)."""
    return max(60, math.ceil((end - start).total_seconds() / 60) * 60)


def alias_version_queries(
    function_name: str,
    alias: str,
    versions: Sequence[str],
    *,
    period: int,
    series: Sequence[tuple[str, str, str]],
) -> list[dict[str, Any]]:
    """GetMetricData queries for the alias's traffic to each version: one per ``(key, metric, stat)`` in
    ``series`` and version, each with the Id ``<key><index of the version>``.

    The dimensions are Lambda's for invocations through an alias, the ones EvaluateHealth judges and
    ``conveyor report`` draws.
    """
    queries: list[dict[str, Any]] = []
    for index, version in enumerate(versions):
        dimensions = [
            {"Name": "FunctionName", "Value": function_name},
            {"Name": "Resource", "Value": f"{function_name}:{alias}"},
            {"Name": "ExecutedVersion", "Value": version},
        ]
        queries.extend(
            {
                "Id": f"{key}{index}",
                "MetricStat": {
                    "Metric": {"Namespace": _NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                    "Period": period,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            for key, metric, stat in series
        )
    return queries


class CloudWatchLambdaMetrics:
    """``LambdaMetrics`` on CloudWatch GetMetricData."""

    def __init__(self, session: Session) -> None:
        self._cloudwatch = aws.client(session, "cloudwatch")

    def series(self, queries: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, dict[datetime, float]]:
        """Each query's datapoints by timestamp, read oldest first (for a chart; raises botocore's errors)."""
        found: dict[str, dict[datetime, float]] = {}
        start, end = _whole_seconds(start, end)
        pages = self._cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                points = found.setdefault(result["Id"], {})
                for at, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    points[at] = float(value)
        return found

    def version_stats(
        self, function_name: str, alias: str, versions: list[str], start: datetime, end: datetime
    ) -> dict[str, VersionStats]:
        start, end = _whole_seconds(start, end)
        queries = alias_version_queries(
            function_name,
            alias,
            versions,
            period=_period(start, end),
            series=(
                ("inv", "Invocations", "Sum"),
                ("err", "Errors", "Sum"),
                ("p95", "Duration", "p95"),
                ("p99", "Duration", "p99"),
            ),
        )
        values: dict[str, list[float]] = {}
        try:
            paginator = self._cloudwatch.get_paginator("get_metric_data")
            for page in paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=end):
                for result in page["MetricDataResults"]:
                    values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
        except (ClientError, BotoCoreError) as exc:
            raise MetricsUnavailableError(
                f"reading AWS/Lambda metrics of {function_name}:{alias} failed: {exc}"
            ) from exc

        def worst(key: str) -> float | None:
            found = values.get(key) or []
            return round(max(found), 2) if found else None

        return {
            version: VersionStats(
                version=version,
                invocations=round(sum(values.get(f"inv{index}", []))),
                errors=round(sum(values.get(f"err{index}", []))),
                p95_ms=worst(f"p95{index}"),
                p99_ms=worst(f"p99{index}"),
            )
            for index, version in enumerate(versions)
        }


class CloudWatchAlarms:
    def __init__(self, session: Session) -> None:
        self._cloudwatch = aws.client(session, "cloudwatch")

    def states(self, names: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            # DescribeAlarms accepts at most 100 names per call.
            for start in range(0, len(names), 100):
                paginator = self._cloudwatch.get_paginator("describe_alarms")
                for page in paginator.paginate(
                    AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
                ):
                    for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                        found[alarm["AlarmName"]] = alarm["StateValue"]
        except (ClientError, BotoCoreError) as exc:
            raise AlarmsUnavailableError(f"reading the state of alarms {', '.join(names)} failed: {exc}") from exc
        return found
