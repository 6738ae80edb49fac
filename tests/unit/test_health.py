import copy
from typing import Any

import pytest
from conveyor.domain.contracts import CheckResult, Release, TrafficState
from conveyor.domain.errors import TargetInvokeError, TrafficShiftError
from conveyor.domain.pipeline import SyntheticCheck
from conveyor.domain.ports import Invocation
from conveyor.stages.health import alarm_checks, decide, evaluate_health, mismatches, synthetic_check

from tests.fakes import DEFAULT_SPEC, FakeAlarms, FakeLedger, FakeTargets
from tests.unit.conftest import build_step, started_ledger

RELEASE = Release(
    environment="staging",
    function_name="hello-staging",
    alias="live",
    version_before="1",
    version_after="2",
    code_sha256="c2hh",
    reused=False,
)
CHECK = SyntheticCheck(payload={"ping": True}, expect={"status": "ok", "build": {"ok": True}})


def _check(status: str, reason: str = "r") -> CheckResult:
    return CheckResult(name=f"c-{status}", kind="alarm", status=status, reason=reason)


# --- mismatches ----------------------------------------------------------------------------
def test_mismatches_accepts_a_superset() -> None:
    assert mismatches({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}) == []


def test_mismatches_names_missing_and_wrong_fields_by_path() -> None:
    found = mismatches({"a": 1, "b": {"c": 2}, "z": True}, {"a": 2, "b": {"c": "2"}})
    assert found == ["a is 2, expected 1", 'b.c is "2", expected 2', "z is missing"]


def test_mismatches_when_response_is_not_an_object() -> None:
    assert mismatches({"a": 1}, None) == ["response is null, expected an object"]
    assert mismatches({"a": {"b": 1}}, {"a": [1]}) == ["a is [1], expected an object"]


def test_mismatches_compares_scalars_and_lists_by_equality() -> None:
    assert mismatches("ok", "ok") == []
    assert mismatches([1, 2], [1, 2, 3]) == ["response is [1, 2, 3], expected [1, 2]"]


# --- decide ---------------------------------------------------------------------------------
def test_decide_passes_when_all_checks_pass() -> None:
    assert decide([_check("pass"), _check("pass")], "fail") == ("pass", "all checks passed")


def test_decide_fails_when_any_check_fails_naming_every_failure() -> None:
    status, reason = decide([_check("pass"), _check("fail", "A broke"), _check("fail", "B broke")], "pass")
    assert (status, reason) == ("fail", "A broke; B broke")


def test_decide_failure_beats_inconclusive_even_when_policy_passes() -> None:
    assert decide([_check("inconclusive"), _check("fail", "boom")], "pass") == ("fail", "boom")


def test_decide_inconclusive_fails_by_default_policy() -> None:
    status, reason = decide([_check("pass"), _check("inconclusive", "no data")], "fail")
    assert status == "fail"
    assert reason == "inconclusive, failed by policy on_inconclusive=fail: no data"


def test_decide_inconclusive_passes_when_policy_says_pass() -> None:
    status, reason = decide([_check("inconclusive", "no data")], "pass")
    assert status == "pass"
    assert reason == "inconclusive, passed by policy on_inconclusive=pass: no data"


def test_decide_without_checks_fails() -> None:
    assert decide([], "pass") == ("fail", "no health check ran")


# --- alarm checks -----------------------------------------------------------------------------
def test_alarm_checks_judge_each_alarm_state() -> None:
    # Given one alarm OK, one in ALARM, one without data and one that does not exist
    alarms = FakeAlarms({"ok": "OK", "bad": "ALARM", "quiet": "INSUFFICIENT_DATA"})
    # When they are checked
    results = alarm_checks(alarms, ["ok", "bad", "quiet", "gone"])
    # Then each gets its own verdict with the state as evidence, in the spec's order
    assert [(r.name, r.status) for r in results] == [
        ("alarm:ok", "pass"),
        ("alarm:bad", "fail"),
        ("alarm:quiet", "inconclusive"),
        ("alarm:gone", "fail"),
    ]
    assert results[1].reason == "alarm 'bad' is in ALARM"
    assert results[2].reason == "alarm 'quiet' has INSUFFICIENT_DATA"
    assert results[3].reason == "alarm 'gone' does not exist"
    assert results[3].evidence == {"state": None}
    assert alarms.asked == [["ok", "bad", "quiet", "gone"]]


def test_missing_alarm_fails_the_verdict() -> None:
    assert decide(alarm_checks(FakeAlarms(), ["typo-in-alarm-name"]), "pass")[0] == "fail"


# --- synthetic check --------------------------------------------------------------------------
def _targets(response: Invocation | Exception) -> FakeTargets:
    targets = FakeTargets()
    targets.responses["hello-staging:2"] = response
    return targets


def test_synthetic_check_passes_on_the_expected_answer() -> None:
    targets = _targets(Invocation({"status": "ok", "build": {"ok": True, "n": 7}}, None, "2", 12.5))
    result = synthetic_check(targets, RELEASE, CHECK)
    assert result.status == "pass"
    assert result.reason == "hello-staging:2 answered as expected"
    assert result.evidence["function"] == "hello-staging:2"
    assert result.evidence["duration_ms"] == 12.5
    # The new version is invoked by its number, not through the alias
    assert targets.invocations == [("hello-staging", "2", {"ping": True})]


def test_synthetic_check_fails_on_a_wrong_answer_naming_the_field() -> None:
    targets = _targets(Invocation({"status": "degraded", "build": {}}, None, "2", 3.0))
    result = synthetic_check(targets, RELEASE, CHECK)
    assert result.status == "fail"
    assert result.reason.startswith(
        'hello-staging:2 answered wrongly: status is "degraded", expected "ok"; build.ok is missing'
    )


def test_synthetic_check_fails_when_the_function_raises() -> None:
    error = {"errorType": "KeyError", "errorMessage": "'name'", "stackTrace": []}
    result = synthetic_check(_targets(Invocation(error, "Unhandled", "2", 3.0)), RELEASE, CHECK)
    assert result.status == "fail"
    assert result.reason == "hello-staging:2 raised KeyError: 'name'"
    assert "KeyError" in result.evidence["response"]


def test_synthetic_check_fails_when_the_invoke_call_fails() -> None:
    error = TargetInvokeError("invoking hello-staging:2 failed: ResourceNotFoundException: no version 2")
    result = synthetic_check(_targets(error), RELEASE, CHECK)
    assert result.status == "fail"
    assert result.reason.startswith("invoking hello-staging:2 failed: ")
    assert "ResourceNotFoundException" in result.reason


def test_synthetic_evidence_is_bounded() -> None:
    result = synthetic_check(_targets(Invocation({"status": "ok", "blob": "x" * 5000}, None, "2", 1)), RELEASE, CHECK)
    assert len(result.evidence["response"]) <= 120


# --- evaluate_health --------------------------------------------------------------------------
def _health_spec(**health: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0]["health"] = health
    return spec


def test_evaluate_health_records_the_verdict_with_evidence() -> None:
    # Given a release at 10% with a synthetic check and an alarm in ALARM
    spec = _health_spec(synthetic={"expect": {"status": "ok"}}, alarms=["errors"])
    traffic = TrafficState(steps=[], index=0, weight=10, wait_seconds=0, complete=False)
    step = build_step(spec, traffic=traffic)
    ledger = started_ledger(step)
    targets = _targets(Invocation({"status": "ok"}, None, "2", 1.0))
    # When health is evaluated
    verdict = evaluate_health(step, targets=targets, alarms=FakeAlarms({"errors": "ALARM"}), ledger=ledger)
    # Then it fails naming the alarm, at the weight judged, and the ledger holds the evidence
    assert (verdict.status, verdict.weight) == ("fail", 10)
    assert verdict.reason == "alarm 'errors' is in ALARM"
    assert [c.status for c in verdict.checks] == ["pass", "fail"]
    (event,) = ledger.stage_events("EvaluateHealth")
    assert (event.status, event.failed, event.environment) == ("failed", True, "staging")
    assert event.detail["checks"][1]["name"] == "alarm:errors"
    assert ledger.get("d-unit").environments["staging"].verdict["status"] == "fail"


def test_evaluate_health_without_a_release_is_an_error() -> None:
    with pytest.raises(TrafficShiftError, match="needs the release"):
        evaluate_health(build_step(release=None), targets=FakeTargets(), alarms=FakeAlarms(), ledger=FakeLedger())
