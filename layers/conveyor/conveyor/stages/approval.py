"""RequestApproval: park the execution on a person's decision, and ask the approvers for it.

Two kinds, one ``lambda:invoke.waitForTaskToken`` task each in the state machine:

- ``approval``: the environment's gate (``approval.required``), before AcquireLock, so no lock of
  this environment is held while a human decides; the earlier environments' locks are released
  here too. ``conveyor approve`` lets the rollout go on, ``conveyor reject`` fails the deployment
  (``ApprovalRejectedError``): nothing is deployed in that environment.
- ``decision``: a rollout paused on an inconclusive verdict (``health.on_inconclusive: pause``).
  Traffic has moved and the lock is kept. ``conveyor approve`` promotes (next step, or live),
  ``conveyor reject`` rolls back.

The task token resumes the execution, so it is a credential: it is stored on the deployment's
environment entry in the ledger (status ``AWAITING_APPROVAL``) for the CLI to read, and never
logged or put in a notification. The notification is published once per request (``publish_once``),
so a retried invocation re-stores the fresh token without paging the approvers twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from conveyor.domain.contracts import ApprovalRequest, ApprovalTicket
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.locks import release_deployment_locks
from conveyor.domain.notices import notice_attributes, publish_once
from conveyor.domain.ports import Ledger, LockTable, Notifier
from conveyor.domain.time_scale import UNSCALED, TimeScale, duration_text
from conveyor.domain.timing import timed_stage, utcnow
from conveyor.observability import MetricUnit, logger, metrics

__all__ = ["approval_command", "rejection_command", "render_request", "request_approval"]


def approval_command(deployment_id: str, environment: str) -> str:
    return f"conveyor approve {deployment_id} --env {environment}"


def rejection_command(deployment_id: str, environment: str) -> str:
    return f'conveyor reject {deployment_id} --env {environment} --reason "..."'


def render_request(request: ApprovalRequest, timeout_seconds: int, scale: TimeScale = UNSCALED) -> tuple[str, str]:
    deployment, env = request.deployment, request.environment
    approve = approval_command(deployment.deployment_id, env.name)
    reject = rejection_command(deployment.deployment_id, env.name)
    target = env.target.label
    hours = scale.annotate(duration_text(timeout_seconds), timeout_seconds)
    if request.kind == "approval":
        subject = f"[Conveyor] {deployment.app} {deployment.version} awaits approval for {env.name}"
        lines = [
            f"{deployment.app} {deployment.version} awaits approval for {env.name}: run `{approve}`",
            "",
            f"Deployment {deployment.deployment_id} will deploy to {target} once approved.",
            f"To reject it (nothing is deployed in {env.name}): `{reject}`",
            f"Without a decision within {hours} it "
            + ("is rejected." if env.approval.on_timeout == "reject" else "fails."),
        ]
        if env.approval.required_approvals > 1:
            lines.insert(2, f"It needs {env.approval.required_approvals} approvals from distinct approvers.")
        if not env.approval.allow_self_approval and (deployment.pushed_by or "").startswith("arn:"):
            # (an S3 requester that names only an account names nobody to refuse: see decisions.same_principal)
            lines.insert(2, f"Whoever pushed it ({deployment.pushed_by}) may not approve it.")
    else:
        health = request.health
        weight = request.traffic.weight if request.traffic else "?"
        subject = f"[Conveyor] {deployment.app} {deployment.version} paused in {env.name}: decide"
        lines = [
            f"{deployment.app} {deployment.version} is paused in {env.name} at {weight}% traffic: "
            f"the health verdict is inconclusive.",
            f"Why: {health.reason if health else 'inconclusive'}",
            "",
            f"To promote it (next traffic step, or live): `{approve}`",
            f"To roll back {target}: `{reject}`",
            f"Without a decision within {hours} it is rolled back.",
        ]
    if env.approval.approvers_note:
        lines += ["", f"Note: {env.approval.approvers_note}"]
    if deployment.pushed_by:
        lines.append(f"Pushed by: {deployment.pushed_by}")
    lines += [f"Details: conveyor status {deployment.deployment_id}"]
    return subject, "\n".join(lines)


def request_approval(
    request: ApprovalRequest,
    *,
    ledger: Ledger,
    notifier: Notifier,
    locks: LockTable | None = None,
    scale: TimeScale = UNSCALED,
) -> ApprovalTicket:
    """Record what awaits a person and ask the approvers; the state machine waits ``timeout_seconds``
    (scaled on the local cloud, so the recorded expiry is when it really ends: see ``time_scale``)."""
    deployment, env = request.deployment, request.environment
    timeout = env.approval.timeout_seconds
    requested_at = utcnow()
    expires_at = requested_at + timedelta(seconds=scale.wall_seconds(timeout))
    if request.kind == "approval" and locks is not None:
        # Do not keep the earlier environments waiting on a human: they are done with.
        names = [e.name for e in deployment.environments]
        earlier = names[: names.index(env.name)] if env.name in names else []
        release_deployment_locks(deployment, earlier, started_at=None, locks=locks)
    step = request.traffic.index + 1 if request.kind == "decision" and request.traffic else 0
    with timed_stage(ledger, deployment.deployment_id, "RequestApproval", env.name) as detail:
        approval: dict[str, Any] = {
            "kind": request.kind,
            "task_token": request.task_token,
            "requested_at": requested_at.isoformat(),
            "expires_at": expires_at.isoformat(),
            "timeout_seconds": timeout,
            "step": step,
            "command": approval_command(deployment.deployment_id, env.name),
            # The policy conveyor approve applies (conveyor.domain.decisions): this execution's, as it asked.
            "required_approvals": env.approval.required_approvals,
            "approvers": list(env.approval.approvers),
            "allow_self_approval": env.approval.allow_self_approval,
            "on_timeout": env.approval.on_timeout,
            "approvals": [],
        }
        if scale.scaled:
            approval["time_scale"] = scale.factor  # so whoever reports its timeout says both times
        fields: dict[str, Any] = {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": approval}
        if request.kind == "approval":
            fields |= env.target.ledger_fields()
        ledger.update_environment(deployment.deployment_id, env.name, fields)
        subject, message = render_request(request, timeout, scale)
        message_id = publish_once(
            ledger,
            deployment.deployment_id,
            f"{deployment.execution_arn}#{request.kind}#{env.name}#{step}",
            lambda: notifier.publish(
                subject,
                message,
                notice_attributes(
                    app=deployment.app,
                    deployment_id=deployment.deployment_id,
                    outcome="AWAITING_APPROVAL" if request.kind == "approval" else "AWAITING_DECISION",
                    environment=env.name,
                    severity="warning",
                    kind=request.kind,
                ),
            ),
        )
        detail.update(kind=request.kind, status="awaiting", message_id=message_id, expires_at=expires_at.isoformat())
    metrics.add_metric(name="ApprovalsRequested", unit=MetricUnit.Count, value=1)
    logger.info("awaiting a person's decision", extra={"environment": env.name, "kind": request.kind})
    return ApprovalTicket(
        deployment_id=deployment.deployment_id,
        environment=env.name,
        kind=request.kind,
        requested_at=requested_at,
        expires_at=expires_at,
        message_id=message_id,
    )
