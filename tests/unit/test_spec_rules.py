"""The spec's rules as a user reads them: a plan no check can judge is refused, only written metric rules
judge (defaults only when none is written, and announced), the spec's defaults are written down (JSON Schema),
and under a time scale the metric window and the approval window are scaled like the waits and shown both ways."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conveyor.domain.analysis import judge_metrics, metric_window
from conveyor.domain.contracts import ApprovalRequest, TrafficState
from conveyor.domain.errors import PipelineInvalidError, PipelineNotReadyError, TargetReadError
from conveyor.domain.ownership import resolve_targets
from conveyor.domain.pipeline import (
    HealthSpec,
    MetricsCheck,
    PipelineSpec,
    TrafficStep,
    pipeline_schema,
)
from conveyor.domain.ports import Invocation, VersionStats
from conveyor.domain.readiness import missing_resources, require_resources
from conveyor.domain.spec_defaults import effective_values, judging_defaults
from conveyor.domain.target_identity import Home
from conveyor.domain.time_scale import TIME_SCALE_ENV, TimeScale
from conveyor.settings import MANAGED_TAG_KEY, Settings
from conveyor.stages.approval import request_approval
from conveyor.stages.health import run_checks

from conveyor_cli import main as cli
from tests.fakes import DEFAULT_SPEC, FakeAlarms, FakeNotifier, FakeTargets
from tests.unit.conftest import build_step, started_ledger

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "pipeline.schema.json"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LOCAL = TimeScale(factor=0.01)


def _spec(**environment: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0].update(environment)
    return spec


def _refusal(spec: dict[str, Any]) -> str:
    with pytest.raises(PipelineInvalidError) as refused:
        PipelineSpec.from_yaml(yaml.safe_dump(spec), "pipelines/hello.yaml")
    return str(refused.value)


# --- a plan no check can judge -----------------------------------------------------------------
@pytest.mark.parametrize("only", [{"metrics": {}}, {"http": {"url": "https://hello.example.com/health"}}])
def test_a_blue_green_verification_judged_only_by_traffic_checks_is_refused(only: dict[str, Any]) -> None:
    # Given a blue_green environment whose only check needs traffic (metrics or an HTTP probe)
    spec = _spec(strategy={"type": "blue_green", "bake_seconds": 60}, health=only)

    # When it is validated, Then it is refused naming the field, the step and what would run there
    reason = _refusal(spec)
    assert "pipelines/hello.yaml: environments.0: " in reason
    assert "traffic step 1 of 2 (0% on the new version, blue_green)" in reason
    assert '"no health check ran"' in reason
    assert "synthetic, alarms, pre_traffic" in reason


def test_a_canary_judged_only_by_a_post_traffic_hook_is_refused_at_the_canary_step() -> None:
    spec = _spec(
        strategy={"type": "canary", "weight": 10, "bake_seconds": 60},
        health={"post_traffic": {"function_name": "smoke"}},
    )
    assert "traffic step 1 of 2 (10% on the new version, canary)" in _refusal(spec)


def test_a_blue_green_with_a_check_at_every_step_is_accepted() -> None:
    spec = _spec(
        strategy={"type": "blue_green", "bake_seconds": 60},
        health={"metrics": {}, "pre_traffic": {"function_name": "migrate"}},
    )
    environment = PipelineSpec.model_validate(spec).environments[0]
    assert [environment.health.checks_at(s.weight, last=s.weight == 100) for s in environment.traffic_steps()] == [
        ["pre_traffic"],
        ["metrics"],
    ]


def test_evaluate_health_runs_exactly_the_checks_the_rule_says() -> None:
    # Given synthetic, alarms, metrics and HTTP: at 0% only the first two may run (what the spec's rule says)
    health = HealthSpec.model_validate(
        {"synthetic": {"expect": {"status": "ok"}}, "alarms": ["errors"], "http": {"url": "https://x.example/h"}}
    )
    targets = FakeTargets()
    targets.responses["hello-staging:2"] = Invocation(
        payload={"status": "ok"}, function_error=None, executed_version="2", duration_ms=1.0
    )
    release = build_step().release
    assert release is not None
    traffic = TrafficState(
        steps=[TrafficStep(weight=0, wait_seconds=0)], index=0, weight=0, wait_seconds=0, complete=False
    )

    checks = run_checks(health, release, targets=targets, alarms=FakeAlarms({"errors": "OK"}), traffic=traffic)

    assert {check.kind for check in checks} == {"synthetic", "alarm"}
    assert health.checks_at(0, last=False) == ["synthetic", "alarms"]


# --- only written metric rules judge ---------------------------------------------------------------
def test_a_spec_naming_only_the_relative_rule_carries_no_absolute_error_limit() -> None:
    # Given the spec: only the relative error rule with its tolerance
    rules = MetricsCheck.model_validate({"max_error_rate_ratio": 2, "error_rate_tolerance_percent": 1})
    assert rules.max_error_rate_percent is None
    assert rules.rules == {"max_error_rate_ratio": 2}

    # When a canary at 3.3% errors is judged against production at 2.8%
    new = VersionStats(version="5", invocations=1000, errors=33)
    old = VersionStats(version="4", invocations=1000, errors=28)
    checks = judge_metrics(rules, new, old, 300)

    # Then it passes: no "limit 1%" the user never wrote
    assert [(c.name, c.status) for c in checks] == [("metrics:error_rate_vs_baseline", "pass")]
    assert "limit 1%" not in " ".join(c.reason for c in checks)


def test_a_metrics_check_that_writes_no_rule_gets_the_default_rules_marked_as_defaults() -> None:
    check = MetricsCheck.model_validate({"min_invocations": 50})
    assert check.rules == {"max_error_rate_percent": 1.0, "max_error_rate_ratio": 2.0}
    assert check.defaulted_rules == {"max_error_rate_percent", "max_error_rate_ratio"}


def test_null_turns_a_limit_off_and_a_written_rule_turns_the_defaults_off() -> None:
    check = MetricsCheck.model_validate({"max_error_rate_percent": None, "max_p99_ms": 800})
    assert check.rules == {"max_p99_ms": 800}
    assert check.defaulted_rules == frozenset()


def test_the_effective_rules_travel_in_the_state_unchanged() -> None:
    # The execution carries the spec as JSON: the stages judge exactly what apply announced.
    defaulted = PipelineSpec.model_validate(_spec(health={"metrics": {}}))
    again = PipelineSpec.model_validate(json.loads(json.dumps(defaulted.model_dump(mode="json"))))
    assert again.environments[0].health.metrics.rules == {"max_error_rate_percent": 1.0, "max_error_rate_ratio": 2.0}  # type: ignore[union-attr]
    relative = PipelineSpec.model_validate(_spec(health={"metrics": {"max_error_rate_ratio": 3}}))
    carried = PipelineSpec.model_validate(relative.model_dump(mode="json"))
    assert carried.environments[0].health.metrics.rules == {"max_error_rate_ratio": 3}  # type: ignore[union-attr]


def test_every_default_that_judges_is_announced_and_written_values_are_not() -> None:
    spec = PipelineSpec.model_validate(_spec(health={"metrics": {"min_invocations": 10}}))

    announced = {value.path: value.value for value in judging_defaults(spec)}

    assert announced["environments[0].health.metrics.max_error_rate_percent"] == 1.0
    assert announced["environments[0].health.metrics.max_error_rate_ratio"] == 2.0
    assert announced["environments[0].health.on_inconclusive"] == "fail"
    assert "environments[0].health.metrics.min_invocations" not in announced
    shown = {value.path: value for value in effective_values(spec)}
    assert shown["environments[0].health.metrics.max_p95_ms"].describe().endswith("= null (off)  (default)")
    assert shown["app"].describe() == "app = hello"


# --- the defaults written down -----------------------------------------------------------------------
def test_the_committed_json_schema_is_the_one_the_models_generate() -> None:
    # `conveyor pipeline schema > docs/pipeline.schema.json` regenerates it
    assert json.loads(SCHEMA_FILE.read_text()) == pipeline_schema()


def test_the_schema_carries_each_default_for_editor_completion(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pipeline", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    metrics = schema["$defs"]["MetricsCheck"]["properties"]
    assert metrics["min_invocations"]["default"] == 20
    assert "null turns it off" in metrics["max_error_rate_percent"]["description"]
    assert schema["$defs"]["HealthSpec"]["properties"]["on_inconclusive"]["default"] == "fail"


@pytest.mark.parametrize("example", sorted((ROOT / "examples" / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_an_editor_using_the_schema_accepts_the_examples_and_flags_a_typo(example: Path) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    document = yaml.safe_load(example.read_text())
    assert list(validator.iter_errors(document)) == []
    document["environments"][0]["health"]["on_inconclusiv"] = "pass"
    assert [error.message for error in validator.iter_errors(document)] != []


# --- everything the spec names exists and is managed ---------------------------------------------------
def test_missing_and_unmanaged_resources_are_named_by_field_path() -> None:
    spec = PipelineSpec.model_validate(
        _spec(
            health={
                "synthetic": {"expect": {"status": "ok"}},
                "alarms": ["hello-errors", "gone"],
                "pre_traffic": {"function_name": "migrate"},
            }
        )
    )
    targets = FakeTargets()
    targets.add("migrate", managed=False)
    resolved = resolve_targets(spec, Home(account="123456789012", region="us-east-1"), source="spec")
    problems = missing_resources(
        spec, resolved, targets=targets, alarms=FakeAlarms({"hello-errors": "OK"}), tag_key=MANAGED_TAG_KEY
    )

    assert problems == [
        "environments[0] (staging).target.function_name: target function 'hello-staging' does not exist",
        "environments[0] (staging).health.pre_traffic.function_name: hook 'migrate' is not tagged "
        "conveyor:managed=true (Conveyor may use only managed functions)",
        "environments[0] (staging).health.alarms[1]: alarm 'gone' does not exist",
    ]
    with pytest.raises(PipelineNotReadyError, match=r"^spec: 3 resource\(s\) the spec names cannot be used"):
        require_resources(
            spec,
            resolved,
            targets=targets,
            alarms=FakeAlarms({"hello-errors": "OK"}),
            tag_key=MANAGED_TAG_KEY,
            source="spec",
        )


def test_a_function_that_cannot_be_read_is_not_called_unmanaged(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Lambda throttles reading the target past the SDK's retries
    spec = PipelineSpec.model_validate(_spec())
    targets = FakeTargets()
    targets.add("hello-staging")

    def throttled(function_name: str, tag_key: str) -> str:
        raise TargetReadError(f"reading target function {function_name!r} failed: Rate exceeded")

    monkeypatch.setattr(targets, "ensure_managed", throttled)
    resolved = resolve_targets(spec, Home(account="123456789012", region="us-east-1"), source="spec")
    # When the spec's resources are checked
    problems = missing_resources(spec, resolved, targets=targets, alarms=FakeAlarms({}), tag_key=MANAGED_TAG_KEY)
    # Then the problem says what happened, not that the function lacks the managed tag
    assert problems == [
        "environments[0] (staging).target.function_name: target function 'hello-staging' could not be read: "
        "reading target function 'hello-staging' failed: Rate exceeded"
    ]


# --- time scale: windows and approvals as long as on AWS, shown both ways --------------------------------
def _traffic(wait: int, started: datetime) -> TrafficState:
    return TrafficState(
        steps=[TrafficStep(weight=20, wait_seconds=wait)],
        index=0,
        weight=20,
        wait_seconds=wait,
        complete=False,
        started_at=started,
    )


def test_a_scaled_window_counts_the_step_s_traffic_as_aws_would() -> None:
    # Given a 300 s bake that took 3 s of wall time at time scale 0.01 (the version served 10 minutes before)
    start, seconds = metric_window(MetricsCheck(), _traffic(300, NOW - timedelta(seconds=3)), NOW, LOCAL)

    # Then the window is nominally the bake, and counts the last 3 s of wall time, not 300
    assert seconds == 300
    assert start == NOW - timedelta(seconds=3)


def test_a_scaled_window_still_spans_a_step_that_took_longer() -> None:
    start, seconds = metric_window(MetricsCheck(), _traffic(300, NOW - timedelta(seconds=5)), NOW, LOCAL)
    assert (seconds, start) == (500, NOW - timedelta(seconds=5))


def test_a_window_the_spec_writes_is_scaled_too() -> None:
    start, seconds = metric_window(MetricsCheck(window_seconds=600), _traffic(60, NOW), NOW, LOCAL)
    assert (seconds, start) == (600, NOW - timedelta(seconds=6))


def test_a_verdict_under_a_time_scale_says_both_times() -> None:
    new = VersionStats(version="5", invocations=100, errors=30)
    (check, *_) = judge_metrics(MetricsCheck(), new, None, 300, LOCAL)
    assert "over 300 s (3 s at time scale 0.01), limit 1%" in check.reason
    assert check.evidence["window_wall_seconds"] == 3.0


def test_an_approval_under_a_time_scale_says_when_it_really_times_out() -> None:
    step = build_step(_spec(approval={"required": True, "timeout_seconds": 3600}))
    request = ApprovalRequest(
        kind="approval", task_token="token", deployment=step.deployment, environment=step.environment, release=None
    )
    ledger, notifier = started_ledger(step), FakeNotifier()

    ticket = request_approval(request, ledger=ledger, notifier=notifier, scale=LOCAL)

    (_, message, _) = notifier.published[0]
    assert "Without a decision within 1 h (36 s at time scale 0.01) it fails." in message
    assert ticket.expires_at - ticket.requested_at == timedelta(seconds=36)


def test_the_stages_read_the_local_cloud_s_time_scale_and_default_to_aws_time() -> None:
    env = {"LEDGER_TABLE": "t", "ARTIFACT_BUCKET": "b", "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}
    assert Settings.model_validate(env).time_scale == TimeScale()
    assert Settings.model_validate({**env, TIME_SCALE_ENV: "0.01"}).time_scale == LOCAL
