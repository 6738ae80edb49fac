"""Approval gates and "pause for a person", end to end on the local cloud.

The execution really waits (``lambda:invoke.waitForTaskToken``) until ``conveyor approve`` or
``conveyor reject`` answers it through ``SendTaskSuccess`` / ``SendTaskFailure``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.outcome import Outcome

from conveyor_cli import operations
from conveyor_cli.approvals import caller_identity, decide
from conveyor_cli.context import CliError
from conveyor_cli.sample import EXAMPLES, alias_versions, drain_inbox

from .conftest import Stage
from .test_safety_e2e import assert_no_lock_held, ledger_record, until

pytestmark = pytest.mark.e2e

# The lowest versions of the suite (0.30.x), deployed with allow_downgrade: whichever modules ran before, these
# deploy, and whatever runs after is not refused as a downgrade of what these made live. Approval
# windows are scaled like waits on the local cloud: a day is 864 s here, ample for a test to answer.
GATE = {"required": True, "timeout_seconds": 86400, "approvers_note": "change window: weekdays 9-17"}


def push(stage: Stage, version: str) -> str:
    return str(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", version))["deployment_id"])


def awaiting(stage: Stage, deployment_id: str, environment: str) -> dict[str, Any]:
    """The environment's ledger entry once its execution waits for a person (with the stored token)."""

    def entry() -> dict[str, Any] | None:
        record = ledger_record(stage, deployment_id)
        env = record.environments.get(environment) if record else None
        if (
            env is not None
            and env.status is EnvironmentStatus.AWAITING_APPROVAL
            and (env.approval or {}).get("task_token")
        ):
            return env.model_dump(mode="json")
        return None

    found: dict[str, Any] = until(entry, f"{deployment_id} awaits a person in {environment}")
    return found


def test_an_approved_deployment_goes_to_production(stage: Stage, pipeline: Callable[..., None]) -> None:
    # Given production requires an approval
    pipeline(environments__1__approval=GATE, allow_downgrade=True)
    pushed = push(stage, "0.30.0")

    # When the deployment reaches production's gate
    waiting = awaiting(stage, pushed, "production")
    before = alias_versions(stage.cloud, stage.targets.functions)

    # Then staging is live, production untouched, no lock held while a human decides,
    # and the approvers got the command to run (without the task token)
    assert waiting["approval"]["kind"] == "approval"
    assert before["staging"]["version"] != before["production"]["version"]
    assert_no_lock_held(stage)
    notes = stage.await_notifications(pushed, "the approval request")
    assert len(notes) == 1
    assert (
        f"hello 0.30.0 awaits approval for production: run `conveyor approve {pushed} --env production`"
        in (notes[0]["message"])
    )
    assert "weekdays 9-17" in notes[0]["message"]
    assert waiting["approval"]["task_token"] not in notes[0]["message"]

    # When an approver approves
    decided = decide(stage.cloud, pushed, environment=None, verdict="approve", reason="lgtm", note="alice")

    # Then production deploys and the ledger says who approved, with the token gone
    assert decided["decision"] == "approve"
    assert "task_token" not in decided
    deployed = stage.follow(pushed)
    assert deployed.record.status is Outcome.SUCCEEDED
    assert deployed.after["production"]["version"] != before["production"]["version"]
    approval = deployed.record.environments["production"].approval
    # (the caller's AWS identity, moto's on the local cloud; the note beside it)
    me = caller_identity(stage.cloud)
    assert (approval["approved_by"], approval["reason"], approval["decision"]) == (me, "lgtm", "approve")
    assert approval["note"] == "alice"
    assert "decided_at" in approval
    assert "task_token" not in approval
    # and nothing awaits approval any more
    with pytest.raises(CliError, match="nothing awaits approval"):
        decide(stage.cloud, pushed, environment="production", verdict="approve", reason=None)


def test_a_rejected_deployment_fails_without_touching_production(stage: Stage, pipeline: Callable[..., None]) -> None:
    # Given production requires an approval and a deployment waits for it
    pipeline(environments__1__approval=GATE, allow_downgrade=True)
    pushed = push(stage, "0.30.1")
    awaiting(stage, pushed, "production")
    before = alias_versions(stage.cloud, stage.targets.functions)
    # (the approvers' request is published just after the token is stored: wait for it, then set it aside)
    stage.await_notifications(pushed, "the approval request")

    # When an approver rejects it
    decide(stage.cloud, pushed, environment="production", verdict="reject", reason="freeze week")

    # Then the deployment FAILED with the reason, production still serves what it did, no lock is held
    deployed = stage.follow(pushed)
    assert deployed.record.status is Outcome.FAILED
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == "ApprovalRejectedError"
    assert f"rejected by {caller_identity(stage.cloud)}: freeze week" in deployed.record.failure["reason"]
    assert deployed.execution.status == "FAILED"
    assert deployed.after["production"] == before["production"]
    production = deployed.record.environments["production"]
    assert production.status == "REJECTED"
    assert (production.approval or {})["rejected_by"] == caller_identity(stage.cloud)
    assert "task_token" not in (production.approval or {})
    assert not any(e.stage == "Deploy" and e.environment == "production" for e in deployed.record.events)
    assert_no_lock_held(stage)
    # and one rejection notification
    assert len(deployed.notifications) == 1
    assert f"rejected by {caller_identity(stage.cloud)}: freeze week" in deployed.notifications[0]["message"]
    assert "production: REJECTED - nothing deployed" in deployed.notifications[0]["message"]


def test_an_approval_nobody_answers_times_out_and_fails_untouched(stage: Stage, pipeline: Callable[..., None]) -> None:
    # Given production's approval window is 5 minutes (3 s at the suite's time scale)
    pipeline(environments__1__approval={**GATE, "timeout_seconds": 300}, allow_downgrade=True)
    before = alias_versions(stage.cloud, stage.targets.functions)
    drain_inbox(stage.cloud, stage.targets.inbox_url)

    # When a deployment reaches the gate and nobody approves or rejects it
    deployed = stage.follow(push(stage, "0.30.4"))

    # Then the Task's timeout (States.Timeout) FAILED it: production untouched, no lock held, on-call told why
    assert deployed.record.status is Outcome.FAILED
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == "States.Timeout"
    assert "approval for production timed out" in deployed.record.failure["reason"]
    production = deployed.record.environments["production"]
    assert production.status == "APPROVAL_TIMED_OUT"
    assert "task_token" not in (production.approval or {})
    assert deployed.after["production"] == before["production"]
    assert not any(e.stage == "Deploy" and e.environment == "production" for e in deployed.record.events)
    assert_no_lock_held(stage)
    # (both times: the 5 minutes the spec says, and the 3 s it lasted at the local cloud's time scale)
    assert any(
        "approval for production timed out: nobody approved or rejected it within 300 s (3 s at time scale 0.01)"
        in note["message"]
        for note in deployed.notifications
    )


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_an_inconclusive_verdict_pauses_for_a_person(stage: Stage, pipeline: Callable[..., None], verdict: str) -> None:
    # Given production judges per-version metrics that no traffic will satisfy, pausing when unsure
    spec_health = {
        "synthetic": {"payload": {"probe": "health"}, "expect": {"status": "ok"}},
        "metrics": {"min_invocations": 100_000},
        "on_inconclusive": "pause",
    }
    pipeline(environments__1__health=spec_health, allow_downgrade=True)
    version = "0.30.2" if verdict == "approve" else "0.30.3"
    pushed = push(stage, version)

    # When the verdict at 100% is inconclusive, the rollout waits for a person
    waiting = awaiting(stage, pushed, "production")
    assert waiting["approval"]["kind"] == "decision"
    paused = alias_versions(stage.cloud, stage.targets.functions)
    notes = stage.await_notifications(pushed, "the decision request")
    assert any("paused in production" in n["subject"] for n in notes)
    assert all(waiting["approval"]["task_token"] not in n["message"] for n in notes)

    # and a person promotes it, or rolls it back
    decide(
        stage.cloud,
        pushed,
        environment="production",
        verdict="approve" if verdict == "approve" else "reject",
        reason="traffic is low tonight, looks fine" if verdict == "approve" else "not without data",
        note="carol",
    )
    deployed = stage.follow(pushed)

    production = deployed.record.environments["production"]
    if verdict == "approve":
        assert deployed.record.status is Outcome.SUCCEEDED
        assert production.status == "LIVE"
        assert (production.approval or {})["decision"] == "promote"
        assert deployed.after["production"]["version"] == paused["production"]["version"]
    else:
        assert deployed.record.status is Outcome.ROLLED_BACK
        assert production.status == "ROLLED_BACK"
        assert (
            f"rolled back by a person while paused: rejected by {caller_identity(stage.cloud)}: not without data"
            in ((production.rollback or {})["reason"])
        )
        assert deployed.after["production"]["version"] == production.version_before
    assert "task_token" not in (production.approval or {})
    assert_no_lock_held(stage)


class _SessionAs(boto3.session.Session):
    """A session on the local cloud under other credentials (moto's STS names the identity they belong to)."""

    def __init__(self, credentials: dict[str, Any], region: str, endpoint_url: str | None) -> None:
        super().__init__(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=region,
        )
        self.endpoint_url = endpoint_url

    def client(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("endpoint_url") is None:
            kwargs["endpoint_url"] = self.endpoint_url
        return super().client(*args, **kwargs)


def as_approver(stage: Stage, role: str, session_name: str) -> Any:
    """``stage.cloud`` as a session of ``role`` named ``session_name`` (a person who assumed the approvers' role)."""
    granted = stage.cloud.client("sts").assume_role(RoleArn=role, RoleSessionName=session_name)
    cloud = copy.copy(stage.cloud)
    cloud.session = _SessionAs(granted["Credentials"], stage.cloud.session.region_name, stage.cloud.endpoint_url)
    return cloud


def test_two_distinct_approvers_of_the_named_role_are_needed(stage: Stage, pipeline: Callable[..., None]) -> None:
    # Given production needs two approvals from sessions of the approvers' role
    role = "arn:aws:iam::123456789012:role/release-approvers"
    gate = GATE | {"required_approvals": 2, "approvers": [role]}
    pipeline(environments__1__approval=gate, allow_downgrade=True)
    alice, bob = as_approver(stage, role, "alice"), as_approver(stage, role, "bob")
    pushed = push(stage, "0.30.5")
    awaiting(stage, pushed, "production")
    stage.await_notifications(pushed, "the approval request")

    # When someone outside the role approves, they are refused by name
    with pytest.raises(CliError, match="is not an approver of hello/production"):
        decide(stage.cloud, pushed, environment="production", verdict="approve", reason="me too")
    # and one approver's approval is recorded, while the execution keeps waiting
    first = decide(alice, pushed, environment="production", verdict="approve", reason="lgtm")
    assert first["pending"] == 1
    assert awaiting(stage, pushed, "production")["approval"]["task_token"]
    # and the same approver cannot count twice
    with pytest.raises(CliError, match="already approved"):
        decide(alice, pushed, environment="production", verdict="approve", reason="really")

    # When a second approver of the role approves
    decide(bob, pushed, environment="production", verdict="approve", reason="ok")

    # Then production deploys, with both approvers and every decision in the ledger
    deployed = stage.follow(pushed)
    assert deployed.record.status is Outcome.SUCCEEDED
    approval = deployed.record.environments["production"].approval or {}
    sessions = [a["by"].rsplit("/", 1)[-1] for a in approval["approvals"]]
    assert sessions == ["alice", "bob"]
    assert approval["approved_by"] == caller_identity(bob)
    decisions = [(e.stage, e.detail["by"].rsplit("/", 1)[-1]) for e in deployed.record.events if "by" in e.detail]
    assert ("Approve", "alice") in decisions
    assert ("Approve", "bob") in decisions
    assert sum(stage == "DecisionRefused" for stage, _ in decisions) == 2
