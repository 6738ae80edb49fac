"""A person's decision (``conveyor approve``/``reject``) is the library's: recorded, sent, put back on a failure."""

from __future__ import annotations

import re

import pytest
from conveyor.domain.closing import close_approvals
from conveyor.domain.decisions import decide, may_decide
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import (
    AlreadyApprovedError,
    ApproverNotAllowedError,
    DecisionInvalidError,
    NothingAwaitsDecisionError,
    SelfApprovalError,
    TaskAnswerError,
)

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


def test_a_decision_step_functions_did_not_take_after_the_gate_closed_keeps_its_error() -> None:
    # Given a gate closed while the decision was being sent (the execution ended, its gate recorded meanwhile)
    ledger = _waiting()

    class _ClosingTasks(FakeTaskTokens):
        def succeed(self, token: str, output: dict) -> None:
            ledger.update_environment("d-unit", "staging", {"status": EnvironmentStatus.ROLLED_BACK})
            raise TaskAnswerError("throttled", gone=False)

    # When Step Functions did not take it, Then the caller hears why, and the gate is left as it was closed
    with pytest.raises(TaskAnswerError, match="could not approve deployment d-unit in staging: throttled"):
        _decide(ledger, _ClosingTasks())
    assert ledger.get("d-unit").environments["staging"].status is EnvironmentStatus.ROLLED_BACK


def test_nothing_awaiting_is_a_named_error() -> None:
    ledger = started_ledger(build_step())
    with pytest.raises(NothingAwaitsDecisionError, match="nothing awaits approval for deployment d-unit"):
        _decide(ledger, FakeTaskTokens())


def test_a_decision_that_comes_second_is_told_who_decided_first() -> None:
    # Given a gate that alice approved (with a note naming her, as a shared role's sessions need)
    ledger, tasks = _waiting(), FakeTaskTokens()
    decided_at = decide(
        "d-unit",
        environment=None,
        verdict="approve",
        reason=None,
        by="alice",
        ledger=ledger,
        tasks=tasks,  # type: ignore[arg-type]
        note="Alice Liddell",
    )["decided_at"]

    # When another decision comes after it (it lost the race to the gate), Then it hears who decided, and when
    with pytest.raises(
        NothingAwaitsDecisionError,
        match=f"already decided: staging: approve by alice \\(Alice Liddell\\) at {re.escape(decided_at)}",
    ):
        _decide(ledger, tasks, verdict="reject", reason="too late")


# --- who decides: the caller's AWS identity, the spec's approvers, N distinct approvals, never the pusher alone ---
PUSHER = "arn:aws:iam::123456789012:user/ci"  # started_ledger's S3 requester
ALICE = "arn:aws:sts::123456789012:assumed-role/release-approvers/alice"
BOB = "arn:aws:iam::123456789012:user/bob"


def _gate(**policy: object) -> FakeLedger:
    ledger = started_ledger(build_step())
    ledger.update_environment(
        "d-unit",
        "staging",
        {
            "status": EnvironmentStatus.AWAITING_APPROVAL,
            "approval": {"kind": "approval", "task_token": TOKEN, "approvals": [], **policy},
        },
    )
    return ledger


def _as(ledger: FakeLedger, tasks: FakeTaskTokens, by: str, verdict: str = "approve", reason: str | None = None):
    return decide(
        "d-unit",
        environment="staging",
        verdict=verdict,
        reason=reason,
        by=by,
        ledger=ledger,
        tasks=tasks,  # type: ignore[arg-type]
    )


def test_the_pusher_may_not_approve_their_own_release_and_the_refusal_is_recorded() -> None:
    ledger, tasks = _gate(), FakeTaskTokens()

    with pytest.raises(SelfApprovalError, match=f"{PUSHER} pushed deployment d-unit and may not approve it"):
        _as(ledger, tasks, PUSHER)

    assert tasks.answers == []
    assert ledger.get("d-unit").environments["staging"].status is EnvironmentStatus.AWAITING_APPROVAL
    (refused,) = ledger.stage_events("DecisionRefused")
    assert (refused.detail["by"], refused.detail["error"]) == (PUSHER, "SelfApprovalError")
    assert refused.environment == "staging"


def test_the_pusher_may_approve_when_the_spec_allows_it_and_may_always_reject() -> None:
    ledger, tasks = _gate(allow_self_approval=True), FakeTaskTokens()
    assert _as(ledger, tasks, PUSHER)["approved_by"] == PUSHER

    ledger, tasks = _gate(), FakeTaskTokens()
    assert _as(ledger, tasks, PUSHER, "reject", "wrong build")["rejected_by"] == PUSHER


def test_a_session_of_the_role_that_pushed_is_the_pusher() -> None:
    ledger = started_ledger(build_step())
    ledger.records["d-unit"]["pushed_by"] = "arn:aws:iam::123456789012:role/ci-push"
    ledger.update_environment(
        "d-unit",
        "staging",
        {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {"kind": "approval", "task_token": TOKEN}},
    )
    with pytest.raises(SelfApprovalError):
        _as(ledger, FakeTaskTokens(), "arn:aws:sts::123456789012:assumed-role/ci-push/gh-run-42")


def test_n_distinct_approvals_are_needed_before_the_task_token_is_answered() -> None:
    ledger, tasks = _gate(required_approvals=2), FakeTaskTokens()

    # When the first approver approves, it is recorded and the execution still waits
    first = _as(ledger, tasks, ALICE, reason="looks good")
    assert (first["pending"], tasks.answers) == (1, [])
    entry = ledger.get("d-unit").environments["staging"]
    assert (entry.status, entry.approval["task_token"]) == (EnvironmentStatus.AWAITING_APPROVAL, TOKEN)
    # and the same approver cannot count twice
    with pytest.raises(AlreadyApprovedError, match="1 more from other approvers needed"):
        _as(ledger, tasks, ALICE)

    # When a second, distinct approver approves, the token is answered with both recorded
    second = _as(ledger, tasks, BOB)
    ((token, kind, output),) = tasks.answers
    assert (token, kind, output["by"]) == (TOKEN, "success", BOB)
    entry = ledger.get("d-unit").environments["staging"]
    assert entry.status is EnvironmentStatus.APPROVED
    assert [a["by"] for a in entry.approval["approvals"]] == [ALICE, BOB]
    assert "task_token" not in entry.approval
    assert "pending" not in second
    events = ledger.stage_events("Approve")
    assert [(e.detail["by"], e.status, e.detail["approvals"]) for e in events] == [
        (ALICE, "recorded", 1),
        (BOB, "approve", 2),
    ]


def test_only_the_named_approvers_may_decide() -> None:
    ledger, tasks = _gate(approvers=["arn:aws:iam::123456789012:role/release-approvers"]), FakeTaskTokens()

    with pytest.raises(ApproverNotAllowedError, match=f"{BOB} is not an approver of hello/staging"):
        _as(ledger, tasks, BOB)
    assert tasks.answers == []
    assert ledger.stage_events("DecisionRefused")[0].detail["error"] == "ApproverNotAllowedError"

    # a session of the named role is one of them
    assert _as(ledger, tasks, ALICE)["approved_by"] == ALICE


@pytest.mark.parametrize(
    ("rule", "identity", "allowed"),
    [
        ("alice", ALICE, True),  # the session name
        ("release-approvers", ALICE, True),  # the role name
        ("arn:aws:iam::123456789012:role/release-*", ALICE, True),
        ("arn:aws:iam::*:user/bob", BOB, True),
        ("bob", BOB, True),
        ("bob", ALICE, False),
        ("arn:aws:iam::123456789012:role/deployers", ALICE, False),
    ],
)
def test_an_approver_rule_names_an_identity_by_arn_name_or_pattern(rule: str, identity: str, allowed: bool) -> None:
    assert may_decide(identity, [rule]) is allowed


def test_a_rejection_is_a_stage_event_with_who_and_when() -> None:
    ledger, tasks = _gate(), FakeTaskTokens()

    _as(ledger, tasks, BOB, "reject", "freeze week")

    (event,) = ledger.stage_events("Reject")
    assert (event.detail["by"], event.detail["reason"], event.status) == (BOB, "freeze week", "reject")
    assert event.finished_at is not None


@pytest.mark.parametrize(("on_timeout", "status"), [("fail", "APPROVAL_TIMED_OUT"), ("reject", "REJECTED")])
def test_what_an_unanswered_gate_records_is_the_spec_s_on_timeout(on_timeout: str, status: str) -> None:
    ledger = _gate(on_timeout=on_timeout, timeout_seconds=3600)

    _, why = close_approvals(ledger, ledger.get("d-unit"), "States.Timeout")

    entry = ledger.get("d-unit").environments["staging"]
    assert entry.status == status
    assert "nothing was deployed in staging" in why
    assert bool(ledger.stage_events("Reject")) is (on_timeout == "reject")
    assert "task_token" not in entry.approval
    if on_timeout == "reject":
        assert entry.approval["rejected_by"] == "conveyor (approval timeout)"


# --- two decisions at once: one is recorded and answered, the other refused by name, never both -------------
class _Stale:
    """The ledger as a decider who read the gate before another decision was recorded sees it: reads are the old
    record, writes go to the real ledger."""

    def __init__(self, ledger: FakeLedger) -> None:
        self._ledger, self._read = ledger, ledger.get("d-unit")

    def get(self, deployment_id: str) -> object:
        return self._read

    def __getattr__(self, name: str) -> object:
        return getattr(self._ledger, name)


@pytest.mark.parametrize(("first", "second"), [("approve", "approve"), ("reject", "approve"), ("approve", "reject")])
def test_of_two_decisions_read_at_once_only_the_first_recorded_counts(first: str, second: str) -> None:
    # Given one gate, and a second decider who read it before the first decision was recorded
    ledger, tasks = _gate(), FakeTaskTokens()
    stale = _Stale(ledger)
    _as(ledger, tasks, ALICE, first, reason="first")

    # When the second decision is made on what it read
    with pytest.raises(NothingAwaitsDecisionError, match="another decision on deployment d-unit in staging"):
        _as(stale, tasks, BOB, second, reason="second")  # type: ignore[arg-type]

    # Then the first decision alone is recorded and answered; the second is in the ledger as refused
    entry = ledger.get("d-unit").environments["staging"]
    assert entry.approval["approved_by" if first == "approve" else "rejected_by"] == ALICE
    assert [by for by in (entry.approval.get("approved_by"), entry.approval.get("rejected_by")) if by] == [ALICE]
    assert len(tasks.answers) == 1
    refused = ledger.stage_events("DecisionRefused")
    assert [(e.detail["by"], e.detail["error"]) for e in refused] == [(BOB, "EntryChangedError")]


def test_of_two_partial_approvals_read_at_once_neither_is_lost() -> None:
    # Given a gate needing two approvals, and a second approver who read it before the first approval was recorded
    ledger, tasks = _gate(required_approvals=2), FakeTaskTokens()
    stale = _Stale(ledger)
    _as(ledger, tasks, ALICE)
    # When the second approves on what it read, it is refused rather than written over the first
    with pytest.raises(NothingAwaitsDecisionError, match="another decision"):
        _as(stale, tasks, BOB)  # type: ignore[arg-type]
    # Then Alice's approval stands, the gate still waits, and Bob approving again now completes it
    assert [a["by"] for a in ledger.get("d-unit").environments["staging"].approval["approvals"]] == [ALICE]
    _as(ledger, tasks, BOB)
    assert ledger.get("d-unit").environments["staging"].status is EnvironmentStatus.APPROVED
