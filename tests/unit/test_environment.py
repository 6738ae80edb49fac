"""An environment's ledger entry: typed, read from and written back to the same item, moved by one table."""

from __future__ import annotations

import pytest
from conveyor.domain.environment import EnvironmentStatus, may_move
from conveyor.domain.records import DeploymentRecord

from tests.fakes import FakeLedger
from tests.fakes.ports import IllegalMoveError

S = EnvironmentStatus
OLD_ITEM = {
    "status": "ROLLED_BACK",
    "function_name": "hello-staging",
    "alias": "live",
    "lock_target": "arn:aws:lambda:us-east-1:123456789012:function:hello-staging",
    "version_before": "1",
    "version_after": "2",
    "weight": 0,
    "rollback": {"restored_version": "1", "duration_ms": 41.5},
    "served_before": None,
    "reconciled": True,
    "a_key_a_later_version_writes": {"kept": True},
}


def test_an_entry_written_before_the_model_reads_typed_and_dumps_to_the_same_item() -> None:
    # Given an environment entry as the ledger holds it (including a key this version does not name)
    record = DeploymentRecord.model_validate(
        {
            "deployment_id": "d-1",
            "app": "hello",
            "version": "2",
            "status": "ROLLED_BACK",
            "created_at": "2024-05-14T09:21:08Z",
            "updated_at": "2024-05-14T09:22:08Z",
            "environments": {"staging": OLD_ITEM},
        }
    )
    # When it is read
    entry = record.environments["staging"]
    # Then its fields are typed, and it dumps to exactly the item it came from (nothing added, nothing lost)
    assert entry.status is S.ROLLED_BACK
    assert (entry.weight, entry.version_before) == (0, "1")
    assert entry.model_dump(mode="json") == OLD_ITEM
    assert record.model_dump(mode="json")["environments"] == {"staging": OLD_ITEM}


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.QUEUED, S.LOCKED),
        (S.LOCKED, S.DEPLOYED),
        (S.DEPLOYED, S.SHIFTING),
        (S.SHIFTING, S.LIVE),
        (S.LIVE, S.ROLLED_BACK),
        (S.AWAITING_APPROVAL, S.APPROVED),
        (S.APPROVED, S.QUEUED),  # the approval gate comes before the lock
        (S.APPROVED, S.LOCKED),
        (S.AWAITING_APPROVAL, S.SHIFTING),  # a paused rollout's decision
        (S.APPROVED, S.AWAITING_APPROVAL),  # a decision Step Functions did not take is put back
        (S.REJECTED, S.AWAITING_APPROVAL),
        (S.SHIFTING, S.SHIFTING),
        (None, S.ROLLED_BACK),
        (S.PENDING, S.AWAITING_APPROVAL),  # validation created the entry; the approval gate, the queue, the lock
        (S.PENDING, S.QUEUED),
        (S.PENDING, S.LOCKED),
    ],
)
def test_a_status_moves_forward_is_rewritten_on_a_retry_or_follows_an_unrecorded_one(
    current: EnvironmentStatus | None, to: EnvironmentStatus
) -> None:
    assert may_move(current, to)


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.LIVE, S.SHIFTING),
        (S.ROLLED_BACK, S.LIVE),
        (S.SUPERSEDED, S.DEPLOYED),
        (S.APPROVAL_TIMED_OUT, S.DEPLOYED),
        (S.QUEUED, S.LIVE),
        (S.LOCKED, S.PENDING),
    ],
)
def test_a_status_never_moves_back_or_skips_the_rollout(current: EnvironmentStatus, to: EnvironmentStatus) -> None:
    assert not may_move(current, to)


def test_the_fake_ledger_refuses_what_the_table_forbids() -> None:
    # Given an environment recorded LIVE
    ledger = FakeLedger()
    ledger.records["d-1"] = {"environments": {"staging": {"status": "LIVE"}}}
    # When a stage records it SHIFTING again, Then the fake ledger (every unit test's ledger) refuses
    with pytest.raises(IllegalMoveError, match="d-1 staging: LIVE may not move to SHIFTING"):
        ledger.update_environment("d-1", "staging", {"status": S.SHIFTING})
