"""The verdict rules of progressive delivery: metrics, baseline comparison, inconclusive policy, hooks, probes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conveyor.domain.analysis import judge_metrics, metric_window
from conveyor.domain.contracts import CheckResult, HealthVerdict, Release, TrafficState
from conveyor.domain.limits import MAX_VERDICT_BYTES, json_bytes
from conveyor.domain.pipeline import EnvironmentSpec, HookSpec, HttpProbe, MetricsCheck, TrafficStep
from conveyor.domain.ports import Invocation, ProbeResponse, VersionStats
from conveyor.stages.health import decide, evaluate_health, hook_check, hook_payload, http_check
from conveyor.stages.traffic import next_traffic

from tests.fakes import DEFAULT_SPEC, FakeAlarms, FakeTargets
from tests.unit.conftest import build_step, started_ledger

SPEC = MetricsCheck(min_invocations=20, max_error_rate_percent=1, max_error_rate_ratio=2, max_p95_ms=500)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _stats(version: str, invocations: int, errors: int, p95: float | None = 50.0) -> VersionStats:
    return VersionStats(version=version, invocations=invocations, errors=errors, p95_ms=p95, p99_ms=p95)


def _by_name(checks: list[CheckResult]) -> dict[str, CheckResult]:
    return {c.name: c for c in checks}


# --- absolute limits -------------------------------------------------------------------------
def test_metrics_pass_when_the_new_version_is_within_every_limit() -> None:
    checks = judge_metrics(SPEC, _stats("3", 400, 1), _stats("2", 400, 1), 60)
    assert {c.status for c in checks} == {"pass"}


def test_error_rate_over_the_limit_fails_with_the_measurement_and_the_baseline() -> None:
    # Given 7.1% errors on the new version and 0.2% on the old one over 60 s
    checks = _by_name(judge_metrics(SPEC, _stats("3", 1000, 71), _stats("2", 1000, 2), 60))

    # Then the reason reads like the on-call needs it
    assert checks["metrics:error_rate"].status == "fail"
    assert checks["metrics:error_rate"].reason.startswith("errors 7.1% on v3 vs 0.2% on v2 over 60 s, limit 1%")
    assert checks["metrics:error_rate"].evidence["new"]["errors"] == 71


def test_p95_over_its_budget_fails() -> None:
    checks = _by_name(judge_metrics(SPEC, _stats("3", 100, 0, p95=900), None, 60))
    assert checks["metrics:p95"].status == "fail"
    assert checks["metrics:p95"].reason == "p95 900 ms on v3 over 60 s, limit 500 ms"


# --- not enough data ------------------------------------------------------------------------
def test_fewer_invocations_than_the_minimum_is_inconclusive_not_a_pass() -> None:
    checks = judge_metrics(SPEC, _stats("3", 19, 0), _stats("2", 400, 0), 60)
    assert [(c.name, c.status) for c in checks] == [("metrics:data", "inconclusive")]
    assert "19 invocations of v3 over 60 s (at least 20 needed)" in checks[0].reason


def test_no_data_at_all_is_inconclusive_even_with_every_error_limit_off() -> None:
    spec = MetricsCheck(max_error_rate_percent=None, max_error_rate_ratio=None)
    assert [c.status for c in judge_metrics(spec, _stats("3", 0, 0, p95=None), None, 60)] == ["inconclusive"]


# --- new vs old -----------------------------------------------------------------------------
def test_error_rate_ratio_against_the_old_version_fails_a_regression_within_the_absolute_limit() -> None:
    # Given a loose absolute limit: 4% vs 1% errors is within 5% but four times the old version's
    spec = MetricsCheck(min_invocations=20, max_error_rate_percent=5, max_error_rate_ratio=2)
    checks = _by_name(judge_metrics(spec, _stats("3", 1000, 40), _stats("2", 1000, 10), 60))
    assert checks["metrics:error_rate"].status == "pass"
    assert checks["metrics:error_rate_vs_baseline"].status == "fail"
    assert (
        "errors 4.0% on v3 vs 1.0% on v2 over 60 s (4.0x), limit 2x" in checks["metrics:error_rate_vs_baseline"].reason
    )


def test_a_tiny_difference_is_tolerated_even_when_the_ratio_is_large() -> None:
    spec = MetricsCheck(min_invocations=20, max_error_rate_percent=5, max_error_rate_ratio=2)
    checks = _by_name(judge_metrics(spec, _stats("3", 1000, 3), _stats("2", 1000, 0), 60))
    assert checks["metrics:error_rate_vs_baseline"].status == "pass"
    # and a baseline without errors gets no ratio (it would be infinite)
    assert "errors 0.3% on v3 vs 0.0% on v2 over 60 s, limit 2x" in checks["metrics:error_rate_vs_baseline"].reason


def test_latency_ratio_compares_p95_with_the_old_version() -> None:
    spec = MetricsCheck(min_invocations=20, max_error_rate_ratio=None, max_latency_ratio=1.5, latency_tolerance_ms=10)
    slow = _by_name(judge_metrics(spec, _stats("3", 100, 0, p95=200), _stats("2", 100, 0, p95=100), 60))
    assert slow["metrics:latency_vs_baseline"].status == "fail"
    close = _by_name(judge_metrics(spec, _stats("3", 100, 0, p95=140), _stats("2", 100, 0, p95=100), 60))
    assert close["metrics:latency_vs_baseline"].status == "pass"


def test_without_enough_baseline_traffic_the_comparison_is_skipped_and_says_so() -> None:
    checks = _by_name(judge_metrics(SPEC, _stats("3", 400, 0), _stats("2", 3, 0), 60))
    assert checks["metrics:baseline"].status == "pass"
    assert "v2 served 3 invocations" in checks["metrics:baseline"].reason
    assert checks["metrics:error_rate"].status == "pass"


def test_a_comparison_that_cannot_be_made_does_not_pass_a_version_nothing_else_judges() -> None:
    # Given a spec that judges only against the old version, and an old version that served too little
    ratio_only = MetricsCheck(min_invocations=20, max_error_rate_ratio=2)
    checks = _by_name(judge_metrics(ratio_only, _stats("3", 162, 54), _stats("2", 3, 0), 60))
    # Then the 33% errors are not passed: the check is inconclusive, says why, and on_inconclusive decides
    assert list(checks) == ["metrics:baseline"]
    assert checks["metrics:baseline"].status == "inconclusive"
    assert "no absolute limit to judge the new version by" in checks["metrics:baseline"].reason


# --- the window -------------------------------------------------------------------------------
def _traffic(wait: int, started: datetime | None) -> TrafficState:
    return TrafficState(
        steps=[TrafficStep(weight=10, wait_seconds=wait)],
        index=0,
        weight=10,
        wait_seconds=wait,
        complete=False,
        started_at=started,
    )


def test_window_is_the_wait_when_it_has_elapsed_less_in_real_time() -> None:
    start, seconds = metric_window(MetricsCheck(), _traffic(300, NOW - timedelta(seconds=3)), NOW)
    assert (seconds, start) == (300, NOW - timedelta(seconds=300))


def test_window_covers_the_whole_step_when_more_time_has_passed() -> None:
    assert metric_window(MetricsCheck(), _traffic(60, NOW - timedelta(seconds=130)), NOW)[1] == 130


def test_window_from_the_spec_wins() -> None:
    assert metric_window(MetricsCheck(window_seconds=45), _traffic(300, NOW), NOW)[1] == 45


# --- inconclusive policy ----------------------------------------------------------------------
def _unsure() -> list[CheckResult]:
    return [CheckResult(name="metrics:data", kind="metrics", status="inconclusive", reason="not enough data")]


def test_retry_policy_stays_inconclusive_while_retries_are_left() -> None:
    status, reason = decide(_unsure(), "retry", retries_left=1)
    assert status == "inconclusive"
    assert "judging again after another interval" in reason


def test_retry_policy_fails_once_retries_are_used_up() -> None:
    status, reason = decide(_unsure(), "retry", retries_left=0)
    assert status == "fail"
    assert reason.startswith("inconclusive after every retry")


def test_a_failure_is_never_retried() -> None:
    failed = CheckResult(name="x", kind="metrics", status="fail", reason="errors 9%")
    assert decide([*_unsure(), failed], "retry", retries_left=3) == ("fail", "errors 9%")


def _metrics_step(previous: HealthVerdict | None) -> Any:
    spec = {
        "schema_version": 1,
        "app": "hello",
        "environments": [
            {
                "name": "staging",
                "target": {"function_name": "hello-staging"},
                "strategy": {"type": "canary", "weight": 10, "bake_seconds": 60},
                "health": {
                    "metrics": {"min_invocations": 20},
                    "on_inconclusive": "retry",
                    "max_inconclusive_retries": 2,
                },
            }
        ],
    }
    step = build_step(spec, health=previous)
    traffic = next_traffic(step)
    return step.model_copy(update={"traffic": traffic.model_copy(update={"started_at": NOW})})


class NoTraffic:
    def version_stats(
        self, function_name: str, alias: str, versions: list[str], start: datetime, end: datetime
    ) -> dict[str, VersionStats]:
        return {v: VersionStats(version=v, invocations=0, errors=0) for v in versions}


def test_evaluate_health_counts_inconclusive_retries_in_the_state_then_fails() -> None:
    # Given a canary with no traffic and two retries allowed
    verdicts: list[HealthVerdict] = []
    step = _metrics_step(None)
    ledger = started_ledger(step)

    # When it is judged three times, each time carrying the previous verdict in the state
    for _ in range(3):
        verdict = evaluate_health(
            step, targets=FakeTargets(), alarms=FakeAlarms(), ledger=ledger, lambda_metrics=NoTraffic()
        )
        verdicts.append(verdict)
        step = step.model_copy(update={"health": verdict})

    # Then: inconclusive, inconclusive (waiting at least a minute each time), then fail
    assert [(v.status, v.inconclusive_count) for v in verdicts] == [
        ("inconclusive", 1),
        ("inconclusive", 2),
        ("fail", 0),
    ]
    assert verdicts[0].retry_after_seconds == 60
    assert verdicts[0].reason.endswith("(retry 1 of 2)")


# --- hooks -------------------------------------------------------------------------------------
RELEASE = Release(
    environment="staging",
    function_name="hello-staging",
    alias="live",
    version_before="1",
    version_after="2",
    code_sha256="c2hh",
    reused=False,
)
HOOK = HookSpec(function_name="hello-hook")


def _hook_answer(payload: Any, error: str | None = None, *, managed: bool = True) -> FakeTargets:
    targets = FakeTargets()
    targets.add("hello-hook", managed=managed)
    targets.responses["hello-hook:$LATEST"] = Invocation(
        payload=payload, function_error=error, executed_version="1", duration_ms=3.0
    )
    return targets


def _payload() -> Any:
    return hook_payload("pre_traffic", build_step().deployment, RELEASE, 0)


def test_hook_is_invoked_with_a_typed_payload_and_its_pass_is_a_pass() -> None:
    targets = _hook_answer({"status": "pass", "detail": "migrations applied"})
    check = hook_check(targets, HOOK, _payload())
    assert (check.status, check.reason) == ("pass", "pre_traffic hook hello-hook:$LATEST passed: migrations applied")
    sent = targets.invocations[0][2]
    assert {k: sent[k] for k in ("app", "environment", "function_name", "alias", "function_version", "weight")} == {
        "app": "hello",
        "environment": "staging",
        "function_name": "hello-staging",
        "alias": "live",
        "function_version": "2",
        "weight": 0,
    }


@pytest.mark.parametrize(
    ("answer", "error", "expected"),
    [
        ({"status": "fail", "detail": "integration test 3 failed"}, None, "failed: integration test 3 failed"),
        ({"errorType": "KeyError", "errorMessage": "'db'"}, "Unhandled", "raised KeyError: 'db'"),
        ({"ok": True}, None, "expected {'status'"),
    ],
)
def test_hook_failure_error_or_unknown_answer_fails(answer: Any, error: str | None, expected: str) -> None:
    check = hook_check(_hook_answer(answer, error), HOOK, _payload())
    assert check.status == "fail"
    assert expected in check.reason


def test_a_hook_that_lost_its_managed_tag_is_never_invoked() -> None:
    # Given a hook function whose managed tag was removed after the deployment was validated
    targets = _hook_answer({"status": "pass"}, managed=False)
    # Then the check fails without invoking it
    check = hook_check(targets, HOOK, _payload())
    assert (check.status, targets.invocations) == ("fail", [])
    assert "pre_traffic hook hello-hook:$LATEST was not invoked: " in check.reason
    assert "not tagged conveyor:managed=true" in check.reason


def test_a_hook_answering_at_length_never_grows_the_state() -> None:
    # Given a pre-traffic hook that answers 300 KB of detail, and a synthetic check that answers too
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0]["health"] = {"pre_traffic": {"function_name": "hello-hook"}, "alarms": ["errors"]}
    step = build_step(spec, traffic=TrafficState(steps=[], index=0, weight=0, wait_seconds=0, complete=False))
    ledger = started_ledger(step)
    targets = _hook_answer({"status": "fail", "detail": "\u0001" * 300_000})

    # When health is evaluated
    verdict = evaluate_health(step, targets=targets, alarms=FakeAlarms({"errors": "OK"}), ledger=ledger)

    # Then the verdict the state carries is bounded (an oversize state fails the execution past every Catch),
    # still says which check failed, and the ledger keeps the evidence
    assert verdict.status == "fail"
    assert json_bytes(verdict.model_dump(mode="json")) <= MAX_VERDICT_BYTES
    assert verdict.checks[-1].reason.startswith("pre_traffic hook hello-hook:$LATEST failed: ")
    recorded = ledger.get("d-unit").environments["staging"].verdict
    assert recorded["checks"][-1]["evidence"]["hook"] == "hello-hook:$LATEST"


# --- HTTP probe --------------------------------------------------------------------------------
class Prober:
    def __init__(self, response: ProbeResponse) -> None:
        self.response = response

    def fetch(self, url: str, method: str, timeout_seconds: float) -> ProbeResponse:
        return self.response


PROBE = HttpProbe(url="https://api.example.com/health", body_contains='"ok"', latency_budget_ms=300)


def test_http_probe_passes_on_status_body_and_latency() -> None:
    check = http_check(Prober(ProbeResponse(status=200, body='{"status": "ok"}', latency_ms=42)), PROBE)
    assert check.status == "pass"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (ProbeResponse(status=503, body='"ok"', latency_ms=10), "status 503, expected 200"),
        (ProbeResponse(status=200, body="degraded", latency_ms=10), "body lacks"),
        (ProbeResponse(status=200, body='"ok"', latency_ms=900), "took 900 ms, budget 300 ms"),
        (ProbeResponse(status=None, body="", latency_ms=5, error="connection refused"), "failed: connection refused"),
    ],
)
def test_http_probe_fails_naming_what_was_wrong(response: ProbeResponse, expected: str) -> None:
    check = http_check(Prober(response), PROBE)
    assert check.status == "fail"
    assert expected in check.reason


# --- blue/green plan -----------------------------------------------------------------------------
def test_blue_green_plan_verifies_at_zero_then_switches_to_100_in_one_step() -> None:
    env = EnvironmentSpec.model_validate(
        {
            "name": "production",
            "target": {"function_name": "f"},
            "strategy": {"type": "blue_green", "bake_seconds": 600},
            "health": {"synthetic": {"expect": {"status": "ok"}}},
        }
    )
    assert [(s.weight, s.wait_seconds) for s in env.traffic_steps()] == [(0, 0), (100, 600)]


def test_a_pre_traffic_hook_adds_a_weight_zero_step_to_a_canary() -> None:
    env = EnvironmentSpec.model_validate(
        {
            "name": "production",
            "target": {"function_name": "f"},
            "strategy": {"type": "canary", "weight": 10, "bake_seconds": 60},
            "health": {"pre_traffic": {"function_name": "hook"}, "alarms": ["errors"]},
        }
    )
    assert [s.weight for s in env.traffic_steps()] == [0, 10, 100]
