"""A person's decision on a deployment that waits for one (``conveyor approve`` / ``conveyor reject``).

The waiting execution's task token is on the deployment's environment entry in the ledger (status
``AWAITING_APPROVAL``, written by RequestApproval with the environment's approval policy). Who decides is
the caller's AWS identity (the ARN STS GetCallerIdentity returns to the CLI), never a name they type. The
policy says whose identity counts (``approvers``), how many distinct approvals the gate needs
(``required_approvals``) and whether the identity that pushed the release may approve it
(``allow_self_approval``).

Every decision is a ledger stage event with who and when: ``Approve`` (an approval counted, the gate opened
once the N-th arrives), ``Reject``, and ``DecisionRefused`` (an identity not among the approvers, the
pusher approving their own release, an approver approving twice). An approval short of the N-th is recorded
on the entry and leaves the token in place; the N-th is recorded there first (the token cleared), then sent
to Step Functions, so the stages that run next never see a stale status. If Step Functions refuses because
the execution no longer waits (it timed out, or someone decided first), the token stays cleared and the
error says so; any other failure puts it back.

Two approvers deciding at the same instant may each read the other's approval as absent: one of the two is
then lost (asked again), never counted twice, so the gate never opens with fewer than N distinct approvers.
"""

import contextlib
import fnmatch
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.domain.contracts import ApprovalDecision
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import (
    AlreadyApprovedError,
    ApprovalRejectedError,
    ApproverNotAllowedError,
    ConveyorError,
    DecisionInvalidError,
    EntryChangedError,
    NothingAwaitsDecisionError,
    SelfApprovalError,
    StatusMoveRefusedError,
    TaskAnswerError,
)
from conveyor.domain.ports import Ledger, TaskTokens
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.timing import utcnow

Verdict = Literal["approve", "reject"]

_ASSUMED_ROLE = re.compile(
    r"^arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/(?P<session>.+)$"
)
_IAM = re.compile(r"^arn:[\w-]+:iam::\d{12}:(?:user|role)/(?:.*/)?(?P<name>[^/]+)$")


class ApprovalPolicy(BaseModel):
    """The environment's ``approval`` rules as RequestApproval recorded them on the waiting entry."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    required_approvals: int = 1
    approvers: list[str] = Field(default_factory=list)
    allow_self_approval: bool = False


def identity_forms(identity: str) -> set[str]:
    """The forms an approver rule may name ``identity`` by: the ARN itself, an assumed role's role ARN, and
    the name (an IAM user's or role's name, an assumed role's role and session names)."""
    forms = {identity}
    assumed = _ASSUMED_ROLE.match(identity)
    if assumed is not None:
        role = f"arn:{assumed['partition']}:iam::{assumed['account']}:role/{assumed['role']}"
        forms |= {role, assumed["role"], assumed["session"]}
    iam = _IAM.match(identity)
    if iam is not None:
        forms.add(iam["name"])
    return forms


def may_decide(identity: str, approvers: list[str]) -> bool:
    """Whether ``identity`` is one of ``approvers`` (names, ARNs, or patterns with ``*`` and ``?``); an empty
    list lets anyone decide who may answer the task token."""
    if not approvers:
        return True
    forms = identity_forms(identity)
    return any(fnmatch.fnmatchcase(form, rule) for rule in approvers for form in forms)


def same_principal(identity: str, pushed_by: str | None) -> bool:
    """Whether ``identity`` is the one that pushed the release: the same ARN, or a session of the role that
    pushed (every session of that role is, as far as AWS can tell, that pusher). An S3 requester that names
    only an account (what S3's EventBridge event carries) names no principal, so it matches nobody."""
    if not pushed_by or not pushed_by.startswith("arn:"):
        return False
    if identity == pushed_by:
        return True
    assumed = _ASSUMED_ROLE.match(identity)
    pushed_assumed = _ASSUMED_ROLE.match(pushed_by)
    if assumed is not None and pushed_assumed is not None:
        return False  # two sessions of one role: told apart by their session names, which differ
    return pushed_by in identity_forms(identity) or identity in identity_forms(pushed_by)


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
                f"(deployment {record.status.value}, {environment} {state}{_decided(record, environment)})"
            )
        return environment, waiting[environment]
    if not waiting:
        raise NothingAwaitsDecisionError(
            f"nothing awaits approval for deployment {deployment_id} (it is {record.status.value}"
            f"{_decided(record, None)})"
        )
    if len(waiting) > 1:
        raise NothingAwaitsDecisionError(
            f"several environments await approval ({', '.join(waiting)}): choose one with --env"
        )
    return next(iter(waiting.items()))


def _decided(record: DeploymentRecord, environment: str | None) -> str:
    """The decisions already taken (in ``environment``, or in any), for a refusal: one who lost a race to decide
    learns who decided, not only that nothing waits."""
    taken = []
    for name, env in record.environments.items():
        approval = env.approval or {}
        if environment not in (None, name) or "decision" not in approval:
            continue
        by = approval.get("approved_by") or approval.get("rejected_by")
        note = f" ({approval['note']})" if approval.get("note") else ""
        taken.append(f"{name}: {approval['decision']} by {by}{note} at {approval.get('decided_at')}")
    return f"; already decided: {'; '.join(taken)}" if taken else ""


def _record(ledger: Ledger, deployment_id: str, environment: str, stage: str, status: str, **detail: Any) -> None:
    """One decision as a ledger stage event: who, when, what."""
    now = utcnow()
    ledger.record_event(
        StageEvent(
            deployment_id=deployment_id,
            stage=stage,
            environment=environment,
            status=status,
            started_at=now,
            finished_at=now,
            duration_ms=0.0,
            detail={key: value for key, value in detail.items() if value is not None},
        )
    )


def _refused(
    ledger: Ledger,
    deployment_id: str,
    environment: str,
    error: ConveyorError,
    *,
    by: str,
    verdict: Verdict,
    note: str | None = None,
    cause: Exception | None = None,
) -> None:
    """A decision refused, in the ledger: who, what they decided, and why not (the error, or what caused it)."""
    _record(
        ledger,
        deployment_id,
        environment,
        "DecisionRefused",
        "refused",
        by=by,
        verdict=verdict,
        note=note,
        error=type(cause or error).__name__,
        reason=str(error),
    )


def check_decider(
    record: DeploymentRecord, environment: str, approval: dict[str, Any], *, verdict: Verdict, by: str
) -> None:
    """Refuse, by name, an identity the policy does not let take this decision (the caller records it)."""
    policy = ApprovalPolicy.model_validate(approval)
    pusher = same_principal(by, record.pushed_by)
    if verdict == "reject" and pusher:
        return  # whoever pushed a release may always stop it
    if not may_decide(by, policy.approvers):
        raise ApproverNotAllowedError(
            f"{by} is not an approver of {record.app}/{environment} (approval.approvers: {', '.join(policy.approvers)})"
        )
    if verdict == "approve" and pusher and not policy.allow_self_approval:
        raise SelfApprovalError(
            f"{by} pushed deployment {record.deployment_id} and may not approve it "
            f"(another approver must; approval.allow_self_approval lets the pusher)"
        )
    if verdict == "approve" and any(a.get("by") == by for a in approval.get("approvals", [])):
        raise AlreadyApprovedError(
            f"{by} already approved deployment {record.deployment_id} in {environment}; "
            f"{policy.required_approvals - len(approval.get('approvals', []))} more from other approvers needed"
        )


def decide(
    deployment_id: str,
    *,
    environment: str | None,
    verdict: Verdict,
    reason: str | None,
    by: str,
    ledger: Ledger,
    tasks: TaskTokens,
    note: str | None = None,
) -> dict[str, Any]:
    """Approve or reject on behalf of the AWS identity ``by``; returns what was recorded (without the token).

    ``note``: shown beside the identity (a display name), never used to decide who it is.
    """
    if verdict == "reject" and not (reason and reason.strip()):
        raise DecisionInvalidError("a rejection needs --reason")
    record = ledger.get(deployment_id)
    if record is None:
        raise NothingAwaitsDecisionError(f"deployment {deployment_id} is not in the ledger")
    env_name, entry = awaiting(record, environment)
    approval = dict(entry.approval or {})
    kind = approval.get("kind", "approval")
    try:
        check_decider(record, env_name, approval, verdict=verdict, by=by)
    except ConveyorError as exc:
        _refused(ledger, deployment_id, env_name, exc, by=by, verdict=verdict, note=note)
        raise
    decided_at = utcnow().isoformat()
    if verdict == "approve" and kind == "approval":
        approvals = [*approval.get("approvals", []), {"by": by, "at": decided_at, "note": note, "reason": reason}]
        required = ApprovalPolicy.model_validate(approval).required_approvals
        if len(approvals) < required:
            _compare_and_set(
                ledger,
                deployment_id,
                env_name,
                {"approval": {**approval, "approvals": approvals}},
                read=approval,
                by=by,
                verdict=verdict,
            )
            _record(
                ledger,
                deployment_id,
                env_name,
                "Approve",
                "recorded",
                by=by,
                note=note,
                reason=reason,
                approvals=len(approvals),
                required=required,
            )
            shown = {k: v for k, v in approval.items() if k != "task_token"}
            return {
                "deployment_id": deployment_id,
                "environment": env_name,
                "kind": kind,
                **shown,
                "approvals": approvals,
                "decision": "approve",
                "approved_by": by,
                "decided_at": decided_at,
                "reason": reason,
                "pending": required - len(approvals),
            }
    else:
        approvals = None
    return _answer(
        deployment_id,
        env_name,
        approval,
        approvals,
        verdict=verdict,
        reason=reason,
        by=by,
        note=note,
        decided_at=decided_at,
        ledger=ledger,
        tasks=tasks,
    )


def _compare_and_set(
    ledger: Ledger,
    deployment_id: str,
    env_name: str,
    fields: dict[str, Any],
    *,
    read: dict[str, Any],
    by: str,
    verdict: Verdict,
) -> None:
    """Record a decision only while the gate is as it was read: of two decisions at once, one is recorded and the
    other refused by name (it is in the ledger as refused), never both."""
    try:
        ledger.update_environment(deployment_id, env_name, fields, expected={"approval": read})
    except EntryChangedError as exc:
        refusal = NothingAwaitsDecisionError(
            f"another decision on deployment {deployment_id} in {env_name} was recorded while {by}'s was; "
            f"nothing was recorded for this one (see `conveyor status {deployment_id}`)"
        )
        _refused(ledger, deployment_id, env_name, refusal, by=by, verdict=verdict, cause=exc)
        raise refusal from exc


def _answer(
    deployment_id: str,
    env_name: str,
    approval: dict[str, Any],
    approvals: list[dict[str, Any]] | None,
    *,
    verdict: Verdict,
    reason: str | None,
    by: str,
    note: str | None,
    decided_at: str,
    ledger: Ledger,
    tasks: TaskTokens,
) -> dict[str, Any]:
    """Record the decision that ends the wait (the token cleared, with ``approvals``: every approval the gate
    counted), then send it to Step Functions."""
    waiting = dict(approval)
    approval = {key: value for key, value in approval.items() if key != "task_token"}
    token = waiting["task_token"]
    kind = approval.get("kind", "approval")
    if approvals is not None:
        approval["approvals"] = approvals
    decided = {
        **approval,
        "decision": ("approve" if kind == "approval" else "promote") if verdict == "approve" else "reject",
        "approved_by" if verdict == "approve" else "rejected_by": by,
        "decided_at": decided_at,
        "reason": reason,
    }
    if note:
        decided["note"] = note
    # A paused rollout's traffic has moved: it is promoted next, or restored by RollBack.
    status = (
        EnvironmentStatus.SHIFTING
        if kind == "decision"
        else (EnvironmentStatus.APPROVED if verdict == "approve" else EnvironmentStatus.REJECTED)
    )
    _compare_and_set(
        ledger, deployment_id, env_name, {"status": status, "approval": decided}, read=waiting, by=by, verdict=verdict
    )
    stage = "Approve" if verdict == "approve" else "Reject"
    _record(
        ledger,
        deployment_id,
        env_name,
        stage,
        decided["decision"],
        by=by,
        note=note,
        reason=reason,
        approvals=len(approvals) if approvals is not None else None,
        required=ApprovalPolicy.model_validate(approval).required_approvals if approvals is not None else None,
    )
    try:
        if verdict == "approve":
            output = ApprovalDecision(decision=decided["decision"], by=by, reason=reason)
            tasks.succeed(token, output.model_dump(mode="json"))
        else:
            tasks.fail(token, ApprovalRejectedError.__name__, f"rejected by {by}: {reason}")
    except TaskAnswerError as exc:
        if not exc.gone:  # waiting again as before this decision (the N-th approval not counted)
            with contextlib.suppress(EntryChangedError, StatusMoveRefusedError):  # the gate moved on (closed) meanwhile
                ledger.update_environment(
                    deployment_id,
                    env_name,
                    {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": waiting},
                    expected={"approval": decided},
                )
        raise TaskAnswerError(
            f"could not {verdict} deployment {deployment_id} in {env_name}: {exc}"
            + (" (the execution no longer waits for this decision)" if exc.gone else ""),
            gone=exc.gone,
        ) from exc
    return {"deployment_id": deployment_id, "environment": env_name, "kind": kind, **decided}


__all__ = ["ApprovalPolicy", "Verdict", "awaiting", "check_decider", "decide", "identity_forms", "may_decide"]
