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
- the evidence: the rules each environment was judged by (the pipeline spec registered at validation),
  and every verdict's checks with what they measured and concluded.

The numbers and the spec are read in ``conveyor_cli.report_sources``; everything is laid out here and in
``conveyor_cli.report_charts``, and rendered by one Jinja template with autoescaping on: app names, hook
output and probe bodies are other people's text, shown as text. The page carries no script at all, and
its Content-Security-Policy forbids any, so a string that escaped the escaping still could not run.
Nothing is fetched: styles and charts are inline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.adapters.cloudwatch import CloudWatchLambdaMetrics
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import LedgerError
from conveyor.domain.notices import found_restored, never_served
from conveyor.domain.outcome import ENDED
from conveyor.domain.records import DeploymentRecord, StageEvent
from jinja2 import Environment, PackageLoader, StrictUndefined

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud
from conveyor_cli.report_charts import Chart, Series, Span, Timeline, TimeMark, format_offset, line_chart, timeline
from conveyor_cli.report_sources import (
    AWS_FINEST_PERIOD,
    LOCAL_FINEST_PERIOD,
    EnvironmentMetrics,
    RegisteredSpec,
    as_utc,
    collect_metrics,
    iso,
    pipeline_at,
)
from conveyor_cli.status import describe_event, not_reached

TEMPLATE = "report.html.j2"
VERDICT_SYMBOLS = {"pass": "✓", "fail": "✗", "inconclusive": "?"}


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
    never_served: bool
    found_restored: bool
    """The reconciler found the alias already back: whether traffic had moved is not known."""
    """The rollback moved nothing: the target still served only the version before."""
    restore_ms: Any
    after_verdict: str | None
    reason: str
    recorded: bool
    companions: list[str]
    """A target of several functions: each other function restored, as "name: version X (was Y)"."""


@dataclass(frozen=True)
class EnvironmentView:
    name: str
    target: str
    status: str
    version_before: str | None
    version_after: str | None
    versions: str
    """The versions line under the heading: what served before and what this deployment put there."""
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


def _seconds(value: datetime, origin: datetime) -> float:
    return (as_utc(value) - as_utc(origin)).total_seconds()


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
            at=iso(event.started_at) or "",
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
    return max(as_utc(e) for e in ends)


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
                at=iso(event.finished_at) or "",
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
        at=iso(when),
        by=by,
        restored_version=_text(rollback.get("restored_version")) or "(no alias: removed)",
        rolled_back_from=_text(rollback.get("rolled_back_from")),
        never_served=never_served(rollback),
        found_restored=found_restored(rollback),
        restore_ms=rollback.get("duration_ms"),
        after_verdict=after_verdict,
        reason=_text(rollback.get("reason")),
        recorded=bool(rollback.get("recorded", True)),
        companions=[
            f"{_text(c.get('function_name'))}: version {_text(c.get('restored_version')) or '(no alias: removed)'} "
            + _companion_moved(c)
            for c in rollback.get("companions", [])
        ],
    )


def _companion_moved(companion: dict[str, Any]) -> str:
    if never_served(companion):
        return "(traffic had not moved)"
    if found_restored(companion):
        return "(found already restored)"
    return f"(was version {_text(companion.get('rolled_back_from'))})"


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


def _versions(record: DeploymentRecord, entry: EnvironmentEntry) -> str:
    """What served before and what was deployed, never a version "(none)" an unfinished deployment has not
    published yet (nor one an ended deployment will never publish)."""
    if entry.status is EnvironmentStatus.PENDING:
        return not_reached(record)
    before = f"version {entry.version_before}" if entry.version_before else "no version"
    if entry.version_after:
        return f"{before} before, version {entry.version_after} deployed"
    return f"{before} before, no new version deployed{'' if record.status in ENDED else ' yet'}"


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
        target=f"{'+'.join(entry.functions or [entry.function_name])}:{entry.alias}"
        if entry.function_name
        else "(not deployed)",
        status=entry.status.value if isinstance(entry.status, EnvironmentStatus) else _text(entry.status),
        version_before=entry.version_before,
        version_after=entry.version_after,
        versions=_versions(record, entry),
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
        created_at=iso(record.created_at) or "",
        finished_at=iso(record.finished_at),
        duration=f"{record.duration_seconds:.1f} s" if record.duration_seconds is not None else None,
        pushed_by=record.pushed_by,
        package_sha256=record.package_sha256,
        execution_arn=record.execution_arn,
        generated_at=iso(generated_at) or "",
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
    spec = pipeline_at(operations.artifacts(cloud), cloud.outputs.bucket, record.app, validated)
    finest = LOCAL_FINEST_PERIOD if cloud.local else AWS_FINEST_PERIOD
    metrics = collect_metrics(
        CloudWatchLambdaMetrics(cloud.session), record, end=_end(record, now), now=now, finest=finest
    )
    return render_html(build_view(record, metrics, generated_at=now, spec=spec))


def default_path(deployment_id: str) -> Path:
    return Path(f"conveyor-report-{deployment_id}.html")
