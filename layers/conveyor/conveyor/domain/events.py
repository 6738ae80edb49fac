"""Conveyor's lifecycle events: what it publishes on EventBridge for other systems to build on.

The events are read from the ledger, never sent by the stages (the transactional outbox): the ledger table's
stream carries every change of a deployment's ``META`` item (its status and its environments' entries), and
the publisher function (``stages/publish.py``) turns each change into the events below. So a stage makes no
call more than its one ledger write, and an event is published exactly when its change was committed.

Each event is one pydantic model (``Source: conveyor``, ``DetailType`` = the model's ``DETAIL_TYPE``); their
JSON Schemas are committed under ``docs/events/`` (``schemas()``; a test keeps them equal to the models) and
described in ``docs/events.md``. ``schema_version`` changes on any change a consumer could notice; a field is
only ever added within a major version.

Idempotency: an event's ``id`` is derived from the ledger change it describes (the deployment, the execution
that owns it, the environment and what changed), never from the stream record, so a redelivered stream batch,
or the same change seen twice, publishes the same ``id``. Consumers dedupe on it.
"""

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.outcome import ENDED, Outcome

SOURCE = "conveyor"
"""The EventBridge ``source`` of every lifecycle event (a rule matches ``{"source": ["conveyor"]}``)."""

SCHEMA_VERSION: Literal["1.0"] = "1.0"

META_SK = "META"
"""The sort key of a deployment's item in the ledger (``pk=DEPLOYMENT#<id>``): the only item events come from."""


class LedgerChange(BaseModel):
    """One stream record of the ledger table, its images already plain JSON values (the adapter's work)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    event_name: Literal["INSERT", "MODIFY", "REMOVE"]
    keys: dict[str, str]
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None


class LifecycleEvent(BaseModel):
    """What every lifecycle event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    DETAIL_TYPE: ClassVar[str]

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    id: str = Field(description="stable: the same ledger change always gives the same id (dedupe on it)")
    deployment_id: str
    app: str
    version: str
    execution_arn: str | None = Field(default=None, description="the execution that owned the deployment")
    occurred_at: datetime = Field(description="when the ledger recorded the change")


class DeploymentStarted(LifecycleEvent):
    """An execution claimed the deployment: a push (or a re-run of it) is on its way."""

    DETAIL_TYPE: ClassVar[str] = "Deployment Started"

    kind: Literal["deployment.started"] = "deployment.started"
    attempt: int = Field(ge=1, description="how many executions have started this deployment")
    pushed_by: str | None = None


class TrafficShifted(LifecycleEvent):
    """An environment's alias now sends ``weight`` percent of its traffic to the new version."""

    DETAIL_TYPE: ClassVar[str] = "Traffic Shifted"

    kind: Literal["traffic.shifted"] = "traffic.shifted"
    environment: str
    weight: float = Field(ge=0, le=100)
    version_before: str | None = Field(default=None, description="the Lambda version the alias served before")
    version_after: str | None = Field(default=None, description="the Lambda version being rolled out")


class VerdictReached(LifecycleEvent):
    """EvaluateHealth judged the new version at a traffic step."""

    DETAIL_TYPE: ClassVar[str] = "Health Verdict"

    kind: Literal["health.verdict"] = "health.verdict"
    environment: str
    verdict: Literal["pass", "fail", "inconclusive"]
    reason: str
    weight: float = Field(ge=0, le=100)
    step: int | None = None
    evaluated_at: datetime


class EnvironmentLive(LifecycleEvent):
    """An environment serves the new version to all its traffic, and its checks passed."""

    DETAIL_TYPE: ClassVar[str] = "Environment Live"

    kind: Literal["environment.live"] = "environment.live"
    environment: str
    version_before: str | None = None
    version_after: str | None = None


class RolledBack(LifecycleEvent):
    """An environment's traffic went back to what it served before (RollBack, the reconciler, or an operator)."""

    DETAIL_TYPE: ClassVar[str] = "Rolled Back"

    kind: Literal["deployment.rolled_back"] = "deployment.rolled_back"
    environment: str
    reason: str | None = None
    restored_version: str | None = Field(default=None, description="the Lambda version the alias serves again")
    reconciled: bool = Field(default=False, description="restored by the reconciler after the execution ended")


class DeploymentEnded(LifecycleEvent):
    """The deployment reached its outcome; nothing more happens to it in this execution."""

    DETAIL_TYPE: ClassVar[str] = "Deployment Ended"

    kind: Literal["deployment.ended"] = "deployment.ended"
    outcome: Outcome
    succeeded: bool
    failure: dict[str, Any] | None = Field(default=None, description="error, reason, stage and environment")
    finished_at: datetime | None = None


EVENT_MODELS: tuple[type[LifecycleEvent], ...] = (
    DeploymentStarted,
    TrafficShifted,
    VerdictReached,
    EnvironmentLive,
    RolledBack,
    DeploymentEnded,
)


def schemas() -> dict[str, dict[str, Any]]:
    """Each event's JSON Schema, by file name (``docs/events/<kind>.json``), as committed in the repository."""
    out: dict[str, dict[str, Any]] = {}
    for model in EVENT_MODELS:
        kind = model.model_fields["kind"].default
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://conveyor.dev/schemas/events/{SCHEMA_VERSION}/{kind}.json"
        schema["x-detail-type"] = model.DETAIL_TYPE
        schema["x-source"] = SOURCE
        out[f"{kind}.json"] = schema
    return out


def event_id(*parts: object) -> str:
    """A stable id from what identifies a change (same parts, same id; 32 hex digits)."""
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def lifecycle_events(changes: Iterable[LedgerChange]) -> list[LifecycleEvent]:
    """The lifecycle events a run of ledger changes means, in the order the changes happened.

    Only a deployment's ``META`` item is read: its status says started and ended, its environments' entries
    say traffic shifted, verdict, live and rolled back (which the reconciler and ``conveyor rollback`` also
    write, without a stage event). Each change is compared with the image before it, so an event is
    published for what changed, not for what the item still holds.
    """
    return [event for change in changes for event in _events_of(change)]


def _events_of(change: LedgerChange) -> Iterator[LifecycleEvent]:
    if (
        change.keys.get("sk") != META_SK
        or change.new is None
        or not str(change.keys.get("pk", "")).startswith("DEPLOYMENT#")
    ):
        return
    new, old = change.new, change.old or {}
    if not {"deployment_id", "app", "status"} <= new.keys():
        return  # a claim caught mid-write: the next change of the item says it whole
    common = {
        "deployment_id": str(new["deployment_id"]),
        "app": str(new["app"]),
        "version": str(new.get("version", "")),
        "execution_arn": new.get("execution_arn"),
        "occurred_at": new.get("updated_at") or new.get("created_at"),
    }
    execution = common["execution_arn"]
    status, old_status = Outcome(new["status"]), old.get("status")
    # A new owner execution starts it; taking a lock after QUEUED is the same start, not another one.
    claimed = old_status is None or old_status in ENDED or old.get("execution_arn") != execution
    if status is Outcome.IN_PROGRESS and claimed:
        yield DeploymentStarted(
            id=event_id(common["deployment_id"], execution, "started"),
            attempt=max(1, len(new.get("attempt_executions") or ())),
            pushed_by=new.get("pushed_by"),
            **common,
        )
    old_environments = old.get("environments") if old.get("execution_arn") == execution else None
    for name, entry in (new.get("environments") or {}).items():
        yield from _environment_events(name, entry, (old_environments or {}).get(name) or {}, common)
    if status in ENDED and old_status != status.value:
        yield DeploymentEnded(
            id=event_id(common["deployment_id"], execution, "ended", status.value),
            outcome=status,
            succeeded=status is Outcome.SUCCEEDED,
            failure=new.get("failure"),
            finished_at=new.get("finished_at"),
            **common,
        )


def _environment_events(
    name: str, entry: Mapping[str, Any], before: Mapping[str, Any], common: Mapping[str, Any]
) -> Iterator[LifecycleEvent]:
    deployment, execution = common["deployment_id"], common["execution_arn"]
    status = entry.get("status")
    versions = {"version_before": entry.get("version_before"), "version_after": entry.get("version_after")}
    weight = entry.get("weight")
    moved = weight != before.get("weight") or before.get("status") != status
    if status == EnvironmentStatus.SHIFTING.value and weight is not None and moved:
        yield TrafficShifted(
            id=event_id(deployment, execution, name, "traffic", float(weight)),
            environment=name,
            weight=float(weight),
            **versions,
            **common,
        )
    verdict = entry.get("verdict") or {}
    if verdict and verdict.get("evaluated_at") != (before.get("verdict") or {}).get("evaluated_at"):
        yield VerdictReached(
            id=event_id(deployment, execution, name, "verdict", verdict.get("evaluated_at")),
            environment=name,
            verdict=verdict.get("status"),
            reason=str(verdict.get("reason", "")),
            weight=float(verdict.get("weight") or 0),
            step=verdict.get("step"),
            evaluated_at=verdict.get("evaluated_at"),
            **common,
        )
    if status == before.get("status"):
        return
    if status == EnvironmentStatus.LIVE.value:
        yield EnvironmentLive(id=event_id(deployment, execution, name, "live"), environment=name, **versions, **common)
    elif status == EnvironmentStatus.ROLLED_BACK.value:
        rollback = entry.get("rollback") or {}
        yield RolledBack(
            id=event_id(deployment, execution, name, "rolled_back"),
            environment=name,
            reason=rollback.get("reason"),
            restored_version=rollback.get("restored_version") or entry.get("version_before"),
            reconciled=bool(entry.get("reconciled")),
            **common,
        )
