"""``conveyor approve``/``reject`` decide as the caller's AWS identity, never as a name typed on the line."""

from __future__ import annotations

import pytest
from boto3.session import Session
from botocore.stub import Stubber
from conveyor.adapters import aws
from conveyor.domain.environment import EnvironmentStatus

from conveyor_cli import approvals, main
from conveyor_cli.context import CliError
from tests.fakes import FakeTaskTokens
from tests.unit.conftest import build_step, started_ledger

ME = "arn:aws:sts::123456789012:assumed-role/release-approvers/alice"


class _Cloud:
    """Just enough of ``Cloud`` for a decision: a session whose STS client answers GetCallerIdentity."""

    def __init__(self, arn: str | None) -> None:
        self.session = Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        self.stubber = Stubber(aws.client(self.session, "sts"))
        if arn is None:
            self.stubber.add_client_error("get_caller_identity", "ExpiredToken", "The security token has expired")
        else:
            self.stubber.add_response(
                "get_caller_identity", {"UserId": "AROA:alice", "Account": "123456789012", "Arn": arn}
            )
        self.stubber.activate()


def test_by_is_refused_saying_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["approve", "d-1", "--by", "alice"]) == 2

    error = capsys.readouterr().err
    assert "--by no longer names the approver" in error
    assert "STS GetCallerIdentity" in error


def test_the_decision_is_recorded_under_the_caller_s_aws_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment waiting in staging, and a caller who sets CONVEYOR_USER to someone else
    ledger, tasks = started_ledger(build_step()), FakeTaskTokens()
    ledger.update_environment(
        "d-unit",
        "staging",
        {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {"kind": "approval", "task_token": "t"}},
    )
    monkeypatch.setenv("CONVEYOR_USER", "mallory")
    monkeypatch.setattr(approvals.operations, "ledger", lambda cloud: ledger)
    monkeypatch.setattr(approvals, "StepFunctionsExecutions", lambda session: tasks)

    # When they approve
    decided = approvals.decide(_Cloud(ME), "d-unit", environment=None, verdict="approve", reason="ok", note="Alice")  # type: ignore[arg-type]

    # Then STS says who approved; the note is only shown beside it
    assert (decided["approved_by"], decided["note"]) == (ME, "Alice")
    assert tasks.answers[0][2]["by"] == ME


def test_a_caller_sts_cannot_identify_is_refused() -> None:
    with pytest.raises(CliError, match="cannot tell who you are: STS GetCallerIdentity failed"):
        approvals.caller_identity(_Cloud(None))  # type: ignore[arg-type]


def test_the_timeline_says_who_decided_and_who_was_refused() -> None:
    from datetime import UTC, datetime

    from conveyor.domain.records import StageEvent

    from conveyor_cli.status import describe_event

    now = datetime.now(UTC)

    def line(stage: str, **detail: object) -> str:
        event = StageEvent(
            deployment_id="d-1",
            stage=stage,
            environment="production",
            status="recorded",
            started_at=now,
            finished_at=now,
            duration_ms=0,
            detail=detail,
        )
        return describe_event(event)

    assert line("Approve", by=ME, approvals=1, required=2) == f"approved by {ME} (1/2)"
    assert line("Reject", by=ME, reason="freeze") == f"rejected by {ME}: freeze"
    # what the approver said is shown with the decision (in status and in the report's timeline)
    assert line("Approve", by=ME, approvals=1, required=1, reason="ok", note="CHG-42") == (
        f"approved by {ME} (1/1): ok (note: CHG-42)"
    )
    assert line("DecisionRefused", by=ME, verdict="approve", reason="pushed it") == (
        f"approve by {ME} refused: pushed it"
    )
