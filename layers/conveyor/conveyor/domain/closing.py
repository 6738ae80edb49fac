"""How a deployment that ends is closed: its approval gates forgotten, the environments it never deployed to closed,
and its outcome counted."""

from __future__ import annotations

from typing import Any

from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import ApprovalRejectedError, DeploymentNotOwnedError, StatusMoveRefusedError
from conveyor.domain.hooks import HOOK_STAGES
from conveyor.domain.outcome import Outcome
from conveyor.domain.ports import Ledger
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.time_scale import TimeScale
from conveyor.domain.timing import utcnow
from conveyor.observability import MetricUnit, outcome_metric

TIMEOUT_DECIDER = "conveyor (approval timeout)"
"""Who a rejection on timeout is recorded as: no person decided."""


UNREACHED = frozenset({EnvironmentStatus.QUEUED, EnvironmentStatus.LOCKED, EnvironmentStatus.APPROVED})
"""Where an environment stands when its deployment may still deploy to it: in the lock's queue, holding the lock,
or approved for it (or, ``AWAITING_APPROVAL`` of kind ``approval``, waiting for people before any of that)."""


def unreached(env: EnvironmentEntry) -> bool:
    """Whether nothing was deployed in ``env`` yet, though its deployment got that far (see ``UNREACHED``)."""
    waiting = env.status is EnvironmentStatus.AWAITING_APPROVAL and (env.approval or {}).get("kind") == "approval"
    return env.status in UNREACHED or waiting


def close_unreached(ledger: Ledger, record: DeploymentRecord) -> list[str]:
    """Record ``NOT_DEPLOYED`` for each environment an ended deployment left ``unreached``, so no view shows it
    waiting for people, in a queue, holding a lock or about to deploy after the end (nothing was deployed there).
    Called after ``close_approvals``, which records a gate's own end (rejected, timed out) first. Returns them."""
    closed = []
    for name, env in record.environments.items():
        if unreached(env):
            try:
                ledger.update_environment(
                    record.deployment_id,
                    name,
                    {"status": EnvironmentStatus.NOT_DEPLOYED},
                    owner=record.execution_arn,
                )
            except StatusMoveRefusedError:
                continue  # a late stage moved it on since the record was read: what it wrote stands
            except DeploymentNotOwnedError:
                break  # a new attempt (a re-run) claimed the deployment since: its entries are its own
            closed.append(name)
    return closed


def last_touched(record: DeploymentRecord) -> str | None:
    """The last environment (in pipeline order) the deployment got to: one whose entry is more than ``PENDING``
    and not done (``LIVE``)."""
    untouched = (None, EnvironmentStatus.PENDING, EnvironmentStatus.LIVE)
    names = [name for name, env in record.environments.items() if env.status not in untouched]
    return names[-1] if names else None


def close_approvals(ledger: Ledger, record: DeploymentRecord, error: str) -> tuple[str, str] | None:
    """Forget the task tokens of an ended execution; for a failed approval gate, its environment and why.

    A gate that was rejected (``conveyor reject``) or that nobody answered in time (``States.Timeout``)
    ended the deployment before anything was deployed in its environment. Nothing is written once a new attempt
    (a re-run) claimed the deployment: its entries are its own.
    """
    try:
        return _close_approvals(ledger, record, error)
    except DeploymentNotOwnedError:
        return None


def _close_approvals(ledger: Ledger, record: DeploymentRecord, error: str) -> tuple[str, str] | None:
    gate = None
    for name, env in record.environments.items():
        approval = dict(env.approval or {})
        status = env.status
        if approval.get("kind") == "approval" and status in (
            EnvironmentStatus.AWAITING_APPROVAL,
            EnvironmentStatus.REJECTED,
        ):
            if error == "States.Timeout" and status is EnvironmentStatus.AWAITING_APPROVAL:
                # Nominal and, under the local cloud's time scale (recorded with the request), wall time.
                timeout = float(approval.get("timeout_seconds") or 0)
                window = TimeScale(factor=approval.get("time_scale", 1.0)).annotate(f"{timeout:g} s", timeout)
                gate = (name, timed_out_gate(ledger, record, name, approval, window))
                continue  # its token is forgotten with the record of the timeout
            elif error == ApprovalRejectedError.__name__ and status is EnvironmentStatus.REJECTED:
                who, why = approval.get("rejected_by"), approval.get("reason")
                gate = (name, f"approval for {name} rejected by {who}: {why}; nothing was deployed in {name}")
        if "task_token" in approval:
            approval.pop("task_token")
            ledger.update_environment(record.deployment_id, name, {"approval": approval}, owner=record.execution_arn)
    return gate


def timed_out_gate(ledger: Ledger, record: DeploymentRecord, name: str, approval: dict[str, Any], window: str) -> str:
    """Record an approval gate nobody answered in time as its ``approval.on_timeout`` says; returns why.

    ``fail`` (the default): APPROVAL_TIMED_OUT. ``reject``: a rejection, by nobody, recorded like a person's
    (REJECTED, and a ``Reject`` stage event), so it counts with the rejected releases. Either way nothing was
    deployed there.
    """
    closed = {key: value for key, value in approval.items() if key != "task_token"}
    if approval.get("on_timeout") != "reject":
        ledger.update_environment(
            record.deployment_id,
            name,
            {"status": EnvironmentStatus.APPROVAL_TIMED_OUT, "approval": closed},
            owner=record.execution_arn,
        )
        return (
            f"approval for {name} timed out: nobody approved or rejected it within {window}; "
            f"nothing was deployed in {name}"
        )
    now = utcnow()
    reason = f"nobody approved it within {window} (approval.on_timeout: reject)"
    decided = closed | {"decision": "reject", "rejected_by": TIMEOUT_DECIDER, "reason": reason}
    decided["decided_at"] = now.isoformat()
    ledger.update_environment(
        record.deployment_id,
        name,
        {"status": EnvironmentStatus.REJECTED, "approval": decided},
        owner=record.execution_arn,
    )
    ledger.record_event(
        StageEvent(
            deployment_id=record.deployment_id,
            stage="Reject",
            environment=name,
            status="reject",
            started_at=now,
            finished_at=now,
            duration_ms=0.0,
            detail={"by": TIMEOUT_DECIDER, "reason": reason},
        )
    )
    return f"approval for {name} rejected on timeout: {reason}; nothing was deployed in {name}"


def emit_outcome_metrics(record: DeploymentRecord, outcome: Outcome) -> None:
    """``Deployments`` and ``DeploymentDuration`` by ``outcome`` (and ``service``), each in a record of its own.

    Not ``metrics.add_dimension``: the invocation's shared dimensions would put ``outcome`` on every other
    metric it emits (``ReconcilerRollbacks``, ``LeadTimeForChanges``), which then never appear where the
    dashboard looks for them (``service`` alone).
    """
    outcome_metric("Deployments", MetricUnit.Count, 1, outcome.value)
    outcome_metric(
        "DeploymentDuration", MetricUnit.Seconds, (utcnow() - record.created_at).total_seconds(), outcome.value
    )


def migrations_not_undone(record: DeploymentRecord, restored: list[str]) -> list[tuple[str, str]]:
    """(environment, hook) of each migration that ran in an environment whose traffic was restored here, with no
    down-migration after it: the state machine's rollback branch runs ``migrate.down``, a stop skips it."""
    up, down = HOOK_STAGES["migrate"], HOOK_STAGES["migrate_down"]
    left = []
    for name in restored:
        events = [e for e in record.events if e.environment == name and e.stage in (up, down)]
        ran = [e for e in events if e.stage == up and not e.failed]
        if ran and not any(e.stage == down and e.started_at >= ran[-1].started_at for e in events):
            left.append((name, str(ran[-1].detail.get("hook", "migrate"))))
    return left


def data_left_migrated(record: DeploymentRecord, restored: list[str]) -> list[str]:
    """What a person must hear about each migration ``migrations_not_undone`` finds: the traffic went back, the
    data did not."""
    return [migration_warning(record, name, hook) for name, hook in migrations_not_undone(record, restored)]


def migration_warning(record: DeploymentRecord, environment: str, hook: str) -> str:
    """That ``record``'s migration ``hook`` ran in ``environment`` and was not undone: the data did not go back."""
    return (
        f"the migration {hook!r} ran in {environment} and no down-migration did (run by {record.app} "
        f"{record.version}): its data may still be in the new shape, a person must run the down-migration"
    )
