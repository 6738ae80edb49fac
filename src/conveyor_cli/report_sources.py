"""Where ``conveyor report`` gets its numbers: the aliases' AWS/Lambda metrics per executed version, and the
pipeline spec that was registered when a deployment was validated.

Both are read with the CLI's own session; a source that refuses (no permission, no network) gives the page
a note saying so, never no page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.adapters.cloudwatch import CloudWatchLambdaMetrics, alias_version_queries
from conveyor.adapters.s3 import S3Artifacts
from conveyor.domain.errors import PipelineInvalidError
from conveyor.domain.layout import pipeline_key
from conveyor.domain.limits import MAX_PIPELINE_SPEC_BYTES
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.records import DeploymentRecord
from pydantic import ValidationError

MAX_POINTS = 120
"""About how many periods a metric series spans: the period is the smallest CloudWatch accepts above span / this."""
_SUB_MINUTE_PERIODS = (1, 5, 10, 30)


@dataclass(frozen=True)
class MetricPoint:
    """One period of an alias's traffic to one version."""

    at: datetime
    invocations: float
    errors: float
    p95_ms: float | None

    @property
    def error_rate_percent(self) -> float | None:
        return None if self.invocations <= 0 else 100.0 * self.errors / self.invocations


@dataclass(frozen=True)
class EnvironmentMetrics:
    """What CloudWatch answered for one environment: points per Lambda version, or why there are none."""

    period_seconds: int
    versions: dict[str, list[MetricPoint]] = field(default_factory=dict)
    unavailable: str | None = None


AWS_FINEST_PERIOD = 60
"""AWS/Lambda metrics are standard resolution: CloudWatch keeps them per minute."""
LOCAL_FINEST_PERIOD = 1
"""The local cloud keeps every datum: a rollout whose waits are scaled down to seconds still gets a curve."""


def metric_period(start: datetime, end: datetime, now: datetime, *, finest: int = AWS_FINEST_PERIOD) -> int:
    """The smallest period CloudWatch serves for [start, end] that keeps a series near ``MAX_POINTS`` long.

    GetMetricData takes 1, 5, 10 or 30 s (high-resolution data), or a multiple of 60; older data only at
    coarser periods (over 3 hours old: 60 s; over 15 days: 300 s; over 63 days: 3600 s).
    """
    age = now - start
    floor = (
        3600
        if age > timedelta(days=63)
        else 300
        if age > timedelta(days=15)
        else max(60, finest)
        if age > timedelta(hours=3)
        else finest
    )
    wanted = max((end - start).total_seconds() / MAX_POINTS, floor)
    for period in _SUB_MINUTE_PERIODS:
        if period >= wanted:
            return period
    return math.ceil(wanted / 60) * 60


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_version_metrics(
    cloudwatch: CloudWatchLambdaMetrics,
    function_name: str,
    alias: str,
    versions: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    finest: int = AWS_FINEST_PERIOD,
) -> EnvironmentMetrics:
    """Invocations, errors and p95 duration per period of the alias's traffic to each version.

    The queries are the health stage's (``alias_version_queries``), so the page draws what was judged. A
    CloudWatch that refuses (no permission, no network) gives a page that says so, not no page.
    """
    period = metric_period(start, end, now, finest=finest)
    queries = alias_version_queries(
        function_name,
        alias,
        versions,
        period=period,
        series=(("inv", "Invocations", "Sum"), ("err", "Errors", "Sum"), ("p95", "Duration", "p95")),
    )
    try:
        found = {
            query: {as_utc(at): value for at, value in points.items()}
            for query, points in cloudwatch.series(queries, start, end).items()
        }
    except (ClientError, BotoCoreError) as exc:
        return EnvironmentMetrics(
            period_seconds=period,
            unavailable=f"AWS/Lambda metrics of {function_name}:{alias} could not be read: {exc}",
        )
    by_version: dict[str, list[MetricPoint]] = {}
    for index, version in enumerate(versions):
        invocations, errors, p95 = (
            found.get(f"inv{index}", {}),
            found.get(f"err{index}", {}),
            found.get(f"p95{index}", {}),
        )
        by_version[version] = [
            MetricPoint(at=at, invocations=count, errors=errors.get(at, 0.0), p95_ms=p95.get(at))
            for at, count in sorted(invocations.items())
            if count > 0
        ]
    return EnvironmentMetrics(period_seconds=period, versions=by_version)


@dataclass(frozen=True)
class RegisteredSpec:
    """The app's pipeline spec as it was registered when the deployment was validated, or why it is unknown."""

    spec: PipelineSpec | None
    source: str


def pipeline_at(artifacts: S3Artifacts, bucket: str, app: str, at: datetime) -> RegisteredSpec:
    """The version of ``pipelines/<app>.yaml`` that was current at ``at`` (the bucket is versioned).

    ValidateArtifact reads the spec then; a later ``pipeline apply`` does not change what judged this
    deployment, so the page shows the rules of the time, not today's.
    """
    key = pipeline_key(app)
    where = f"s3://{bucket}/{key}"
    try:
        versions = [
            version
            for version in artifacts.pipeline_versions(bucket, app)
            if version.last_modified is not None and as_utc(version.last_modified) <= as_utc(at)
        ]
        if not versions:
            return RegisteredSpec(None, f"no version of {where} was registered before this deployment")
        current = max(versions, key=lambda v: as_utc(v.last_modified or at))
        if (current.size or 0) > MAX_PIPELINE_SPEC_BYTES:
            return RegisteredSpec(None, f"{where} (version {current.version_id}) is over the spec size limit")
        body = artifacts.read_version(bucket, current)
        source = f"{where}, version {current.version_id}, registered {iso(current.last_modified)}"
        return RegisteredSpec(PipelineSpec.from_yaml(body, source), source)
    except (ClientError, BotoCoreError) as exc:
        return RegisteredSpec(None, f"the pipeline spec {where} could not be read: {exc}")
    except (PipelineInvalidError, ValidationError) as exc:
        return RegisteredSpec(None, f"the pipeline spec of the time no longer parses: {exc}")


def iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def collect_metrics(
    cloudwatch: CloudWatchLambdaMetrics,
    record: DeploymentRecord,
    *,
    end: datetime,
    now: datetime,
    finest: int = AWS_FINEST_PERIOD,
) -> dict[str, EnvironmentMetrics]:
    """Per environment that deployed a version: its alias's AWS/Lambda metrics from the push to ``end``."""
    start, end = as_utc(record.created_at), as_utc(end) + timedelta(seconds=1)
    found = {}
    for name, entry in record.environments.items():
        if not entry.function_name or not entry.alias or entry.version_after is None:
            continue
        versions = [entry.version_after]
        if entry.version_before not in (None, entry.version_after):
            versions.append(str(entry.version_before))
        found[name] = read_version_metrics(
            cloudwatch, entry.function_name, entry.alias, versions, start=start, end=end, now=now, finest=finest
        )
    return found
