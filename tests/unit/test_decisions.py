"""A person's decision (``conveyor approve``/``reject``) is the library's: recorded, sent, put back on a failure."""

from __future__ import annotations

import pytest
from conveyor.domain.decisions import decide
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import DecisionInvalidError, NothingAwaitsDecisionError, TaskAnswerError

from tests.fakes import FakeLedger, FakeTaskTokens
from tests.unit.conftest import build_step, started_ledger

TOKEN = "secret-task-token"


def _waiting() -> FakeLedger:
    ledger = started_ledger(build_step())
    ledger.update_environment(
        "d-unit",
        "staging",
        {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {"kind": "approval", "task_token": TOKEN}},
    )
    return ledger


def _decide(ledger: FakeLedger, tasks: FakeTaskTokens, verdict: str = "approve", reason: str | None = None) -> dict:
    return decide(
        "d-unit",
        environment=None,
        verdict=verdict,
        reason=reason,
        by="alice",
        ledger=ledger,
        tasks=tasks,  # type: ignore[arg-type]
    )


def test_an_approval_is_recorded_without_the_token_then_sent() -> None:
    ledger, tasks = _waiting(), FakeTaskTokens()
    recorded = _decide(ledger, tasks)
    assert (recorded["environment"], recorded["decision"], recorded["approved_by"]) == ("staging", "approve", "alice")
    assert TOKEN not in str(recorded)
    entry = ledger.get("d-unit").environments["staging"]
    assert entry.status is EnvironmentStatus.APPROVED
    assert "task_token" not in entry.approval
    ((token, kind, output),) = tasks.answers
    assert (token, kind, output["decision"], output["by"]) == (TOKEN, "success", "approve", "alice")


def test_a_rejection_needs_a_reason_and_sends_nothing_without_one() -> None:
    ledger, tasks = _waiting(), FakeTaskTokens()
    with pytest.raises(DecisionInvalidError, match="a rejection needs --reason"):
        _decide(ledger, tasks, "reject", "  ")
    assert tasks.answers == []
    assert ledger.get("d-unit").environments["staging"].status is EnvironmentStatus.AWAITING_APPROVAL


def test_a_decision_step_functions_did_not_take_is_put_back_to_wait() -> None:
    ledger = _waiting()
    with pytest.raises(TaskAnswerError, match="could not approve deployment d-unit in staging"):
        _decide(ledger, FakeTaskTokens(refuse=TaskAnswerError("throttled", gone=False)))
    entry = ledger.get("d-unit").environments["staging"]
    assert (entry.status, entry.approval["task_token"]) == (EnvironmentStatus.AWAITING_APPROVAL, TOKEN)


def test_a_decision_the_execution_no_longer_waits_for_stays_recorded_and_says_so() -> None:
    ledger = _waiting()
    with pytest.raises(TaskAnswerError, match="the execution no longer waits for this decision"):
        _decide(ledger, FakeTaskTokens(refuse=TaskAnswerError("TaskTimedOut", gone=True)), "reject", "bad")
    entry = ledger.get("d-unit").environments["staging"]
    assert entry.status is EnvironmentStatus.REJECTED
    assert "task_token" not in entry.approval


def test_nothing_awaiting_is_a_named_error() -> None:
    ledger = started_ledger(build_step())
    with pytest.raises(NothingAwaitsDecisionError, match="nothing awaits approval for deployment d-unit"):
        _decide(ledger, FakeTaskTokens())
