"""Ledger stream records become Conveyor's lifecycle events: what changed, in order, with stable ids."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from boto3.session import Session
from botocore.stub import Stubber
from conveyor.adapters.dynamodb_stream import ledger_changes
from conveyor.adapters.eventbridge import EventBridgeBus, entry
from conveyor.domain.errors import EventPublishError, LedgerError
from conveyor.domain.events import (
    DeploymentEnded,
    DeploymentStarted,
    LedgerChange,
    LifecycleEvent,
    RolledBack,
    TrafficShifted,
    VerdictReached,
    lifecycle_events,
    schemas,
)

SCHEMAS = Path(__file__).parents[2] / "docs" / "events"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:conveyor-deployments:e1"
KEYS = {"pk": "DEPLOYMENT#d-1", "sk": "META"}


def _meta(**fields: Any) -> dict[str, Any]:
    return {
        "pk": "DEPLOYMENT#d-1",
        "sk": "META",
        "deployment_id": "d-1",
        "app": "hello",
        "version": "1.2.0",
        "status": "IN_PROGRESS",
        "execution_arn": EXECUTION,
        "attempt_executions": {EXECUTION},
        "created_at": "2026-12-03T10:00:00+00:00",
        "updated_at": "2026-12-03T10:00:00+00:00",
        "environments": {},
        **fields,
    }


class Ledger:
    """Writes to one META image and keeps the stream records they would produce (old and new image)."""

    def __init__(self) -> None:
        self.image: dict[str, Any] | None = None
        self.changes: list[LedgerChange] = []
        self._clock = 0

    def write(self, change: Callable[[dict[str, Any]], None] | None = None, **fields: Any) -> None:
        old = copy.deepcopy(self.image)
        new = copy.deepcopy(old) if old is not None else _meta()
        new.update(fields)
        if change is not None:
            change(new)
        self._clock += 1
        new["updated_at"] = f"2026-12-03T10:00:{self._clock:02d}+00:00"
        self.image = new
        self.changes.append(LedgerChange(event_name="MODIFY" if old else "INSERT", keys=KEYS, old=old, new=new))

    def entry(self, environment: str, **fields: Any) -> None:
        self.write(lambda image: image["environments"].setdefault(environment, {}).update(fields))

    def verdict(self, environment: str, status: str, weight: int, *, live: bool = False) -> None:
        verdict = {
            "status": status,
            "reason": f"{status} at {weight}%",
            "weight": Decimal(weight),
            "checks": [],
            "evaluated_at": f"2026-12-03T11:00:{self._clock:02d}+00:00",
            "step": 1,
        }
        self.entry(environment, verdict=verdict, **({"status": "LIVE"} if live else {}))


def _pending(ledger: Ledger, *environments: str) -> None:
    ledger.write()  # the claim
    ledger.write(
        lambda image: image["environments"].update(
            {name: {"status": "PENDING", "function_name": "hello"} for name in environments}
        )
    )


def _good_deployment() -> Ledger:
    ledger = Ledger()
    _pending(ledger, "staging", "production")
    ledger.entry("staging", status="LOCKED")
    ledger.entry("staging", status="DEPLOYED", version_before="1", version_after="2")
    ledger.entry("staging", status="SHIFTING", weight=Decimal(100))
    ledger.verdict("staging", "pass", 100, live=True)
    ledger.entry("production", status="DEPLOYED", version_before="4", version_after="5")
    ledger.entry("production", status="SHIFTING", weight=Decimal(10))
    ledger.verdict("production", "inconclusive", 10)
    ledger.verdict("production", "pass", 11)
    ledger.entry("production", status="SHIFTING", weight=Decimal(100))
    ledger.verdict("production", "pass", 100, live=True)
    ledger.write(status="SUCCEEDED", finished_at="2026-12-03T10:05:00+00:00")
    return ledger


def _rolled_back_deployment() -> Ledger:
    ledger = Ledger()
    _pending(ledger, "production")
    ledger.entry("production", status="DEPLOYED", version_before="4", version_after="5")
    ledger.entry("production", status="SHIFTING", weight=Decimal(10))
    ledger.verdict("production", "fail", 10)
    ledger.entry(
        "production",
        status="ROLLED_BACK",
        weight=Decimal(0),
        rollback={"reason": "error rate 12% over 1%", "restored_version": "4"},
    )
    ledger.write(status="ROLLED_BACK", failure={"error": "DeploymentRolledBackError"}, finished_at="2026-12-03T11:00")
    return ledger


def _kinds(events: list[LifecycleEvent]) -> list[tuple[str, str | None]]:
    return [(type(e).__name__, getattr(e, "environment", None)) for e in events]


def test_a_good_deployment_means_started_shifted_verdicts_live_and_ended_in_order() -> None:
    # Given every change a two-environment canary deployment made to its META item
    ledger = _good_deployment()
    # When they are read as lifecycle events
    events = lifecycle_events(ledger.changes)
    # Then each step is one event, in the order it was committed
    assert _kinds(events) == [
        ("DeploymentStarted", None),
        ("TrafficShifted", "staging"),
        ("VerdictReached", "staging"),
        ("EnvironmentLive", "staging"),
        ("TrafficShifted", "production"),
        ("VerdictReached", "production"),
        ("VerdictReached", "production"),
        ("TrafficShifted", "production"),
        ("VerdictReached", "production"),
        ("EnvironmentLive", "production"),
        ("DeploymentEnded", None),
    ]
    assert {e.deployment_id for e in events} == {"d-1"}
    assert {e.app for e in events} == {"hello"}
    assert [e.weight for e in events if isinstance(e, TrafficShifted)] == [100.0, 10.0, 100.0]
    ended = events[-1]
    assert isinstance(ended, DeploymentEnded)
    assert ended.outcome == "SUCCEEDED"
    assert ended.succeeded
    assert isinstance(events[0], DeploymentStarted)
    assert events[0].attempt == 1
    assert len({e.id for e in events}) == len(events)


def test_a_rolled_back_deployment_says_the_failed_verdict_the_rollback_and_the_outcome() -> None:
    events = lifecycle_events(_rolled_back_deployment().changes)
    assert _kinds(events)[-3:] == [
        ("VerdictReached", "production"),
        ("RolledBack", "production"),
        ("DeploymentEnded", None),
    ]
    verdict, rolled_back, ended = events[-3:]
    assert isinstance(verdict, VerdictReached)
    assert verdict.verdict == "fail"
    assert isinstance(rolled_back, RolledBack)
    assert rolled_back.restored_version == "4"
    assert rolled_back.reason == "error rate 12% over 1%"
    assert isinstance(ended, DeploymentEnded)
    assert ended.outcome == "ROLLED_BACK"
    assert not ended.succeeded


def test_a_redelivered_batch_gives_the_same_ids() -> None:
    changes = _good_deployment().changes
    first = [e.id for e in lifecycle_events(changes)]
    # the stream hands a batch again after a failure; or it is split (bisected) and retried in halves
    assert [e.id for e in lifecycle_events(changes)] == first
    halves = lifecycle_events(changes[:7]) + lifecycle_events(changes[7:])
    assert [e.id for e in halves] == first


def test_a_retried_write_of_the_same_state_publishes_nothing() -> None:
    # Given a ShiftTraffic retried after its write committed: the same status and weight again
    ledger = _rolled_back_deployment()
    ledger.entry("production", status="ROLLED_BACK", weight=Decimal(0))
    assert lifecycle_events(ledger.changes[-1:]) == []


def test_a_new_attempt_is_a_new_start_with_new_ids() -> None:
    ledger = _rolled_back_deployment()
    first = {e.id for e in lifecycle_events(ledger.changes)}
    again = "arn:aws:states:us-east-1:123456789012:execution:conveyor-deployments:e2"
    ledger.write(status="IN_PROGRESS", execution_arn=again, attempt_executions={EXECUTION, again}, environments={})
    started = lifecycle_events(ledger.changes[-1:])
    assert _kinds(started) == [("DeploymentStarted", None)]
    assert isinstance(started[0], DeploymentStarted)
    assert started[0].attempt == 2
    assert started[0].id not in first


@pytest.mark.parametrize(
    "change",
    [
        LedgerChange(event_name="INSERT", keys={"pk": "DEPLOYMENT#d-1", "sk": "EVENT#2026#Deploy#staging"}, new={}),
        LedgerChange(event_name="MODIFY", keys={"pk": "LOCK#arn", "sk": "META"}, new={"status": "x"}),
        LedgerChange(event_name="REMOVE", keys=KEYS, old=_meta()),
        LedgerChange(event_name="INSERT", keys=KEYS, new={"pk": "DEPLOYMENT#d-1", "sk": "META"}),
    ],
    ids=["stage event", "another item", "removed", "half-written claim"],
)
def test_changes_that_are_not_a_deployment_s_state_mean_no_event(change: LedgerChange) -> None:
    assert lifecycle_events([change]) == []


def test_the_committed_schemas_are_the_models() -> None:
    # Regenerate with: python -m conveyor_cli.event_schemas (docs/events.md)
    committed = {path.name: json.loads(path.read_text()) for path in SCHEMAS.glob("*.json")}
    assert committed == schemas()


def _bus(
    responses: list[dict[str, Any]], expected: list[list[LifecycleEvent]] | None = None
) -> tuple[EventBridgeBus, Stubber, list[float]]:
    pauses: list[float] = []
    bus = EventBridgeBus(Session(region_name="us-east-1"), "conveyor-events", sleep=pauses.append)
    stubber = Stubber(bus._events)
    for i, response in enumerate(responses):
        params = {"Entries": [entry(e, "conveyor-events") for e in expected[i]]} if expected else None
        stubber.add_response("put_events", response, params)
    stubber.activate()
    return bus, stubber, pauses


def _ok(count: int) -> dict[str, Any]:
    return {"FailedEntryCount": 0, "Entries": [{"EventId": f"e{i}"} for i in range(count)]}


def test_the_bus_puts_at_most_ten_entries_a_call() -> None:
    events = lifecycle_events(_good_deployment().changes)
    bus, stubber, _ = _bus([_ok(10), _ok(1)])
    assert bus.put(events) == 11
    stubber.assert_no_pending_responses()


def test_the_bus_puts_again_only_the_refused_entries() -> None:
    events = lifecycle_events(_rolled_back_deployment().changes)
    refused = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
    first = {"FailedEntryCount": 1, "Entries": [{"EventId": "a"}, refused, *[{"EventId": "c"}] * (len(events) - 2)]}
    # Then the second call carries the refused entry alone
    bus, stubber, pauses = _bus([first, _ok(1)], expected=[events, events[1:2]])
    assert bus.put(events) == len(events)
    stubber.assert_no_pending_responses()
    assert pauses == [0.2]


def test_entries_refused_on_every_try_are_a_named_error() -> None:
    events = lifecycle_events(_rolled_back_deployment().changes)[:1]
    refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "oops"}]}
    bus, _, pauses = _bus([refused] * 4)
    with pytest.raises(EventPublishError, match=f"refused 1 events after 4 tries: {events[0].id}.*InternalFailure"):
        bus.put(events)
    assert pauses == [0.2, 0.4, 0.8]


def _typed(image: dict[str, Any] | None) -> dict[str, Any] | None:
    serializer = TypeSerializer()
    return None if image is None else {k: serializer.serialize(v) for k, v in image.items()}


def test_stream_records_are_read_as_the_changes_they_carry() -> None:
    # Given the good deployment's changes as Lambda hands them: DynamoDB's typed JSON
    changes = _good_deployment().changes
    records = [
        {
            "eventID": str(i),
            "eventName": change.event_name,
            "dynamodb": {
                "Keys": _typed(change.keys),
                **({"OldImage": _typed(change.old)} if change.old else {}),
                "NewImage": _typed(change.new),
            },
        }
        for i, change in enumerate(changes)
    ]
    # When they are read back, they mean the same events
    read = ledger_changes({"Records": records})
    assert [e.id for e in lifecycle_events(read)] == [e.id for e in lifecycle_events(changes)]
    assert isinstance(read[3].new, dict)
    assert read[3].new["attempt_executions"] == {EXECUTION}


def test_a_record_that_is_not_a_change_is_a_named_error() -> None:
    with pytest.raises(LedgerError, match="ledger stream record r-1 is not a DynamoDB change"):
        ledger_changes({"Records": [{"eventID": "r-1", "eventName": "UPSERT", "dynamodb": {}}]})


def test_a_restore_by_the_reconciler_is_a_rollback_and_the_stop_ends_the_deployment() -> None:
    # Given a deployment shifting production when its execution was stopped
    ledger = Ledger()
    _pending(ledger, "production")
    ledger.entry("production", status="DEPLOYED", version_before="4", version_after="5")
    ledger.entry("production", status="SHIFTING", weight=Decimal(50))
    # When the reconciler restores the alias and closes the record ABORTED
    ledger.entry(
        "production",
        status="ROLLED_BACK",
        weight=Decimal(0),
        reconciled=True,
        rollback={"reason": "execution ABORTED", "restored_version": "4"},
    )
    ledger.write(status="ABORTED", finished_at="2026-12-03T12:00:00+00:00")
    events = lifecycle_events(ledger.changes)
    # Then consumers learn of the restore and of the ending, as after a RollBack
    assert _kinds(events)[-2:] == [("RolledBack", "production"), ("DeploymentEnded", None)]
    rolled_back, ended = events[-2:]
    assert isinstance(rolled_back, RolledBack)
    assert rolled_back.reconciled
    assert isinstance(ended, DeploymentEnded)
    assert ended.outcome == "ABORTED"
    assert not ended.succeeded


def test_waiting_in_a_lock_queue_does_not_start_the_deployment_again() -> None:
    # Given a deployment queued behind another's lock, which then takes the lock
    ledger = Ledger()
    _pending(ledger, "production")
    ledger.write(status="QUEUED")
    ledger.write(status="IN_PROGRESS")
    # Then it started once
    assert _kinds(lifecycle_events(ledger.changes)) == [("DeploymentStarted", None)]


def test_a_rollback_failed_deployment_restored_later_ends_again_with_its_corrected_outcome() -> None:
    # Given a deployment that ended ROLLBACK_FAILED, then was re-closed ABORTED once the reconciler restored it
    ledger = Ledger()
    ledger.write()
    ledger.write(status="ROLLBACK_FAILED", failure={"reason": "NOT restored"})
    ledger.write(status="ABORTED", failure={"reason": "restored; nothing is left for a person to do"})

    # Then each outcome is one Deployment Ended, with ids of their own
    ended = [e for e in lifecycle_events(ledger.changes) if isinstance(e, DeploymentEnded)]
    assert [e.outcome.value for e in ended] == ["ROLLBACK_FAILED", "ABORTED"]
    assert len({e.id for e in ended}) == 2
