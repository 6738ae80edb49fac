"""CheckGates (conveyor.stages.gate): freezes and the environment's alarms, before its lock, with fakes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conveyor.domain.contracts import EnvironmentStep, FailureRequest, GateResult, LockGrant
from conveyor.domain.freeze import OperatorFreeze
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.pushed_object import PushedObject
from conveyor.domain.time_scale import TimeScale
from conveyor.stages.gate import GATE_POLL_SECONDS, check_gates
from conveyor.stages.report import notify_failure

from tests.fakes import DEFAULT_SPEC, FakeAlarms, FakeFreezes, FakeLedger, FakeNotifier
from tests.unit.conftest import build_step, started_ledger
from tests.unit.test_approval import EVENT

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # a Saturday
ALICE = "arn:aws:iam::123456789012:user/alice"
WEEKEND = {"reason": "no weekend releases", "recurring": {"start": "sat 00:00", "end": "mon 00:00"}}


def _step(alarms: list[str] | None = None, **policy: Any) -> EnvironmentStep:
    spec = copy.deepcopy(DEFAULT_SPEC) | policy
    if alarms is not None:
        spec["environments"][0]["health"]["alarms"] = alarms
    pipeline = PipelineSpec.model_validate(spec)
    step = build_step(spec, release=None)
    return step.model_copy(update={"deployment": step.deployment.model_copy(update={"policy": pipeline.policy})})


def _asked(step: EnvironmentStep, earlier: GateResult) -> EnvironmentStep:
    """``step`` as CheckGates gets it after WaitForGate: the lock held, with the gate's last answer in it."""
    lock = step.lock or LockGrant(
        status="acquired", app="hello", environment=step.environment.name, target="t", holder="h", token=1
    )
    return step.model_copy(update={"lock": lock.model_copy(update={"gate": earlier})})


def _gate(
    step: EnvironmentStep,
    *,
    freezes: FakeFreezes | None = None,
    alarms: dict[str, str] | None = None,
    now: datetime = NOW,
    ledger: FakeLedger | None = None,
    scale: TimeScale | None = None,
) -> GateResult:
    return check_gates(
        step,
        freezes=freezes or FakeFreezes(),
        alarms=FakeAlarms(alarms or {}),
        ledger=ledger or started_ledger(step),
        now=now,
        scale=scale or TimeScale(),
    )


def test_an_environment_that_is_not_frozen_and_healthy_is_open_and_the_decision_recorded() -> None:
    step = _step(alarms=["hello-errors"])
    ledger = started_ledger(step)
    result = _gate(step, alarms={"hello-errors": "OK"}, ledger=ledger)
    assert (result.decision, result.reason) == ("open", "not frozen; alarms OK")
    (event,) = ledger.stage_events("CheckGates")
    assert (event.environment, event.status, event.detail["decision"]) == ("staging", "open", "open")
    assert event.detail["alarms"] == {"hello-errors": "OK"}


def test_a_freeze_window_refuses_by_default_naming_the_window() -> None:
    step = _step(freeze_windows=[WEEKEND])
    ledger = started_ledger(step)
    result = _gate(step, ledger=ledger)
    assert result.decision == "frozen"
    assert "staging is frozen until 2026-12-07T00:00:00+00:00" in result.reason
    assert "sat 00:00 to mon 00:00 UTC (no weekend releases)" in result.reason
    assert "on_freeze: refuse" in result.reason
    (event,) = ledger.stage_events("CheckGates")
    assert event.failed
    assert event.detail["decision"] == "frozen"


def test_an_operator_freeze_of_every_app_names_who_froze() -> None:
    freezes = FakeFreezes(OperatorFreeze(scope="*", reason="incident 42", by=ALICE, at=NOW - timedelta(hours=1)))
    result = _gate(_step(), freezes=freezes)
    assert result.decision == "frozen"
    assert f"every app frozen by {ALICE}" in result.reason
    assert "incident 42" in result.reason
    assert "until `conveyor unfreeze`" in result.reason


def test_another_apps_freeze_and_a_lifted_one_do_not_stop_it() -> None:
    freezes = FakeFreezes(
        OperatorFreeze(scope="other", reason="theirs", by=ALICE, at=NOW),
        OperatorFreeze(scope="hello", reason="over", by=ALICE, at=NOW - timedelta(hours=2), until=NOW),
    )
    assert _gate(_step(), freezes=freezes).decision == "open"


def test_waiting_asks_again_soon() -> None:
    # Given an operator freeze without an end, and on_freeze: wait
    step = _step(on_freeze="wait")
    freezes = FakeFreezes(OperatorFreeze(scope="hello", reason="db migration", by=ALICE, at=NOW))

    # When the gate finds staging frozen
    result = _gate(step, freezes=freezes)

    # Then it waits, asking again within a minute (the earlier environments' locks: tests/unit/test_locks.py)
    assert (result.decision, result.wait_seconds, result.waiting_since) == ("wait", GATE_POLL_SECONDS, NOW)
    assert "db migration" in result.reason


def test_a_wait_never_outlasts_the_window_nor_the_budget_and_then_refuses() -> None:
    # Given a one-off window ending in 20 s and on_freeze: wait for at most 10 minutes
    soon = {"reason": "deploy freeze", "once": {"start": "2026-12-05T11:00:00Z", "end": "2026-12-05T12:00:20Z"}}
    step = _step(on_freeze="wait", freeze_windows=[soon], freeze_wait_seconds=600)
    # Then it waits just until the window ends
    first = _gate(step)
    assert (first.decision, first.wait_seconds) == ("wait", 20)
    # And when asked again after the window: open, counting the checks
    after = _gate(_asked(step, first), now=NOW + timedelta(seconds=20))
    assert (after.decision, after.checks) == ("open", 2)
    # Given an operator freeze that never lifts: once the budget is spent, refused
    stuck = FakeFreezes(OperatorFreeze(scope="hello", reason="stop", by=ALICE, at=NOW))
    waiting = _gate(_step(on_freeze="wait", freeze_wait_seconds=600), freezes=stuck)
    late = _gate(
        _asked(_step(on_freeze="wait", freeze_wait_seconds=600), waiting),
        freezes=stuck,
        now=NOW + timedelta(seconds=600),
    )
    assert late.decision == "frozen"
    assert "still frozen after waiting 10 min (freeze_wait_seconds)" in late.reason


def test_a_freeze_known_to_last_longer_than_the_budget_is_refused_at_once() -> None:
    step = _step(on_freeze="wait", freeze_windows=[WEEKEND], freeze_wait_seconds=3600)
    result = _gate(step)
    assert result.decision == "frozen"
    assert "longer than freeze_wait_seconds (1 h) allows to wait" in result.reason


def test_under_a_time_scale_the_wait_is_given_in_spec_time() -> None:
    # Given the local cloud at time scale 0.01 and a window ending in 0.3 s of wall time
    soon = {"reason": "r", "once": {"start": "2026-12-05T11:00:00Z", "end": "2026-12-05T12:00:00.300Z"}}
    step = _step(on_freeze="wait", freeze_windows=[soon])
    # Then the Wait state (which the local cloud scales) is asked for 30 s: 0.3 s of wall time
    assert _gate(step, scale=TimeScale(factor=0.01)).wait_seconds == 30


def test_under_a_time_scale_a_freeze_is_judged_against_the_budget_in_wall_time_as_on_aws() -> None:
    # Given the local cloud at time scale 0.01 and a window ending in 60 s of wall time, with an hour to wait
    soon = {"reason": "r", "once": {"start": "2026-12-05T11:00:00Z", "end": "2026-12-05T12:01:00Z"}}
    step = _step(on_freeze="wait", freeze_windows=[soon], freeze_wait_seconds=3600)
    # Then it waits, as AWS would (a scaled budget, 36 s, had refused it as longer than the wait allowed)
    result = _gate(step, scale=TimeScale(factor=0.01))
    assert result.decision == "wait"
    assert "up to 1 h" in result.reason


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"hello-errors": "ALARM"}, "alarm 'hello-errors' is in ALARM"),
        ({}, "alarm 'hello-errors' does not exist"),
    ],
)
def test_an_alarm_firing_or_missing_before_the_deployment_refuses_it(states: dict[str, str], expected: str) -> None:
    result = _gate(_step(alarms=["hello-errors"]), alarms=states)
    assert result.decision == "alarm"
    assert expected in result.reason
    assert "nothing was touched in staging" in result.reason


def test_an_alarm_without_data_passes_the_pre_start_gate_and_says_so() -> None:
    result = _gate(_step(alarms=["hello-errors"]), alarms={"hello-errors": "INSUFFICIENT_DATA"})
    assert result.decision == "open"
    assert "hello-errors without data: passes" in result.reason


def test_a_freeze_is_checked_before_the_alarms() -> None:
    result = _gate(_step(alarms=["hello-errors"], freeze_windows=[WEEKEND]), alarms={"hello-errors": "ALARM"})
    assert result.decision == "frozen"


def test_a_refusal_ends_failed_with_the_gate_named_in_the_notice() -> None:
    # Given the gate refused a deployment (the ASL's Fail state sends its reason as the cause)
    pushed = PushedObject.from_event(EVENT)
    step = _step(freeze_windows=[WEEKEND])
    step = step.model_copy(
        update={"deployment": step.deployment.model_copy(update={"deployment_id": pushed.deployment_id})}
    )
    ledger = FakeLedger()
    ledger.start(pushed.ledger_record(step.deployment.execution_arn, "hello", "1.0.0"))
    refused = _gate(step, ledger=ledger)
    notifier = FakeNotifier()

    # When NotifyFailure runs
    report = notify_failure(
        FailureRequest.model_validate(
            {
                "execution_input": EVENT,
                "execution_arn": step.deployment.execution_arn,
                "failure": {"Error": "DeploymentFrozenError", "Cause": refused.reason},
            }
        ),
        ledger=ledger,
        notifier=notifier,
    )

    # Then FAILED, and the notice names the stage, the window and that nothing was touched
    assert report.outcome is Outcome.FAILED
    ((_, message, attributes),) = notifier.published
    assert "What failed: CheckGates in staging" in message
    assert "no weekend releases" in message
    assert "nothing was touched in staging" in message
    assert attributes["outcome"] == "FAILED"
