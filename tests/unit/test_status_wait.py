"""``conveyor status --wait``: when following a deployment ends, and what is said of one whose execution stopped."""

from __future__ import annotations

import pytest
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow

from conveyor_cli.status import stopped_note, wait_for
from tests.fakes import FakeLedger

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:conveyor-deployments:run-1"


def started(ledger: FakeLedger, status: Outcome = Outcome.IN_PROGRESS) -> DeploymentRecord:
    record = DeploymentRecord(
        deployment_id="d-1",
        app="hello",
        version="1.0.0",
        artifact={},
        status=status,
        created_at=utcnow(),
        updated_at=utcnow(),
        execution_arn=EXECUTION,
    )
    started = ledger.start(record)
    assert started is not None
    return started


@pytest.mark.parametrize("execution", ["ABORTED", "TIMED_OUT"])
def test_following_ends_when_the_execution_stopped_before_the_deployment_did(execution: str) -> None:
    # Given a deployment still IN_PROGRESS in the ledger whose execution was stopped
    ledger = FakeLedger()
    started(ledger)

    # When it is followed
    record = wait_for(ledger, "d-1", execution_status=lambda arn: execution, timeout=5, poll_seconds=0)

    # Then following ends at once, and status says what happened and what to do
    assert record.status is Outcome.IN_PROGRESS
    note = stopped_note(record, execution)
    assert note is not None
    assert f"its execution ended {execution} before the deployment finished" in note


@pytest.mark.parametrize("execution", ["RUNNING", "UNKNOWN", "PENDING_REDRIVE"])
def test_following_goes_on_while_the_execution_may_still_act(execution: str) -> None:
    # Given a deployment IN_PROGRESS whose execution runs, cannot be described, or may be redriven
    ledger = FakeLedger()
    started(ledger)

    # Then following it waits for the end (here: times out), and there is nothing to note
    with pytest.raises(TimeoutError, match="deployment d-1 still IN_PROGRESS"):
        wait_for(ledger, "d-1", execution_status=lambda arn: execution, timeout=0.01, poll_seconds=0.001)
    record = ledger.get("d-1")
    assert record is not None
    assert stopped_note(record, execution) is None


@pytest.mark.parametrize("execution", ["SUCCEEDED", "UNKNOWN"])
def test_a_finished_deployment_is_returned_and_has_no_stopped_note(execution: str) -> None:
    # Given a finished deployment whose execution ended, or can no longer be described (past its retention)
    ledger = FakeLedger()
    record = started(ledger, Outcome.SUCCEEDED)
    # Then following it returns at once, with nothing to note
    assert wait_for(ledger, "d-1", execution_status=lambda arn: execution, timeout=5).status is Outcome.SUCCEEDED
    assert stopped_note(record, execution) is None


def test_a_push_no_execution_picks_up_ends_the_wait_with_a_clear_reason() -> None:
    # Given a pushed deployment that never reaches the ledger, and no execution deploying it
    from conveyor_cli.status import NotStartedError

    asked: list[bool] = []

    def still_starting() -> bool:
        asked.append(True)
        return False

    # When it is followed with a start timeout shorter than the wait
    with pytest.raises(NotStartedError, match="d-pushed was not picked up: no execution recorded it within 0 s"):
        wait_for(
            FakeLedger(),
            "d-pushed",
            execution_status=lambda arn: "RUNNING",
            timeout=600,
            poll_seconds=0,
            appear_within=0,
            still_starting=still_starting,
        )
    # Then it asked whether an execution was on its way before giving up (not the whole --timeout later)
    assert asked == [True]


def test_a_push_whose_execution_is_on_its_way_is_waited_for() -> None:
    # Given a deployment whose execution runs but has not recorded it yet, then does
    ledger = FakeLedger()

    def still_starting() -> bool:
        started(ledger, Outcome.SUCCEEDED)  # it records the deployment (already ended, for the test)
        return True

    # When it is followed with a start timeout of 0
    record = wait_for(
        ledger,
        "d-1",
        execution_status=lambda arn: "SUCCEEDED",
        timeout=600,
        poll_seconds=0,
        appear_within=0,
        still_starting=still_starting,
    )
    # Then following goes on until the record is there and ended
    assert record.status is Outcome.SUCCEEDED


def test_a_stopped_deployment_with_traffic_moving_is_pointed_at_the_reconciler_not_at_a_re_run() -> None:
    # Given a deployment left open mid-rollout in production by an execution that ended (its reconcile failed)
    ledger = FakeLedger()
    started(ledger)
    ledger.update_environment("d-1", "staging", {"status": "LIVE"})
    ledger.update_environment("d-1", "production", {"status": "SHIFTING", "weight": 25})
    record = ledger.get("d-1")
    assert record is not None

    # Then status says the traffic may be split and what restores it; a re-run would deploy over it
    note = stopped_note(record, "ABORTED")
    assert note is not None
    assert "traffic in production may still be split" in note
    assert f"conveyor reconcile {EXECUTION}" in note
    assert "re-run" not in note
