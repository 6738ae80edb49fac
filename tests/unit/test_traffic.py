import copy
from typing import Any

import pytest
from conveyor.domain.contracts import TrafficState
from conveyor.domain.errors import TrafficShiftError
from conveyor.stages.traffic import next_traffic, shift_traffic

from tests.fakes import DEFAULT_SPEC, FakeTargets
from tests.unit.conftest import build_step, started_ledger

CANARY = {"type": "canary", "weight": 10, "bake_seconds": 300, "final_bake_seconds": 60}


def _spec(strategy: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0]["strategy"] = strategy
    return spec


def test_first_step_of_a_canary() -> None:
    traffic = next_traffic(build_step(_spec(CANARY)))
    assert (traffic.index, traffic.weight, traffic.wait_seconds, traffic.complete) == (0, 10, 300, False)
    assert [s.weight for s in traffic.steps] == [10, 100]


def test_next_step_follows_the_current_one() -> None:
    first = next_traffic(build_step(_spec(CANARY)))
    second = next_traffic(build_step(_spec(CANARY), traffic=first))
    assert (second.index, second.weight, second.wait_seconds, second.complete) == (1, 100, 60, True)


def test_linear_walks_every_step() -> None:
    spec = _spec({"type": "linear", "step_percent": 25, "interval_seconds": 30})
    traffic = None
    weights = []
    while traffic is None or not traffic.complete:
        traffic = next_traffic(build_step(spec, traffic=traffic))
        weights.append(traffic.weight)
    assert weights == [25, 50, 75, 100]


def test_first_deployment_goes_straight_to_100() -> None:
    # Given no version served before (the alias did not exist)
    traffic = next_traffic(build_step(_spec(CANARY), version_before=None))
    # Then there is nothing to split against: one step, 100%, with the final bake
    assert (traffic.weight, traffic.wait_seconds, traffic.complete, len(traffic.steps)) == (100, 60, True, 1)


def test_reused_live_version_goes_straight_to_100() -> None:
    traffic = next_traffic(build_step(_spec(CANARY), version_before="3", version_after="3"))
    assert (traffic.weight, traffic.complete) == (100, True)


def test_step_past_the_plan_raises() -> None:
    done = TrafficState(steps=[], index=1, weight=100, wait_seconds=0, complete=True)
    with pytest.raises(TrafficShiftError, match="traffic plan has 2 steps; step 2 does not exist"):
        next_traffic(build_step(_spec(CANARY), traffic=done))


def test_shift_traffic_canary_keeps_the_old_version_primary() -> None:
    # Given a canary from version 1 to 2
    step = build_step(_spec(CANARY))
    targets = FakeTargets()
    targets.add("hello-staging", alias="live", version="1")
    ledger = started_ledger(step)
    # When the first step is applied
    shift_traffic(step, targets=targets, ledger=ledger)
    # Then the alias stays on 1 with 10% routed to 2, and the ledger says SHIFTING at 10%
    assert targets.functions["hello-staging"].aliases["live"] == ("1", {"2": 0.1})
    assert ledger.get("d-unit").environments["staging"].model_dump(mode="json") == {"status": "SHIFTING", "weight": 10}
    (event,) = ledger.stage_events("ShiftTraffic")
    assert event.detail == {"weight": 10, "step": 1, "of": 2}


def test_shift_traffic_to_100_promotes_and_clears_routing() -> None:
    first = next_traffic(build_step(_spec(CANARY)))
    step = build_step(_spec(CANARY), traffic=first)
    targets = FakeTargets()
    targets.add("hello-staging", alias="live")
    shift_traffic(step, targets=targets, ledger=started_ledger(step))
    assert targets.functions["hello-staging"].aliases["live"] == ("2", {})


def test_shift_traffic_failure_is_recorded_as_failed() -> None:
    step = build_step(_spec(CANARY))
    targets = FakeTargets()
    targets.add("hello-staging", alias="live")
    targets.fail_route = TrafficShiftError("moving alias failed: throttled")
    ledger = started_ledger(step)
    with pytest.raises(TrafficShiftError):
        shift_traffic(step, targets=targets, ledger=ledger)
    (event,) = ledger.stage_events("ShiftTraffic")
    assert event.status == "failed"
    assert event.detail == {"error": "TrafficShiftError", "reason": "moving alias failed: throttled"}


def test_shift_traffic_without_a_release_is_an_error() -> None:
    with pytest.raises(TrafficShiftError, match="needs the release"):
        shift_traffic(build_step(release=None), targets=FakeTargets(), ledger=started_ledger(build_step()))
