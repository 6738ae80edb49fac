"""``conveyor approve`` / ``conveyor reject``: answer a deployment that waits for a person.

The waiting execution's task token is on the deployment's environment entry in the ledger (status
``AWAITING_APPROVAL``, written by RequestApproval). The decision is recorded there first (who, when,
why; the token cleared), then sent to Step Functions, so the stages that run next never see a stale
status. If Step Functions refuses because the execution no longer waits (it timed out, or someone
decided first), the token stays cleared and the error says so; any other failure puts it back.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.domain.contracts import ApprovalDecision
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import ApprovalRejectedError
from conveyor.domain.timing import utcnow

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud

# Step Functions' answers when the token no longer resumes anything.
_GONE = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


def operator() -> str:
    """Who decides: ``CONVEYOR_USER`` if set, else the login name."""
    return os.environ.get("CONVEYOR_USER") or getpass.getuser()


def awaiting(cloud: Cloud, deployment_id: str, environment: str | None) -> tuple[str, EnvironmentEntry]:
    """The (environment, entry) of the deployment that waits for a decision; a clear error if none does."""
    record = operations.ledger(cloud).get(deployment_id)
    if record is None:
        raise CliError(f"deployment {deployment_id} is not in the ledger")
    waiting = {
        name: env
        for name, env in record.environments.items()
        if env.status is EnvironmentStatus.AWAITING_APPROVAL and (env.approval or {}).get("task_token")
    }
    if environment is not None:
        if environment not in waiting:
            entry = record.environments.get(environment)
            state = entry.status if entry is not None and entry.status is not None else "not reached"
            raise CliError(
                f"nothing awaits approval for deployment {deployment_id} in {environment} "
                f"(deployment {record.status.value}, {environment} {state})"
            )
        return environment, waiting[environment]
    if not waiting:
        raise CliError(f"nothing awaits approval for deployment {deployment_id} (it is {record.status.value})")
    if len(waiting) > 1:
        raise CliError(f"several environments await approval ({', '.join(waiting)}): choose one with --env")
    return next(iter(waiting.items()))


def decide(
    cloud: Cloud,
    deployment_id: str,
    *,
    environment: str | None,
    verdict: Literal["approve", "reject"],
    reason: str | None,
    by: str | None = None,
) -> dict[str, Any]:
    """Approve or reject; returns what was recorded (without the token)."""
    if verdict == "reject" and not (reason and reason.strip()):
        raise CliError("a rejection needs --reason")
    env_name, entry = awaiting(cloud, deployment_id, environment)
    approval = dict(entry.approval or {})
    token = approval.pop("task_token")
    kind = approval.get("kind", "approval")
    who = by or operator()
    decided = {
        **approval,
        "decision": ("approve" if kind == "approval" else "promote") if verdict == "approve" else "reject",
        "approved_by" if verdict == "approve" else "rejected_by": who,
        "decided_at": utcnow().isoformat(),
        "reason": reason,
    }
    # A paused rollout's traffic has moved: it is promoted next, or restored by RollBack.
    status = (
        EnvironmentStatus.SHIFTING
        if kind == "decision"
        else (EnvironmentStatus.APPROVED if verdict == "approve" else EnvironmentStatus.REJECTED)
    )
    ledger = operations.ledger(cloud)
    ledger.update_environment(deployment_id, env_name, {"status": status, "approval": decided})
    sfn = cloud.client("stepfunctions")
    try:
        if verdict == "approve":
            output = ApprovalDecision(decision=decided["decision"], by=who, reason=reason)
            sfn.send_task_success(taskToken=token, output=json.dumps(output.model_dump(mode="json")))
        else:
            sfn.send_task_failure(
                taskToken=token,
                error=ApprovalRejectedError.__name__,
                cause=f"rejected by {who}: {reason}",
            )
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        if code not in _GONE:
            ledger.update_environment(
                deployment_id,
                env_name,
                {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {**approval, "task_token": token}},
            )
        raise CliError(
            f"could not {verdict} deployment {deployment_id} in {env_name}: {exc}"
            + (" (the execution no longer waits for this decision)" if code in _GONE else "")
        ) from exc
    return {"deployment_id": deployment_id, "environment": env_name, "kind": kind, **decided}
