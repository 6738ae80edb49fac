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

import time
from collections.abc import Callable
from typing import Any

from conveyor.domain.contracts import AWAITING_APPROVAL, Deployment, FailureRequest, FinalizeRequest, Outcome, Report
from conveyor.domain.errors import (
    ApprovalRejectedError,
    ArtifactLayoutError,
    DeploymentSupersededError,
    LedgerError,
    RollbackFailedError,
)
from conveyor.domain.layout import ArtifactKey
from conveyor.domain.ports import NOTICE_IN_FLIGHT, Ledger, LockTable, Notifier
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import timed_stage, utcnow
from conveyor.observability import MetricUnit, logger, metrics
from conveyor.stages.lock import release_deployment_locks, release_recorded_locks
from conveyor.stages.validate import PushedObject

NOTICE_LEASE_SECONDS = 60.0
"""How long a claim on a notice holds before another try may take it over: a stage's whole timeout."""


def publish_once(
    ledger: Ledger,
    deployment_id: str,
    key: str,
    publish: Callable[[], str],
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Publish a notification at most once per ``key`` (an execution and a kind), across retries and redrives.

    Two tries at once (a redriven reconciler beside an operator's ``conveyor reconcile``) never both
    publish: the second waits for the first's publication, or for its lease to run out if it crashed.
    """
    pause = 0.2
    while (
        earlier := ledger.claim_notice(deployment_id, key, now=clock(), lease_seconds=NOTICE_LEASE_SECONDS)
    ) is not None:
        if earlier != NOTICE_IN_FLIGHT:
            logger.info("notification already published", extra={"message_id": earlier, "notice": key})
            return earlier
        sleep(pause)
        pause = min(pause * 2, 2.0)
    message_id = publish()
    ledger.record_notice(deployment_id, key, message_id)
    return message_id


def _outcome(record: DeploymentRecord, error: str) -> Outcome:
    if error == RollbackFailedError.__name__:
        return Outcome.ROLLBACK_FAILED
    if error == DeploymentSupersededError.__name__:
        return Outcome.SUPERSEDED
    if any(env.get("status") == "ROLLED_BACK" for env in record.environments.values()):
        return Outcome.ROLLED_BACK
    return Outcome.FAILED


def _failed_event(record: DeploymentRecord) -> tuple[str, str | None]:
    """The stage (and environment) that failed, from the last failed or failing event."""
    for event in reversed(record.events):
        if event.status in ("failed", "fail"):
            return event.stage, event.environment
    return "unknown stage", None


def _environment_lines(record: DeploymentRecord) -> list[str]:
    lines = []
    for name, env in record.environments.items():
        where = f"{env.get('function_name')}:{env.get('alias')}"
        before, after = env.get("version_before"), env.get("version_after")
        status = env.get("status")
        if status == "ROLLED_BACK":
            rollback = env.get("rollback", {})
            restored = rollback.get("restored_version") or "(alias removed: it did not exist before)"
            lines.append(
                f"  {name}: ROLLED BACK - {where} restored to version {restored} (was {after}) "
                f"in {rollback.get('duration_ms', '?')} ms, routing cleared"
            )
        elif status == "LIVE":
            lines.append(f"  {name}: LIVE - {where} now serves version {after} (was {before})")
        elif status == "SHIFTING":
            # Traffic moved and was not restored (only reachable when the rollback itself failed).
            lines.append(
                f"  {name}: SHIFTING - {where} may still send {env.get('weight', '?')}% of traffic to version "
                f"{after} (version before: {before}); it was NOT restored"
            )
        elif status in (AWAITING_APPROVAL, "APPROVED", "REJECTED", "APPROVAL_TIMED_OUT"):
            lines.append(f"  {name}: {status} - nothing deployed; {where} untouched")
        else:
            lines.append(f"  {name}: {status} - {where} still serves version {before}; new version {after} unused")
    return lines or ["  no environment was touched: nothing was deployed"]


def _verdict_lines(record: DeploymentRecord) -> list[str]:
    lines = []
    for name, env in record.environments.items():
        verdict = env.get("verdict")
        if env.get("status") != "ROLLED_BACK" or not verdict:
            continue
        lines.append(f"  {name} at {verdict.get('weight')}% traffic: {verdict.get('status', '').upper()}")
        lines.extend(f"    - [{check['status'].upper()}] {check['reason']}" for check in verdict.get("checks", []))
    return lines


def render_failure(
    record: DeploymentRecord, outcome: Outcome, stage: str, environment: str | None, reason: str
) -> tuple[str, str]:
    where = environment or "validation"
    subject = f"[Conveyor] {record.app} {record.version} {where}: {outcome.value}"
    artifact = record.artifact
    lines = [
        f"Deployment {record.deployment_id} of {record.app} {record.version}: {outcome.value}.",
        "",
        f"What failed: {stage}{f' in {environment}' if environment else ''}",
        f"Why: {reason}",
    ]
    verdicts = _verdict_lines(record)
    if verdicts:
        lines += ["", "Health evidence:", *verdicts]
    lines += ["", "What was done:", *_environment_lines(record)]
    if outcome is Outcome.ROLLBACK_FAILED:
        lines += ["", "ACTION REQUIRED: the alias could not be restored automatically; see 'Why' for the command."]
    lines += [
        "",
        f"Artifact: s3://{artifact.get('bucket')}/{artifact.get('key')} (version {artifact.get('version_id')})",
        f"Execution: {record.execution_arn}",
        f"Attempt: {record.attempts}",
        f"Details: conveyor status {record.deployment_id}",
    ]
    return subject, "\n".join(lines)


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
    if record is not None and record.execution_arn not in (None, request.execution_arn):
        # This execution never owned the deployment (it failed before or while claiming it): the
        # owner's outcome is not ours to write. Recorded beside it, nobody paged twice.
        reason = f"{failure.error}: {failure.message}"
        ledger.record_skip(
            deployment_id,
            {"execution_arn": request.execution_arn, "at": utcnow().isoformat(), "outcome": "FAILED", "reason": reason},
        )
        return Report(deployment_id=deployment_id, outcome=Outcome.FAILED, reason=reason, error=failure.error)
    if record is None:
        # The failure came before ValidateArtifact could record the deployment (e.g. a key outside the layout).
        try:
            where = ArtifactKey.parse(pushed.key) if pushed else None
        except ArtifactLayoutError:
            where = None
        seed = pushed or PushedObject(
            deployment_id=deployment_id, bucket="", key="", version_id=None, etag=None, size=None, requester=None
        )
        record = ledger.start(
            seed.ledger_record(request.execution_arn, where.app if where else "-", where.version if where else "-")
        )
    if locks is not None:
        release_recorded_locks(record, holder=request.execution_arn, started_at=request.started_at, locks=locks)
    outcome = _outcome(record, failure.error)
    if outcome is Outcome.SUPERSEDED:
        # Not a failure: a newer artifact took this one's place. Recorded (by AcquireLock), nobody paged.
        reason = (record.failure or {}).get("reason") or failure.message
        ledger.finish(deployment_id, outcome, {"error": failure.error, "reason": reason})
        logger.info("deployment superseded", extra={"reason": reason})
        return Report(deployment_id=deployment_id, outcome=outcome, reason=str(reason), error=failure.error)
    stage, environment = _failed_event(record)
    gate = close_approvals(ledger, record, failure.error)
    if gate is not None:
        environment, reason = gate
        stage = "RequestApproval"
        record = ledger.get(deployment_id) or record
    elif outcome is Outcome.ROLLED_BACK:
        reason = _rollback_reason(record, failure.message)
    elif outcome is Outcome.ROLLBACK_FAILED:
        reason = _rollback_failure_reason(record, failure.message)
    else:
        reason = failure.message
    with timed_stage(ledger, deployment_id, "NotifyFailure") as detail:
        ledger.finish(
            deployment_id,
            outcome,
            {"error": failure.error, "reason": reason, "stage": stage, "environment": environment},
        )
        record = ledger.get(deployment_id) or record
        subject, message = render_failure(record, outcome, stage, environment, reason)
        attributes = {"app": record.app, "outcome": outcome.value, "deployment_id": deployment_id}
        if outcome is Outcome.ROLLBACK_FAILED:
            attributes["severity"] = "critical"
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


def close_approvals(ledger: Ledger, record: DeploymentRecord, error: str) -> tuple[str, str] | None:
    """Forget the task tokens of an ended execution; for a failed approval gate, its environment and why.

    A gate that was rejected (``conveyor reject``) or that nobody answered in time (``States.Timeout``)
    ended the deployment before anything was deployed in its environment.
    """
    gate = None
    for name, env in record.environments.items():
        approval = dict(env.get("approval") or {})
        status = env.get("status")
        if approval.get("kind") == "approval" and status in (AWAITING_APPROVAL, "REJECTED"):
            if error == "States.Timeout" and status == AWAITING_APPROVAL:
                gate = (
                    name,
                    f"approval for {name} timed out: nobody approved or rejected it within "
                    f"{approval.get('timeout_seconds')} s; nothing was deployed in {name}",
                )
                ledger.update_environment(record.deployment_id, name, {"status": "APPROVAL_TIMED_OUT"})
            elif error == ApprovalRejectedError.__name__ and status == "REJECTED":
                who, why = approval.get("rejected_by"), approval.get("reason")
                gate = (name, f"approval for {name} rejected by {who}: {why}; nothing was deployed in {name}")
        if "task_token" in approval:
            approval.pop("task_token")
            ledger.update_environment(record.deployment_id, name, {"approval": approval})
    return gate


def _rollback_reason(record: DeploymentRecord, fallback: str) -> str:
    for env in record.environments.values():
        rollback = env.get("rollback")
        if env.get("status") == "ROLLED_BACK" and rollback:
            return str(rollback.get("reason", fallback))
    return fallback


def _rollback_failure_reason(record: DeploymentRecord, fallback: str) -> str:
    """The failed RollBack's own message (it names the command to run); the ASL's Fail cause is generic."""
    for event in reversed(record.events):
        if event.stage == "RollBack" and event.status == "failed" and event.detail.get("reason"):
            return str(event.detail["reason"])
    return fallback


def render_success(deployment: Deployment, record: DeploymentRecord) -> tuple[str, str]:
    subject = f"[Conveyor] {deployment.app} {deployment.version}: SUCCEEDED"
    lines = [f"Deployment {deployment.deployment_id} of {deployment.app} {deployment.version}: SUCCEEDED.", ""]
    lines += _environment_lines(record)
    lines += ["", f"Details: conveyor status {deployment.deployment_id}"]
    return subject, "\n".join(lines)


def stage_timings(record: DeploymentRecord) -> dict[str, float]:
    """Milliseconds spent per stage (and environment), summed over loop iterations."""
    timings: dict[str, float] = {}
    for event in record.events:
        key = f"{event.environment}/{event.stage}" if event.environment else event.stage
        timings[key] = round(timings.get(key, 0.0) + event.duration_ms, 1)
    return timings


def finalize(request: FinalizeRequest, *, ledger: Ledger, notifier: Notifier, locks: LockTable | None = None) -> Report:
    deployment = request.deployment
    if locks is not None:
        release_deployment_locks(
            deployment, [env.name for env in deployment.environments], started_at=deployment.started_at, locks=locks
        )
    for result in request.environments:
        ledger.update_environment(
            deployment.deployment_id, result.release.environment, {"status": "LIVE", "weight": 100}
        )
    record = ledger.get(deployment.deployment_id)
    if record is None:
        raise LedgerError(f"deployment {deployment.deployment_id} is not in the ledger")
    with timed_stage(ledger, deployment.deployment_id, "Finalize") as detail:
        versions: dict[str, Any] = {
            name: {"before": env.get("version_before"), "after": env.get("version_after")}
            for name, env in record.environments.items()
        }
        detail.update(versions=versions, timings_ms=stage_timings(record))
        ledger.finish(deployment.deployment_id, Outcome.SUCCEEDED)
        notified = False
        if deployment.notifications.on_success:
            subject, message = render_success(deployment, record)
            detail["message_id"] = publish_once(
                ledger,
                deployment.deployment_id,
                f"{deployment.execution_arn}#success",
                lambda: notifier.publish(subject, message, {"app": deployment.app, "outcome": Outcome.SUCCEEDED.value}),
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


def emit_outcome_metrics(record: DeploymentRecord, outcome: Outcome) -> None:
    metrics.add_dimension(name="outcome", value=outcome.value)
    metrics.add_metric(name="Deployments", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="DeploymentDuration", unit=MetricUnit.Seconds, value=(utcnow() - record.created_at).total_seconds()
    )
