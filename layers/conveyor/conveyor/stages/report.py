"""How a deployment ends: Finalize on success, NotifyFailure on any failure.

NotifyFailure is reached from every ``Catch`` in the state machine. It reads the ledger (the
source of truth for what happened), decides the outcome (ROLLED_BACK if an environment was
rolled back, ROLLBACK_FAILED if restoring failed, SUPERSEDED if a newer artifact replaced it in a
lock queue, FAILED otherwise), records it and tells the on-call what failed, why, and what was
done about it.

Both release the execution's environment locks first (every way out of the state machine passes
through one of them), and both are idempotent: a notification is claimed in the ledger per
execution, so a retried or redriven stage never publishes it twice.
"""

from __future__ import annotations

from typing import Any

from conveyor.domain.closing import close_approvals, close_unreached, emit_outcome_metrics, last_touched
from conveyor.domain.contracts import FailureRequest, FinalizeRequest, Report
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import (
    ArtifactLayoutError,
    DeploymentNotOwnedError,
    DeploymentSupersededError,
    DownMigrationFailedError,
    LedgerError,
    RollbackFailedError,
)
from conveyor.domain.locks import release_deployment_locks, release_recorded_locks
from conveyor.domain.notices import notice_attributes, publish_once, render_failure, render_success
from conveyor.domain.outcome import Outcome
from conveyor.domain.ports import Ledger, LockTable, Notifier, StageWrites
from conveyor.domain.pushed_object import PushedObject, unclaimed_record
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import timed_stage, utcnow
from conveyor.observability import MetricUnit, logger, metrics


def _outcome(record: DeploymentRecord, error: str) -> Outcome:
    if error in (RollbackFailedError.__name__, DownMigrationFailedError.__name__):
        # A failed down-migration too: the alias is back, but the data is not where it was (a person acts).
        return Outcome.ROLLBACK_FAILED
    if error == DeploymentSupersededError.__name__:
        return Outcome.SUPERSEDED
    if any(env.status is EnvironmentStatus.ROLLED_BACK for env in record.environments.values()):
        return Outcome.ROLLED_BACK
    return Outcome.FAILED


def _failed_event(record: DeploymentRecord, error: str) -> tuple[str, str | None]:
    """The stage (and environment) that failed, from the last failed event; when no stage recorded a failure (the
    state machine's own error ended it: a decision nobody took in time), that error in the last environment the
    deployment got to."""
    for event in reversed(record.events):
        if event.failed:
            return event.stage, event.environment
    return f"the state machine ({error})", last_touched(record)


def _record_unclaimed(
    request: FailureRequest, pushed: PushedObject | None, deployment_id: str, *, ledger: Ledger
) -> DeploymentRecord:
    """Record a deployment whose failure came before it was recorded (a key outside the layout, which
    ClaimDeployment does not claim), with whatever stage events were written for it. A start refused means another
    execution recorded it meanwhile: then it is that one's (the caller tells)."""
    started = ledger.start(unclaimed_record(pushed, deployment_id, request.execution_arn))
    record = ledger.get(deployment_id) or started
    if record is None:
        raise LedgerError(f"ledger: deployment {deployment_id} is not recorded and could not be started")
    return record


def notify_failure(
    request: FailureRequest, *, ledger: Ledger, notifier: Notifier, locks: LockTable | None = None
) -> Report:
    failure = request.failure
    try:
        pushed: PushedObject | None = PushedObject.from_event(request.execution_input)
    except ArtifactLayoutError:
        pushed = None
    deployment_id = pushed.deployment_id if pushed else "d-" + request.execution_arn.rsplit(":", 1)[-1]
    logger.set_correlation_id(deployment_id)
    record = ledger.get(deployment_id)
    if record is None:
        record = _record_unclaimed(request, pushed, deployment_id, ledger=ledger)
    if record.execution_arn not in (None, request.execution_arn):
        # This execution never owned the deployment (it failed before or while claiming it): the
        # owner's outcome is not ours to write. Recorded beside it, nobody paged twice.
        reason = f"{failure.error}: {failure.message}"
        ledger.record_skip(
            deployment_id,
            {"execution_arn": request.execution_arn, "at": utcnow().isoformat(), "outcome": "FAILED", "reason": reason},
        )
        return Report(deployment_id=deployment_id, outcome=Outcome.FAILED, reason=reason, error=failure.error)
    if failure.error == DeploymentNotOwnedError.__name__:
        # The deployment was closed under this execution (the reconciler ended it after a stop, and the execution was
        # then redriven) or taken by another: whoever did wrote its outcome and told the on-call. Nothing more here.
        logger.info("deployment no longer this execution's", extra={"status": record.status.value})
        return Report(deployment_id=deployment_id, outcome=record.status, reason=failure.message, error=failure.error)
    if locks is not None:
        release_recorded_locks(record, holder=request.execution_arn, started_at=request.started_at, locks=locks)
    outcome = _outcome(record, failure.error)
    if outcome is Outcome.SUPERSEDED:
        # Not a failure: a newer artifact took this one's place. Recorded (by AcquireLock), nobody paged.
        reason = (record.failure or {}).get("reason") or failure.message
        ledger.finish(deployment_id, outcome, {"error": failure.error, "reason": reason})
        logger.info("deployment superseded", extra={"reason": reason})
        return Report(deployment_id=deployment_id, outcome=outcome, reason=str(reason), error=failure.error)
    stage, environment = _failed_event(record, failure.error)
    gate = close_approvals(ledger, record, failure.error)
    if gate is not None:
        environment, reason = gate
        stage = "RequestApproval"
        record = ledger.get(deployment_id) or record
    elif outcome is Outcome.ROLLED_BACK:
        reason = _rollback_reason(record, failure.message)
    elif outcome is Outcome.ROLLBACK_FAILED and failure.error == DownMigrationFailedError.__name__:
        # The failure names the down-migration's result: said once, after why the environment was rolled back.
        reason = f"{_rollback_reason(record, 'rolled back', down=False)}; then {failure.message}"
    elif outcome is Outcome.ROLLBACK_FAILED:
        reason = _rollback_failure_reason(record, failure.message)
    else:
        reason = failure.message
    close_unreached(ledger, record)
    with timed_stage(ledger, deployment_id, "NotifyFailure") as detail:
        ledger.finish(
            deployment_id,
            outcome,
            {"error": failure.error, "reason": reason, "stage": stage, "environment": environment},
        )
        record = ledger.get(deployment_id) or record
        subject, message = render_failure(record, outcome, stage, environment, reason)
        attributes = notice_attributes(
            app=record.app, deployment_id=deployment_id, outcome=outcome.value, environment=environment
        )
        message_id = publish_once(
            ledger,
            deployment_id,
            f"{request.execution_arn}#failure",
            lambda: notifier.publish(subject, message, attributes),
        )
        detail.update(subject=subject, message_id=message_id, outcome=outcome.value)
    emit_outcome_metrics(record, outcome)
    logger.warning("deployment ended", extra={"outcome": outcome.value, "reason": reason})
    return Report(deployment_id=deployment_id, outcome=outcome, reason=reason, error=failure.error, notified=True)


def _rollback_reason(record: DeploymentRecord, fallback: str, *, down: bool = True) -> str:
    """Why the environment was rolled back, and (``down``) how its down-migration went if one ran after the
    restore."""
    for env in record.environments.values():
        rollback = env.rollback
        if env.status is EnvironmentStatus.ROLLED_BACK and rollback:
            reason = str(rollback.get("reason", fallback))
            migrated = _down_migration(record) if down else None
            return f"{reason}; {migrated}" if migrated else reason
    return fallback


def _down_migration(record: DeploymentRecord) -> str | None:
    """The down-migration's recorded result (``MigrateDown``), if one ran."""
    for event in reversed(record.events):
        if event.stage == "MigrateDown" and event.detail.get("reason"):
            return str(event.detail["reason"])
    return None


def _rollback_failure_reason(record: DeploymentRecord, fallback: str) -> str:
    """The failed RollBack's own message (it names the command to run); the ASL's Fail cause is generic."""
    for event in reversed(record.events):
        if event.stage == "RollBack" and event.failed and event.detail.get("reason"):
            return str(event.detail["reason"])
    return fallback


def stage_timings(record: DeploymentRecord) -> dict[str, float]:
    """Milliseconds spent per stage (and environment), summed over loop iterations."""
    timings: dict[str, float] = {}
    for event in record.events:
        key = f"{event.environment}/{event.stage}" if event.environment else event.stage
        timings[key] = round(timings.get(key, 0.0) + event.duration_ms, 1)
    return timings


def finalize(request: FinalizeRequest, *, ledger: Ledger, notifier: Notifier, locks: LockTable | None = None) -> Report:
    deployment = request.deployment
    if locks is not None and deployment.environments:
        # Each AcquireLock left its queue as it took the lock, and released the environments before its own: the
        # last environment's lock is the one still held (releasing it is conditional on holding it).
        release_deployment_locks(deployment, [deployment.environments[-1].name], started_at=None, locks=locks)
    record = ledger.get(deployment.deployment_id)
    if record is None:
        raise LedgerError(f"deployment {deployment.deployment_id} is not in the ledger")
    # EvaluateHealth marks an environment LIVE on its final pass; only one whose mark it could not record is left.
    unmarked = [
        result.release.environment
        for result in request.environments
        if (entry := record.environments.get(result.release.environment)) is None
        or entry.status is not EnvironmentStatus.LIVE
    ]
    for name in unmarked:
        ledger.update_environment(deployment.deployment_id, name, {"status": EnvironmentStatus.LIVE, "weight": 100})
    if unmarked:
        record = ledger.get(deployment.deployment_id) or record
    # The outcome is written with Finalize's event, in one write, once the body (the notice) completed.
    with timed_stage(
        ledger, deployment.deployment_id, "Finalize", writes=StageWrites(outcome=Outcome.SUCCEEDED)
    ) as detail:
        versions: dict[str, Any] = {
            name: {"before": env.version_before, "after": env.version_after}
            for name, env in record.environments.items()
        }
        detail.update(versions=versions, timings_ms=stage_timings(record))
        notified = False
        if deployment.notifications.on_success:
            subject, message = render_success(deployment, record)
            success_attributes = notice_attributes(
                app=deployment.app,
                deployment_id=deployment.deployment_id,
                outcome=Outcome.SUCCEEDED.value,
                environment=deployment.environments[-1].name if deployment.environments else None,
            )
            detail["message_id"] = publish_once(
                ledger,
                deployment.deployment_id,
                f"{deployment.execution_arn}#success",
                lambda: notifier.publish(subject, message, success_attributes),
            )
            notified = True
    emit_outcome_metrics(record, Outcome.SUCCEEDED)
    if deployment.manifest.commit is not None:
        lead_time = (utcnow() - deployment.manifest.commit.time).total_seconds()
        metrics.add_metric(name="LeadTimeForChanges", unit=MetricUnit.Seconds, value=lead_time)
    logger.info("deployment succeeded", extra={"versions": versions})
    return Report(
        deployment_id=deployment.deployment_id,
        outcome=Outcome.SUCCEEDED,
        reason="all environments live",
        notified=notified,
    )
