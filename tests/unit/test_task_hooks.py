"""Task-token hooks: the spec's hook fields, how a hook's answer becomes a verdict, and the ASL that runs them."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.errors import DownMigrationFailedError, HookFailedError, TargetNotFoundError, TargetNotManagedError
from conveyor.domain.hooks import (
    MAX_HOOK_OUTPUT_BYTES,
    HookCall,
    HookRecordRequest,
    judge_hook,
    step_hook_calls,
)
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.timing import utcnow
from conveyor.domain.trust import require_managed_hooks
from conveyor.stages.hooks import record_hook
from pydantic import ValidationError

from tests.fakes import DEFAULT_SPEC, FakeTargets
from tests.unit.conftest import build_step, started_ledger

ASL = json.loads((Path(__file__).parents[2] / "statemachine" / "deployment.asl.json").read_text())
ENVIRONMENT_STATES = ASL["States"]["RollOutEnvironments"]["ItemProcessor"]["States"]
MIGRATE = {"name": "schema", "function_name": "hello-migrate", "timeout_seconds": 900, "heartbeat_seconds": 60}
SMOKE = {"name": "smoke", "function_name": "hello-smoke", "at": [50]}


def _spec(strategy: dict[str, Any] | None = None, **environment: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    env = spec["environments"][0]
    if strategy is not None:
        env["strategy"] = strategy
    hooks = environment.pop("hooks", None)
    if hooks is not None:
        env["health"]["hooks"] = hooks
    env.update(environment)
    return spec


LINEAR = {"type": "linear", "step_percent": 25, "interval_seconds": 60}


def _call(phase: str = "step", **hook: Any) -> HookCall:
    spec = _spec(LINEAR, migrate={**MIGRATE, "down": {"name": "schema-down", "function_name": "hello-migrate"}})
    spec["environments"][0]["health"]["hooks"] = [{**SMOKE, **hook}]
    step = build_step(spec)
    assert step.release is not None
    (call,) = step_hook_calls(step.environment, deployment=step.deployment, release=step.release, weight=50, step=2)
    if phase != "step":
        call = call.model_copy(update={"invocation": call.invocation.model_copy(update={"phase": phase, "step": None})})
    return call


# --- the spec ---------------------------------------------------------------------------------
def test_a_hook_may_run_up_to_fifteen_minutes_and_no_longer() -> None:
    PipelineSpec.model_validate(_spec(migrate={**MIGRATE, "timeout_seconds": 900}))
    with pytest.raises(ValidationError, match="timeout_seconds"):
        PipelineSpec.model_validate(_spec(migrate={**MIGRATE, "timeout_seconds": 901}))


def test_a_heartbeat_longer_than_the_timeout_is_refused_and_an_unset_one_is_the_timeout() -> None:
    with pytest.raises(
        ValidationError, match="heartbeat_seconds \\(120\\) is longer than its timeout_seconds \\(60\\)"
    ):
        PipelineSpec.model_validate(_spec(migrate={**MIGRATE, "timeout_seconds": 60, "heartbeat_seconds": 120}))
    spec = PipelineSpec.model_validate(_spec(migrate={"name": "schema", "function_name": "m", "timeout_seconds": 42}))
    assert spec.environments[0].migrate is not None
    assert spec.environments[0].migrate.heartbeat_seconds == 42


def test_a_step_hook_at_a_weight_the_plan_never_takes_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"health.hooks 'smoke': at \[40\] is not a step of the linear plan"):
        PipelineSpec.model_validate(_spec(LINEAR, hooks=[{**SMOKE, "at": [40]}]))


def test_a_step_hook_at_zero_adds_a_step_before_any_traffic() -> None:
    spec = PipelineSpec.model_validate(
        _spec({"type": "canary", "weight": 10, "bake_seconds": 60}, hooks=[{**SMOKE, "at": [0, 10, 100]}])
    )
    assert [step.weight for step in spec.environments[0].traffic_steps()] == [0, 10, 100]
    assert [hook.name for hook in spec.environments[0].hooks_at(10)] == ["smoke"]


def test_hook_names_are_unique_in_an_environment() -> None:
    with pytest.raises(ValidationError, match="hook names must be unique"):
        PipelineSpec.model_validate(_spec(LINEAR, migrate=MIGRATE, hooks=[{**SMOKE, "name": "schema"}]))


def test_every_hook_function_must_be_managed() -> None:
    step = build_step(_spec(LINEAR, migrate=MIGRATE))
    with pytest.raises(TargetNotManagedError, match="hook 'schema': function 'hello-migrate'"):
        require_managed_hooks(step.environment, _Unmanaged("hello-migrate"), tag_key="conveyor:managed", source="s")


def test_a_hook_function_that_is_gone_is_named_as_that_hook() -> None:
    # Given a post-traffic hook whose function was deleted after the spec was applied
    step = build_step(
        _spec(
            LINEAR, health={**DEFAULT_SPEC["environments"][0]["health"], "post_traffic": {"function_name": "hook-gone"}}
        )
    )
    # Then the refusal says which hook of which environment, not "target function ... does not exist"
    with pytest.raises(
        TargetNotFoundError,
        match=r"^s: environments 'staging' health\.post_traffic: hook function 'hook-gone' does not exist$",
    ):
        require_managed_hooks(step.environment, FakeTargets(), tag_key="conveyor:managed", source="s")


class _Unmanaged:
    def __init__(self, name: str) -> None:
        self.name = name

    def ensure_managed(self, function_name: str, tag_key: str) -> str:
        if function_name == self.name:
            raise TargetNotManagedError(f"{function_name} lacks {tag_key}")
        return function_name


# --- the calls ShiftTraffic lists ---------------------------------------------------------------
def test_shift_traffic_lists_the_hooks_due_at_its_weight_with_what_they_receive() -> None:
    call = _call()
    assert call.hook.name == "smoke"
    assert call.invocation.model_dump() == {
        "hook": "smoke",
        "phase": "step",
        "deployment_id": "d-unit",
        "app": "hello",
        "version": "1.0.0",
        "environment": "staging",
        "function_name": "hello-staging",
        "alias": "live",
        "function_version": "2",
        "previous_version": "1",
        "weight": 50,
        "step": 2,
        "timeout_seconds": 300,
    }
    assert "task_token" not in json.dumps(call.model_dump())


# --- the verdict --------------------------------------------------------------------------------
def test_a_passing_answer_keeps_its_detail_and_output() -> None:
    outcome = judge_hook(HookRecordRequest(call=_call(), result={"status": "pass", "detail": "ok", "output": {"n": 1}}))
    assert (outcome.status, outcome.output) == ("pass", {"n": 1})
    assert outcome.reason == "hook 'smoke' (hello-smoke:$LATEST) at 50% traffic (step 2) passed: ok"


def test_a_long_output_is_kept_clipped_with_its_size() -> None:
    big = {"rows": "x" * (MAX_HOOK_OUTPUT_BYTES * 2)}
    outcome = judge_hook(HookRecordRequest(call=_call(), result={"status": "pass", "output": big}))
    assert outcome.output_clipped
    assert outcome.output_bytes > MAX_HOOK_OUTPUT_BYTES
    assert len(json.dumps(outcome.output).encode()) <= MAX_HOOK_OUTPUT_BYTES + 16


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ({"Error": "States.Timeout", "Cause": None}, "did not report within 300 s (States.Timeout)"),
        ({"Error": "States.HeartbeatTimeout"}, "sent no heartbeat for 300 s (States.HeartbeatTimeout)"),
        ({"Error": "SchemaLockedError", "Cause": "table busy"}, "failed: SchemaLockedError: table busy"),
        ({"Error": "Lambda.ResourceNotFoundException", "Cause": "gone"}, "could not be invoked"),
    ],
)
def test_a_state_error_is_a_failed_verdict_naming_the_hook(failure: dict[str, Any], expected: str) -> None:
    outcome = judge_hook(HookRecordRequest(call=_call(), failure=failure))
    assert outcome.status == "fail"
    assert outcome.reason.startswith("hook 'smoke' (hello-smoke:$LATEST) at 50% traffic (step 2)")
    assert expected in outcome.reason


def test_an_answer_of_another_shape_fails() -> None:
    outcome = judge_hook(HookRecordRequest(call=_call(), result={"ok": True}))
    assert outcome.status == "fail"
    assert 'expected {"status": "pass" | "fail"' in outcome.reason


# --- RecordHook ---------------------------------------------------------------------------------
def test_record_hook_puts_the_output_in_the_ledger() -> None:
    step = build_step()
    ledger = started_ledger(step)
    record_hook(
        HookRecordRequest(call=_call(phase="migrate"), result={"status": "pass", "output": {"schema": 7}}),
        ledger=ledger,
    )
    (event,) = ledger.stage_events("Migrate")
    assert (event.status, event.environment, event.detail["output"]) == ("succeeded", "staging", {"schema": 7})


def test_a_hooks_event_spans_its_run_from_the_invocation_the_state_machine_made() -> None:
    # Given a migration invoked 90 s before it answered, and a step's second hook (its invocation time unknown)
    step = build_step()
    ledger = started_ledger(step)
    invoked = utcnow() - timedelta(seconds=90)
    answer = {"status": "pass"}
    record_hook(HookRecordRequest(call=_call(phase="migrate"), result=answer, started_at=invoked), ledger=ledger)
    record_hook(HookRecordRequest(call=_call(), result=answer, started_at=invoked, index=1), ledger=ledger)
    # Then the migration's event starts at its invocation and lasts as long as it ran
    (migrate,) = ledger.stage_events("Migrate")
    assert migrate.started_at == invoked
    assert migrate.duration_ms >= 90_000
    # And the second hook's is only the recording's own (nothing says when it was invoked)
    (second,) = ledger.stage_events("RunStepHooks")
    assert second.started_at >= migrate.finished_at


def test_the_state_machine_passes_when_it_invoked_each_hook() -> None:
    assert ENVIRONMENT_STATES["Migrate"]["Parameters"]["started_at.$"] == "$$.State.EnteredTime"
    assert ENVIRONMENT_STATES["MigrateDown"]["Parameters"]["started_at.$"] == "$$.State.EnteredTime"
    assert ENVIRONMENT_STATES["RunStepHooks"]["ItemSelector"] == {
        "call.$": "$$.Map.Item.Value",
        "started_at.$": "$$.State.EnteredTime",
        "index.$": "$$.Map.Item.Index",
    }


def test_a_failed_step_hook_raises_for_the_rollback_and_is_recorded_failed() -> None:
    step = build_step()
    ledger = started_ledger(step)
    with pytest.raises(HookFailedError, match=r"hook 'smoke' .* at 50% traffic .* failed: probes failed"):
        record_hook(
            HookRecordRequest(call=_call(), result={"status": "fail", "detail": "probes failed"}), ledger=ledger
        )
    (event,) = ledger.stage_events("RunStepHooks")
    assert event.failed


def test_a_failed_down_migration_is_a_failed_rollback() -> None:
    step = build_step()
    ledger = started_ledger(step)
    with pytest.raises(DownMigrationFailedError, match=r"down-migration hook 'smoke' .* after the alias was restored"):
        record_hook(
            HookRecordRequest(call=_call(phase="migrate_down"), failure={"Error": "States.Timeout"}), ledger=ledger
        )
    assert ledger.stage_events("MigrateDown")[0].failed


# --- the ASL ------------------------------------------------------------------------------------
def _invokes() -> dict[str, dict[str, Any]]:
    found = {}
    for name in ("Migrate", "MigrateDown"):
        found.update(ENVIRONMENT_STATES[name]["Branches"][0]["States"])
    found.update(ENVIRONMENT_STATES["RunStepHooks"]["ItemProcessor"]["States"])
    return {name: state for name, state in found.items() if name.startswith("Invoke")}


def test_every_hook_is_invoked_once_asynchronously_and_awaited_through_its_token() -> None:
    invokes = _invokes()
    assert set(invokes) == {"InvokeMigration", "InvokeStepHook", "InvokeDownMigration"}
    for state in invokes.values():
        assert state["Resource"] == "${LambdaInvokeWaitForTaskToken}"
        assert state["Parameters"]["InvocationType"] == "Event"
        assert state["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
        assert state["TimeoutSecondsPath"] == "$.call.hook.timeout_seconds"
        assert state["HeartbeatSecondsPath"] == "$.call.hook.heartbeat_seconds"
        # Only a refused request (nothing queued) is retried: a hook is never invoked twice.
        assert [r["ErrorEquals"] for r in state["Retry"]] == [["Lambda.TooManyRequestsException"]]


def test_the_migration_runs_after_deploy_before_any_traffic_and_down_after_the_restore() -> None:
    assert ENVIRONMENT_STATES["Deploy"]["Next"] == "MigrationGate"
    assert ENVIRONMENT_STATES["Migrate"]["Next"] == "ShiftTraffic"
    assert ENVIRONMENT_STATES["ShiftTraffic"]["Next"] == "RunStepHooks"
    assert ENVIRONMENT_STATES["RunStepHooks"]["Next"] == "WaitBeforeJudging"
    assert ENVIRONMENT_STATES["RollBack"]["Next"] == "DownMigrationGate"
    assert ENVIRONMENT_STATES["MigrateDown"]["Catch"][0]["Next"] == "DownMigrationFailed"
    assert ENVIRONMENT_STATES["DownMigrationFailed"]["Error"] == DownMigrationFailedError.__name__


def test_a_failed_down_migration_ends_rollback_failed() -> None:
    from conveyor.stages.report import _outcome

    step = build_step()
    record = started_ledger(step).get("d-unit")
    assert record is not None
    assert _outcome(record, DownMigrationFailedError.__name__) is Outcome.ROLLBACK_FAILED


def test_pipeline_apply_names_each_missing_or_unmanaged_hook_by_field_path() -> None:
    from conveyor.domain.ownership import resolve_targets
    from conveyor.domain.readiness import missing_resources
    from conveyor.domain.target_identity import Home

    from tests.fakes import FakeAlarms, FakeTargets

    spec = PipelineSpec.model_validate(
        _spec(LINEAR, migrate={**MIGRATE, "down": {"name": "down", "function_name": "gone"}}, hooks=[SMOKE])
    )
    targets = FakeTargets()
    targets.add("hello-staging", managed=True)
    targets.add("hello-migrate", managed=True)
    targets.add("hello-smoke", managed=False)
    resolved = resolve_targets(spec, Home(account="123456789012", region="us-east-1"), source="spec")

    problems = missing_resources(spec, resolved, targets=targets, alarms=FakeAlarms({}), tag_key="conveyor:managed")

    assert problems == [
        "environments[0] (staging).migrate.down.function_name: hook 'gone' does not exist",
        "environments[0] (staging).health.hooks[0].function_name: hook 'hello-smoke' is not tagged "
        "conveyor:managed=true (Conveyor may use only managed functions)",
    ]


# --- the rollback notice ------------------------------------------------------------------------
def test_a_failed_down_migration_is_reported_rollback_failed_naming_the_hook() -> None:
    from conveyor.stages.report import notify_failure
    from conveyor.stages.rollback import roll_back

    from tests.fakes import FakeNotifier
    from tests.unit.test_report import EVENT, _failure, _rollout

    # Given a canary rolled back after its alarm fired, whose down-migration then timed out
    ledger, targets, step = _rollout("ALARM")
    roll_back(step, targets=targets, ledger=ledger)
    down = _call(phase="migrate_down").model_copy(
        update={
            "invocation": _call(phase="migrate_down").invocation.model_copy(
                update={"deployment_id": step.deployment.deployment_id}
            )
        }
    )
    with pytest.raises(DownMigrationFailedError) as raised:
        record_hook(HookRecordRequest(call=down, failure={"Error": "States.Timeout"}), ledger=ledger)
    notifier = FakeNotifier()

    # When NotifyFailure runs with the DownMigrationFailed state's error
    report = notify_failure(_failure("DownMigrationFailedError", str(raised.value)), ledger=ledger, notifier=notifier)

    # Then the outcome is ROLLBACK_FAILED: the alias is back, the data is not, and the notice says both
    assert report.outcome is Outcome.ROLLBACK_FAILED
    _, body, _ = notifier.published[0]
    assert "health check failed at 10% traffic" in body
    assert "; then down-migration hook 'smoke' (hello-smoke:$LATEST) after the alias was restored did not" in body
    assert "did not report within 300 s (States.Timeout)" in body
    assert body.count("did not report within 300 s") == 1  # the down-migration's result, said once
    assert "ACTION REQUIRED" in body
    assert EVENT["detail"]["object"]["key"] in body


# --- IAM ----------------------------------------------------------------------------------------
def test_the_state_machine_may_invoke_only_managed_hooks_and_no_conveyor_role_answers_a_token() -> None:
    from tests.unit.test_template_policies import MANAGED_CONDITION, STATEMENTS, granted_actions

    invoke = [s for r, s in STATEMENTS if r == "DeploymentStateMachine" and s.get("Sid") == "InvokeManagedHooks"]
    assert [(s["Action"], s["Condition"]) for s in invoke] == [("lambda:InvokeFunction", MANAGED_CONDITION)]
    # The hook answers its own token with its own role: none of Conveyor's may answer for it
    for resource in ("DeploymentStateMachine", "RolloutFunction", "IntakeFunction", "ReportFunction"):
        assert not {a for a in granted_actions(resource) if a.startswith("states:SendTask")}, resource
