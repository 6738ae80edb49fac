"""Gates before anything moves, end to end on the local cloud: ``conveyor freeze`` stops a push (refused, or
waiting until ``unfreeze``), and an environment whose alarm already fires is refused before any alias moved.

The execution really runs CheckGates, loops through WaitForGate (scaled by the suite's time scale) and ends in
NotifyFailure; the tests wait on the ledger and the inbox, never on a clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import StageEvent

from conveyor_cli import operations
from conveyor_cli.approvals import caller_identity
from conveyor_cli.context import CliError
from conveyor_cli.freezes import active, freeze, unfreeze
from conveyor_cli.sample import ALARM, EXAMPLES, alias_versions

from .conftest import Stage
from .test_safety_e2e import PAUSE_FOR_A_PERSON, assert_no_lock_held, ledger_record, paused, release, until

pytestmark = pytest.mark.e2e

# Below every other module's versions (0.30.x and up), with allow_downgrade: what these make live never makes a
# later module's push a downgrade.


def push(stage: Stage, version: str) -> str:
    return str(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", version))["deployment_id"])


@pytest.fixture
def frozen_hello(stage: Stage) -> Iterator[str]:
    """The sample app frozen for one test (as the caller's AWS identity); lifted afterwards whatever happened."""
    freeze(stage.cloud, "hello", reason="incident 7: database failover", until=None)
    yield caller_identity(stage.cloud)
    with contextlib.suppress(CliError):  # the test may have lifted it itself
        unfreeze(stage.cloud, "hello")


@pytest.fixture
def firing_alarm(stage: Stage) -> Iterator[str]:
    """The sample's alarm in ALARM for one test; OK again afterwards (as `conveyor local sample` leaves it)."""
    cloudwatch = stage.cloud.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="errors above threshold")
    yield ALARM
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="no errors in the last period")


def gate_events(stage: Stage, deployment_id: str) -> list[StageEvent]:
    record = ledger_record(stage, deployment_id)
    return [e for e in (record.events if record else []) if e.stage == "CheckGates"]


def test_a_push_during_a_freeze_is_refused_with_a_notice_naming_it(
    stage: Stage, pipeline: Callable[..., None], frozen_hello: str
) -> None:
    # Given the app is frozen (on_freeze: refuse, the default) and listed as frozen
    pipeline(allow_downgrade=True)
    assert [f.scope for f in active(stage.cloud)] == ["hello"]
    before = alias_versions(stage.cloud, stage.targets.functions)

    # When a release is pushed
    deployed = stage.follow(push(stage, "0.29.0"))

    # Then it FAILED at staging's gate, nothing deployed anywhere, no lock held
    assert deployed.record.status is Outcome.FAILED
    assert deployed.execution.status == "FAILED"
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == "DeploymentFrozenError"
    assert deployed.after == before
    assert not any(e.stage == "Deploy" for e in deployed.record.events)
    assert [(e.environment, e.detail["decision"]) for e in gate_events(stage, deployed.record.deployment_id)] == [
        ("staging", "frozen")
    ]
    assert_no_lock_held(stage)
    # and the on-call is told who froze it and why
    (notice,) = deployed.notifications
    assert "What failed: CheckGates in staging" in notice["message"]
    assert f"app hello frozen by {frozen_hello}" in notice["message"]
    assert "incident 7: database failover" in notice["message"]


def test_a_freeze_stops_a_release_already_queued_for_the_environment_when_its_turn_comes(
    stage: Stage, pipeline: Callable[..., None]
) -> None:
    # Given a release holding staging (paused for a person) and a second one queued behind it
    pipeline(allow_downgrade=True, environments__0__health=PAUSE_FOR_A_PERSON)
    first = push(stage, "0.28.0")
    # (paused, not only holding the lock: a freeze before its CheckGates ran would stop it at staging's gate)
    paused(stage, first, "staging")
    second = push(stage, "0.28.1")
    until(
        lambda: (r := ledger_record(stage, second)) is not None and r.status is Outcome.QUEUED,
        "the second release is QUEUED for staging",
    )

    # When the app is frozen (an emergency stop) and the first release goes on and frees staging
    freeze(stage.cloud, "hello", reason="incident 8: stop everything", until=None)
    try:
        release(stage, first, "staging")
        second_ended = stage.follow(second)
        first_ended = stage.follow(first)
    finally:
        unfreeze(stage.cloud, "hello")

    # Then the queued release took staging's lock, was refused at the gate before anything moved, and freed the lock
    assert second_ended.record.status is Outcome.FAILED
    assert second_ended.record.failure is not None
    assert second_ended.record.failure["error"] == "DeploymentFrozenError"
    assert not any(e.stage == "Deploy" for e in second_ended.record.events)
    assert [(e.environment, e.detail["decision"]) for e in gate_events(stage, second)] == [("staging", "frozen")]
    assert "incident 8: stop everything" in second_ended.notifications[-1]["message"]
    # (the first was already past staging's gate: it was let through there; production's gate refused it)
    assert [(e.environment, e.detail["decision"]) for e in gate_events(stage, first)] == [
        ("staging", "open"),
        ("production", "frozen"),
    ]
    assert first_ended.record.status is Outcome.FAILED
    assert_no_lock_held(stage)


def test_a_push_during_a_freeze_waits_and_goes_on_after_unfreeze(
    stage: Stage, pipeline: Callable[..., None], frozen_hello: str
) -> None:
    # Given the app is frozen and its pipeline waits out freezes
    pipeline(on_freeze="wait", allow_downgrade=True)
    before = alias_versions(stage.cloud, stage.targets.functions)
    pushed = push(stage, "0.29.1")

    # When the deployment has asked the gate twice (it loops through WaitForGate)
    waits = until(
        lambda: [e for e in gate_events(stage, pushed) if e.detail["decision"] == "wait"][1:],
        "the deployment waits at staging's gate",
    )
    assert "incident 7: database failover" in waits[0].detail["reason"]
    # Then nothing moved while frozen
    assert alias_versions(stage.cloud, stage.targets.functions) == before

    # When the freeze is lifted
    unfreeze(stage.cloud, "hello")

    # Then the deployment goes on and succeeds everywhere
    deployed = stage.follow(pushed)
    assert deployed.record.status is Outcome.SUCCEEDED
    assert deployed.after["staging"]["version"] != before["staging"]["version"]
    assert deployed.after["production"]["version"] != before["production"]["version"]
    decisions = [(e.environment, e.detail["decision"]) for e in gate_events(stage, pushed)]
    assert decisions[-2:] == [("staging", "open"), ("production", "open")]
    assert_no_lock_held(stage)


def test_a_push_while_the_environments_alarm_fires_is_refused_before_any_alias_moved(
    stage: Stage, pipeline: Callable[..., None], firing_alarm: str
) -> None:
    # Given staging's health names an alarm that is in ALARM before the deployment
    pipeline(
        environments__0__health={
            "synthetic": {"payload": {"probe": "health"}, "expect": {"status": "ok"}},
            "alarms": [firing_alarm],
        },
        allow_downgrade=True,
    )
    before = alias_versions(stage.cloud, stage.targets.functions)

    # When a release is pushed
    deployed = stage.follow(push(stage, "0.29.2"))

    # Then it FAILED at staging's gate with the alarm named, before any version or alias changed, its lock released
    assert deployed.record.status is Outcome.FAILED
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == "AlarmFiringError"
    assert f"alarm '{firing_alarm}' is in ALARM" in deployed.record.failure["reason"]
    assert deployed.after == before
    assert not any(e.stage == "Deploy" for e in deployed.record.events)
    assert_no_lock_held(stage)
    (notice,) = deployed.notifications
    assert f"alarm '{firing_alarm}' is in ALARM" in notice["message"]
    assert "nothing was touched in staging" in notice["message"]
