"""A person's decision on a deployment that waits for one (``conveyor approve`` / ``conveyor reject``).

The waiting execution's task token is on the deployment's environment entry in the ledger (status
``AWAITING_APPROVAL``, written by RequestApproval). The decision is recorded there first (who, when,
why; the token cleared), then sent to Step Functions, so the stages that run next never see a stale
status. If Step Functions refuses because the execution no longer waits (it timed out, or someone
decided first), the token stays cleared and the error says so; any other failure puts it back.
"""

from __future__ import annotations

from typing import Any, Literal

from conveyor.domain.contracts import ApprovalDecision
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import (
    ApprovalRejectedError,
    DecisionInvalidError,
    NothingAwaitsDecisionError,
    TaskAnswerError,
)
from conveyor.domain.ports import Ledger, TaskTokens
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow

Verdict = Literal["approve", "reject"]


def awaiting(record: DeploymentRecord, environment: str | None) -> tuple[str, EnvironmentEntry]:
    """The (environment, entry) of ``record`` that waits for a decision; a named error if none does."""
    deployment_id = record.deployment_id
    waiting = {
        name: env
        for name, env in record.environments.items()
        if env.status is EnvironmentStatus.AWAITING_APPROVAL and (env.approval or {}).get("task_token")
    }
    if environment is not None:
        if environment not in waiting:
            entry = record.environments.get(environment)
            state = entry.status if entry is not None and entry.status is not None else "not reached"
            raise NothingAwaitsDecisionError(
                f"nothing awaits approval for deployment {deployment_id} in {environment} "
                f"(deployment {record.status.value}, {environment} {state})"
            )
        return environment, waiting[environment]
    if not waiting:
        raise NothingAwaitsDecisionError(
            f"nothing awaits approval for deployment {deployment_id} (it is {record.status.value})"
        )
    if len(waiting) > 1:
        raise NothingAwaitsDecisionError(
            f"several environments await approval ({', '.join(waiting)}): choose one with --env"
        )
    return next(iter(waiting.items()))


def decide(
    deployment_id: str,
    *,
    environment: str | None,
    verdict: Verdict,
    reason: str | None,
    by: str,
    ledger: Ledger,
    tasks: TaskTokens,
) -> dict[str, Any]:
    """Approve or reject on behalf of ``by``; returns what was recorded (without the token)."""
    if verdict == "reject" and not (reason and reason.strip()):
        raise DecisionInvalidError("a rejection needs --reason")
    record = ledger.get(deployment_id)
    if record is None:
        raise NothingAwaitsDecisionError(f"deployment {deployment_id} is not in the ledger")
    env_name, entry = awaiting(record, environment)
    approval = dict(entry.approval or {})
    token = approval.pop("task_token")
    kind = approval.get("kind", "approval")
    decided = {
        **approval,
        "decision": ("approve" if kind == "approval" else "promote") if verdict == "approve" else "reject",
        "approved_by" if verdict == "approve" else "rejected_by": by,
        "decided_at": utcnow().isoformat(),
        "reason": reason,
    }
    # A paused rollout's traffic has moved: it is promoted next, or restored by RollBack.
    status = (
        EnvironmentStatus.SHIFTING
        if kind == "decision"
        else (EnvironmentStatus.APPROVED if verdict == "approve" else EnvironmentStatus.REJECTED)
    )
    ledger.update_environment(deployment_id, env_name, {"status": status, "approval": decided})
    try:
        if verdict == "approve":
            output = ApprovalDecision(decision=decided["decision"], by=by, reason=reason)
            tasks.succeed(token, output.model_dump(mode="json"))
        else:
            tasks.fail(token, ApprovalRejectedError.__name__, f"rejected by {by}: {reason}")
    except TaskAnswerError as exc:
        if not exc.gone:
            ledger.update_environment(
                deployment_id,
                env_name,
                {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {**approval, "task_token": token}},
            )
        raise TaskAnswerError(
            f"could not {verdict} deployment {deployment_id} in {env_name}: {exc}"
            + (" (the execution no longer waits for this decision)" if exc.gone else ""),
            gone=exc.gone,
        ) from exc
    return {"deployment_id": deployment_id, "environment": env_name, "kind": kind, **decided}


__all__ = ["Verdict", "awaiting", "decide"]
