"""``conveyor report``: one self-contained HTML page that shows what a deployment did.

What the page draws, and from where:

- the stage timeline: the ledger's stage events (``DeploymentRecord.events``), one bar per stage;
- traffic weight over time per version: ShiftTraffic's ``weight`` at each step, the version before
  taking the rest, until RollBack (or a manual or reconciler's rollback) gives it all back;
- error rate and p95 latency per version over time: AWS/Lambda ``Invocations``, ``Errors`` and
  ``Duration`` of the alias's traffic per ``ExecutedVersion`` (what Lambda publishes on AWS, and what
  the local cloud emits the same way), with each EvaluateHealth verdict marked where it was made and
  the numbers that verdict judged (its metrics evidence) as dots;
- the rollback, if any: when, how long the restore took, how long after the verdict that failed, and
  which version serves again;
- the evidence: every verdict's checks, with their inputs and results.

Everything is laid out here (``conveyor_cli.report_charts``) and rendered by one Jinja template with
autoescaping on: app names, hook output and probe bodies are other people's text, shown as text. The page
carries no script at all, and its Content-Security-Policy forbids any, so a string that escaped the
escaping still could not run. Nothing is fetched: styles and charts are inline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import LedgerError, PipelineInvalidError
from conveyor.domain.layout import pipeline_key
from conveyor.domain.limits import MAX_PIPELINE_SPEC_BYTES
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.records import DeploymentRecord, StageEvent
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import ValidationError

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud
from conveyor_cli.report_charts import Chart, Series, Span, Timeline, TimeMark, format_offset, line_chart, timeline
from conveyor_cli.status import describe_event

TEMPLATE = "report.html.j2"
MAX_POINTS = 120
"""About how many periods a metric series spans: the period is the smallest CloudWatch accepts above span / this."""
_SUB_MINUTE_PERIODS = (1, 5, 10, 30)
_NAMESPACE = "AWS/Lambda"
VERDICT_SYMBOLS = {"pass": "✓", "fail": "✗", "inconclusive": "?"}


# --- the numbers -------------------------------------------------------------------------------
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


def metric_period(start: datetime, end: datetime, now: datetime) -> int:
    """The smallest period CloudWatch serves for [start, end] that keeps a series near ``MAX_POINTS`` long.

    GetMetricData takes 1, 5, 10 or 30 s, or a multiple of 60; older data only at coarser periods
    (over 3 hours old: 60 s; over 15 days: 300 s; over 63 days: 3600 s).
    """
    age = now - start
    floor = (
        3600 if age > timedelta(days=63) else 300 if age > timedelta(days=15) else 60 if age > timedelta(hours=3) else 1
    )
    wanted = max((end - start).total_seconds() / MAX_POINTS, floor)
    for period in _SUB_MINUTE_PERIODS:
        if period >= wanted:
            return period
    return math.ceil(wanted / 60) * 60


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_version_metrics(
    cloudwatch: Any,
    function_name: str,
    alias: str,
    versions: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> EnvironmentMetrics:
    """Invocations, errors and p95 duration per period of the alias's traffic to each version.

    The dimensions are Lambda's for traffic through an alias (``FunctionName``, ``Resource`` =
    ``function:alias``, ``ExecutedVersion``), the ones EvaluateHealth judges. A CloudWatch that refuses
    (no permission, no network) gives a page that says so, not no page.
    """
    period = metric_period(start, end, now)
    queries: list[dict[str, Any]] = []
    for index, version in enumerate(versions):
        dimensions = [
            {"Name": "FunctionName", "Value": function_name},
            {"Name": "Resource", "Value": f"{function_name}:{alias}"},
            {"Name": "ExecutedVersion", "Value": version},
        ]
        for key, metric, stat in (("inv", "Invocations", "Sum"), ("err", "Errors", "Sum"), ("p95", "Duration", "p95")):
            queries.append(
                {
                    "Id": f"{key}{index}",
                    "MetricStat": {
                        "Metric": {"Namespace": _NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                        "Period": period,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    found: dict[str, dict[datetime, float]] = {}
    try:
        pages = cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                series = found.setdefault(result["Id"], {})
                for at, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    series[_as_utc(at)] = float(value)
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


def pipeline_at(s3: Any, bucket: str, app: str, at: datetime) -> RegisteredSpec:
    """The version of ``pipelines/<app>.yaml`` that was current at ``at`` (the bucket is versioned).

    ValidateArtifact reads the spec then; a later ``pipeline apply`` does not change what judged this
    deployment, so the page shows the rules of the time, not today's.
    """
    key = pipeline_key(app)
    where = f"s3://{bucket}/{key}"
    try:
        versions = [
            version
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
            for version in page.get("Versions", [])
            if version["Key"] == key and _as_utc(version["LastModified"]) <= _as_utc(at)
        ]
        if not versions:
            return RegisteredSpec(None, f"no version of {where} was registered before this deployment")
        current = max(versions, key=lambda v: _as_utc(v["LastModified"]))
        if current.get("Size", 0) > MAX_PIPELINE_SPEC_BYTES:
            return RegisteredSpec(None, f"{where} (version {current['VersionId']}) is over the spec size limit")
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=current["VersionId"])["Body"].read()
        source = f"{where}, version {current['VersionId']}, registered {_iso(current['LastModified'])}"
        return RegisteredSpec(PipelineSpec.from_yaml(body, source), source)
    except (ClientError, BotoCoreError) as exc:
        return RegisteredSpec(None, f"the pipeline spec {where} could not be read: {exc}")
    except (PipelineInvalidError, ValidationError) as exc:
        return RegisteredSpec(None, f"the pipeline spec of the time no longer parses: {exc}")


# --- what the page shows -------------------------------------------------------------------------
@dataclass(frozen=True)
class EventRow:
    offset: str
    at: str
    environment: str
    stage: str
    status: str
    duration: str
    summary: str


@dataclass(frozen=True)
class CheckRow:
    name: str
    kind: str
    status: str
    reason: str
    evidence: list[tuple[str, str]]


@dataclass(frozen=True)
class VerdictView:
    offset: str
    at: str
    status: str
    symbol: str
    weight: Any
    step: Any
    reason: str
    checks: list[CheckRow]


@dataclass(frozen=True)
class RollbackView:
    seconds: float | None
    """When the alias was restored, in seconds since the push (None: not known)."""
    offset: str | None
    at: str | None
    by: str
    restored_version: str
    rolled_back_from: str
    restore_ms: Any
    after_verdict: str | None
    reason: str
    recorded: bool


@dataclass(frozen=True)
class EnvironmentView:
    name: str
    target: str
    status: str
    version_before: str | None
    version_after: str | None
    traffic: Chart
    error_rate: Chart
    latency: Chart
    metrics_note: str | None
    verdicts: list[VerdictView]
    rollback: RollbackView | None
    rules: list[tuple[str, str]]
    """The environment's strategy, health checks and approval as the pipeline spec of the time set them."""
    rules_source: str


@dataclass(frozen=True)
class ReportView:
    deployment_id: str
    app: str
    version: str
    outcome: str
    created_at: str
    finished_at: str | None
    duration: str | None
    pushed_by: str | None
    package_sha256: str | None
    execution_arn: str | None
    generated_at: str
    timeline: Timeline
    events: list[EventRow]
    environments: list[EnvironmentView]
    failure: list[tuple[str, str]]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _as_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _seconds(value: datetime, origin: datetime) -> float:
    return (_as_utc(value) - _as_utc(origin)).total_seconds()


def _text(value: Any) -> str:
    """A value as the page shows it: text as it is, anything else as JSON (never a Python repr)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def flatten(evidence: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A check's evidence as ``(key, value)`` rows: nested objects as dotted keys, lists as JSON-ish text."""
    rows: list[tuple[str, str]] = []
    for key, value in evidence.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(flatten(value, f"{name}."))
        else:
            rows.append((name, _text(value)))
    return rows


def _event_rows(record: DeploymentRecord) -> list[EventRow]:
    return [
        EventRow(
            offset=format_offset(_seconds(event.started_at, record.created_at)),
            at=_iso(event.started_at) or "",
            environment=event.environment or "-",
            stage=event.stage,
            status="failed" if event.failed else event.status,
            duration=f"{event.duration_ms:.0f} ms",
            summary=describe_event(event),
        )
        for event in record.events
    ]


def _end(record: DeploymentRecord, now: datetime) -> datetime:
    ends = [record.finished_at or now, *(e.finished_at for e in record.events)]
    return max(_as_utc(e) for e in ends)


def _timeline(record: DeploymentRecord, end: float) -> Timeline:
    spans = [
        Span(
            label=event.stage,
            environment=event.environment or "",
            status="failed" if event.failed else event.status,
            start=_seconds(event.started_at, record.created_at),
            end=_seconds(event.finished_at, record.created_at),
            title=f"{event.stage} {event.environment or ''} {event.status}: {describe_event(event)}".strip(),
        )
        for event in record.events
    ]
    return timeline(spans, end=end)


def _verdict_status(event: StageEvent) -> str:
    return "fail" if event.failed else event.status


def _verdicts(record: DeploymentRecord, events: Iterable[StageEvent]) -> list[VerdictView]:
    views = []
    for event in events:
        status = _verdict_status(event)
        checks = [
            CheckRow(
                name=_text(check.get("name")),
                kind=_text(check.get("kind")),
                status=_text(check.get("status")),
                reason=_text(check.get("reason")),
                evidence=flatten(check.get("evidence") or {}),
            )
            for check in event.detail.get("checks") or []
            if isinstance(check, Mapping)
        ]
        views.append(
            VerdictView(
                offset=format_offset(_seconds(event.finished_at, record.created_at)),
                at=_iso(event.finished_at) or "",
                status=status,
                symbol=VERDICT_SYMBOLS.get(status, "•"),
                weight=event.detail.get("weight"),
                step=event.detail.get("step"),
                reason=_text(event.detail.get("reason")),
                checks=checks,
            )
        )
    return views


def _rollback_event(events: Sequence[StageEvent]) -> StageEvent | None:
    done = [e for e in events if e.stage in ("RollBack", "ManualRollback") and not e.failed]
    return done[-1] if done else None


def _rollback(record: DeploymentRecord, entry: EnvironmentEntry, events: Sequence[StageEvent]) -> RollbackView | None:
    if not entry.rollback:
        return None
    rollback = entry.rollback
    event = _rollback_event(events)
    when = event.finished_at if event is not None else (record.finished_at if entry.reconciled else None)
    failed_verdicts = [e for e in events if e.stage == "EvaluateHealth" and e.failed]
    after_verdict = None
    if when is not None and failed_verdicts:
        after_verdict = f"{_seconds(when, failed_verdicts[-1].finished_at):.1f} s"
    if event is not None and event.stage == "ManualRollback":
        by = f"a person ({rollback.get('operator')}), with conveyor rollback"
    elif entry.reconciled:
        by = "the reconciler, after the execution ended"
    else:
        by = "the RollBack stage"
    seconds = _seconds(when, record.created_at) if when is not None else None
    return RollbackView(
        seconds=seconds,
        offset=format_offset(seconds) if seconds is not None else None,
        at=_iso(when),
        by=by,
        restored_version=_text(rollback.get("restored_version")) or "(no alias: removed)",
        rolled_back_from=_text(rollback.get("rolled_back_from")),
        restore_ms=rollback.get("duration_ms"),
        after_verdict=after_verdict,
        reason=_text(rollback.get("reason")),
        recorded=bool(rollback.get("recorded", True)),
    )


def _label(version: str, role: str) -> str:
    return f"version {version} ({role})"


def traffic_series(
    record: DeploymentRecord, entry: EnvironmentEntry, events: Sequence[StageEvent], rolled_back_at: float | None
) -> list[Series]:
    """Each version's share of the alias's traffic (percent) from the environment's first stage onwards."""
    if not events:
        return []
    before, after = entry.version_before, entry.version_after
    start = _seconds(events[0].started_at, record.created_at)
    new: list[tuple[float, float]] = [(start, 0.0)]
    for event in events:
        if event.stage == "ShiftTraffic" and not event.failed and event.detail.get("weight") is not None:
            new.append((_seconds(event.finished_at, record.created_at), float(event.detail["weight"])))
    if rolled_back_at is not None:
        new.append((rolled_back_at, 0.0))
    series = []
    if after is not None:
        series.append(Series(_label(after, "this release"), "new", new, step=True))
    if before is not None and before != after:
        series.append(Series(_label(before, "before"), "old", [(t, 100.0 - w) for t, w in new], step=True))
    return series


def _verdict_marks(record: DeploymentRecord, events: Iterable[StageEvent]) -> list[TimeMark]:
    marks = []
    for event in events:
        status = _verdict_status(event)
        weight = event.detail.get("weight")
        marks.append(
            TimeMark(
                at=_seconds(event.finished_at, record.created_at),
                css=status,
                label=f"{VERDICT_SYMBOLS.get(status, '•')} {weight}%" if weight is not None else status,
                title=f"verdict {status} at {weight}% traffic: {event.detail.get('reason', '')}",
            )
        )
    return marks


def _judged(
    record: DeploymentRecord, events: Iterable[StageEvent], side: str, field_name: str
) -> list[tuple[float, float]]:
    """What each verdict's metrics evidence measured for one side (``new`` or ``old``)."""
    points = []
    for event in events:
        for check in event.detail.get("checks") or []:
            evidence = check.get("evidence") if isinstance(check, Mapping) else None
            measured = (evidence or {}).get(side) if check.get("kind") == "metrics" else None
            if isinstance(measured, Mapping) and measured.get(field_name) is not None:
                points.append((_seconds(event.finished_at, record.created_at), float(measured[field_name])))
                break
    return points


def _metric_charts(
    record: DeploymentRecord,
    entry: EnvironmentEntry,
    verdicts: Sequence[StageEvent],
    metrics: EnvironmentMetrics | None,
    *,
    end: float,
    marks: Sequence[TimeMark],
) -> tuple[Chart, Chart]:
    roles = {entry.version_after: "this release", entry.version_before: "before"}
    rate: list[Series] = []
    latency: list[Series] = []
    for version, points in (metrics.versions if metrics else {}).items():
        role = roles.get(version, "version")
        css = "new" if version == entry.version_after else "old"
        rate.append(
            Series(
                _label(version, role),
                css,
                [
                    (_seconds(p.at, record.created_at), p.error_rate_percent)
                    for p in points
                    if p.error_rate_percent is not None
                ],
            )
        )
        latency.append(
            Series(
                _label(version, role),
                css,
                [(_seconds(p.at, record.created_at), p.p95_ms) for p in points if p.p95_ms is not None],
            )
        )
    for side, css in (("new", "judged-new"), ("old", "judged-old")):
        label = f"judged by a verdict ({'this release' if side == 'new' else 'before'})"
        rate.append(Series(label, css, _judged(record, verdicts, side, "error_rate_percent"), joined=False))
        latency.append(Series(label, css, _judged(record, verdicts, side, "p95_ms"), joined=False))
    note = "no traffic through the alias in this window"
    error_chart = line_chart("Error rate per version", "%", rate, start=0.0, end=end, marks=marks, empty_note=note)
    latency_chart = line_chart(
        "p95 latency per version", " ms", latency, start=0.0, end=end, marks=marks, empty_note=note
    )
    return error_chart, latency_chart


def _rules(spec: RegisteredSpec | None, name: str) -> tuple[list[tuple[str, str]], str]:
    if spec is None:
        return [], "the pipeline spec was not read"
    if spec.spec is None:
        return [], spec.source
    try:
        environment = spec.spec.environment(name)
    except KeyError:
        return [], f"{spec.source} has no environment {name!r}"
    rules = environment.model_dump(mode="json", include={"strategy", "health", "approval"}, exclude_none=True)
    return flatten(rules), spec.source


def environment_view(
    record: DeploymentRecord,
    name: str,
    entry: EnvironmentEntry,
    metrics: EnvironmentMetrics | None,
    *,
    end: float,
    spec: RegisteredSpec | None = None,
) -> EnvironmentView:
    events = [e for e in record.events if e.environment == name]
    verdicts = [e for e in events if e.stage == "EvaluateHealth"]
    rollback = _rollback(record, entry, events)
    rolled_back_at = rollback.seconds if rollback is not None else None
    marks = _verdict_marks(record, verdicts)
    if rolled_back_at is not None:
        marks.append(TimeMark(at=rolled_back_at, css="rollback", label="rollback", title="alias restored"))
    error_rate, latency = _metric_charts(record, entry, verdicts, metrics, end=end, marks=marks)
    traffic = line_chart(
        "Traffic weight per version",
        "%",
        traffic_series(record, entry, events, rolled_back_at),
        start=0.0,
        end=end,
        marks=marks,
        ceiling=100.0,
        empty_note="no traffic step was taken",
    )
    note = metrics.unavailable if metrics is not None else None
    if metrics is not None and note is None:
        note = (
            f"CloudWatch AWS/Lambda metrics of the alias, per executed version, in {metrics.period_seconds} s periods"
        )
    rules, rules_source = _rules(spec, name)
    return EnvironmentView(
        rules=rules,
        rules_source=rules_source,
        name=name,
        target=f"{entry.function_name}:{entry.alias}" if entry.function_name else "(not deployed)",
        status=entry.status.value if isinstance(entry.status, EnvironmentStatus) else _text(entry.status),
        version_before=entry.version_before,
        version_after=entry.version_after,
        traffic=traffic,
        error_rate=error_rate,
        latency=latency,
        metrics_note=note,
        verdicts=_verdicts(record, verdicts),
        rollback=rollback,
    )


def build_view(
    record: DeploymentRecord,
    metrics: Mapping[str, EnvironmentMetrics],
    *,
    generated_at: datetime,
    spec: RegisteredSpec | None = None,
) -> ReportView:
    """Everything the page shows, from the ledger's record, the metrics read for each environment and the
    pipeline spec that set the rules."""
    end = _seconds(_end(record, generated_at), record.created_at)
    environments = [
        environment_view(record, name, entry, metrics.get(name), end=end, spec=spec)
        for name, entry in record.environments.items()
    ]
    return ReportView(
        deployment_id=record.deployment_id,
        app=record.app,
        version=record.version,
        outcome=record.status.value,
        created_at=_iso(record.created_at) or "",
        finished_at=_iso(record.finished_at),
        duration=f"{record.duration_seconds:.1f} s" if record.duration_seconds is not None else None,
        pushed_by=record.pushed_by,
        package_sha256=record.package_sha256,
        execution_arn=record.execution_arn,
        generated_at=_iso(generated_at) or "",
        timeline=_timeline(record, end),
        events=_event_rows(record),
        environments=environments,
        failure=flatten(record.failure or {}),
    )


def _templates() -> Environment:
    # autoescape on for everything this environment renders: every string on the page is data.
    return Environment(
        loader=PackageLoader("conveyor_cli", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(view: ReportView) -> str:
    return _templates().get_template(TEMPLATE).render(report=view)


# --- the command ---------------------------------------------------------------------------------
def collect_metrics(cloud: Cloud, record: DeploymentRecord, now: datetime) -> dict[str, EnvironmentMetrics]:
    """Per environment that deployed a version: its alias's AWS/Lambda metrics over the deployment's span."""
    start, end = _as_utc(record.created_at), _end(record, now) + timedelta(seconds=1)
    cloudwatch = cloud.client("cloudwatch")
    found = {}
    for name, entry in record.environments.items():
        if not entry.function_name or not entry.alias or entry.version_after is None:
            continue
        versions = [entry.version_after]
        if entry.version_before not in (None, entry.version_after):
            versions.append(str(entry.version_before))
        found[name] = read_version_metrics(
            cloudwatch, entry.function_name, entry.alias, versions, start=start, end=end, now=now
        )
    return found


def report_html(cloud: Cloud, deployment_id: str, *, now: datetime | None = None) -> str:
    """The page of ``deployment_id``: its ledger record, and its aliases' metrics read now."""
    now = now or datetime.now(UTC)
    try:
        record = operations.ledger(cloud).get(deployment_id)
    except LedgerError as exc:
        raise CliError(f"cannot read the ledger {cloud.outputs.ledger_table} ({exc})") from exc
    if record is None:
        raise CliError(
            f"deployment {deployment_id} is not in the ledger ({cloud.outputs.ledger_table}): "
            "check the id with `conveyor history`"
        )
    validated = next((e.started_at for e in record.events if e.stage == "ValidateArtifact"), record.created_at)
    spec = pipeline_at(cloud.client("s3"), cloud.outputs.bucket, record.app, validated)
    return render_html(build_view(record, collect_metrics(cloud, record, now), generated_at=now, spec=spec))


def default_path(deployment_id: str) -> Path:
    return Path(f"conveyor-report-{deployment_id}.html")
