"""How a deployment ends: NotifyFailure (SNS + ledger) after a rollback or a rejection, Finalize on success."""

from collections.abc import Callable
from typing import Any

import pytest
from conveyor import runtime
from conveyor.domain.errors import PipelineNotFoundError
from conveyor.domain.ports import Invocation
from conveyor.domain.pushed_object import PushedObject

from tests.fakes import pipeline_yaml
from tests.fakes.builders import DEFAULT_SPEC
from tests.functional.conftest import (
    EXECUTION_ARN,
    STARTED_AT,
    Cloud,
    FakeLambdaContext,
    StageHandler,
    environment_step,
    load_event,
)
from tests.functional.test_rollout import CANARY_SPEC, ProgrammedInvoke


def _roll_out(
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    state: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    answer: Invocation,
) -> dict[str, Any]:
    """Deploy, then ShiftTraffic and EvaluateHealth until the plan completes or health fails."""
    step = environment_step(state)
    step["release"] = handlers["deploy"].handler(step, context)
    monkeypatch.setattr(runtime, "targets", lambda: ProgrammedInvoke(answer))
    while True:
        step["traffic"] = handlers["shift_traffic"].handler(step, context)
        step["health"] = handlers["evaluate_health"].handler(step, context)
        if step["health"]["status"] == "fail" or step["traffic"]["complete"]:
            return step


def _notify(
    handlers: dict[str, StageHandler], context: FakeLambdaContext, event: dict[str, Any], error: str, cause: str
) -> dict[str, Any]:
    request = {"execution_input": event, "execution_arn": EXECUTION_ARN, "failure": {"Error": error, "Cause": cause}}
    return handlers["notify_failure"].handler(request, context)


def test_notify_failure_after_rollback_tells_on_call_what_failed_and_what_was_restored(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a canary whose alarm does not exist, rolled back by the state machine
    state = validated(CANARY_SPEC)
    step = _roll_out(handlers, context, state, monkeypatch, Invocation({"status": "ok"}, None, "2", 3.0))
    rollback = handlers["roll_back"].handler(step, context)
    event = {k: v for k, v in state.items() if k != "deployment"}
    # When NotifyFailure runs with the error the Map's Catch passes on
    report = _notify(handlers, context, event, "DeploymentRolledBackError", rollback["reason"])
    # Then exactly one notification names app, version, environment and outcome
    (message,) = cloud.notifications()
    assert message["Subject"] == "[Conveyor] hello 1.0.0 staging: ROLLED_BACK"
    body = message["Message"]
    # And its body names the failed check and the version the alias was restored to
    assert "alarm 'hello-staging-errors' does not exist" in body
    assert "[FAIL] alarm 'hello-staging-errors' does not exist" in body
    assert "staging: ROLLED BACK - hello-staging:live restored to version 1 (was 2)" in body
    deployment_id = state["deployment"]["deployment_id"]
    assert message["MessageAttributes"]["outcome"]["Value"] == "ROLLED_BACK"
    assert message["MessageAttributes"]["deployment_id"]["Value"] == deployment_id
    # And the ledger says ROLLED_BACK, with the failure and a NotifyFailure event
    assert report["outcome"] == "ROLLED_BACK"
    assert report["notified"] is True
    meta = cloud.meta(deployment_id)
    assert meta["status"] == "ROLLED_BACK"
    assert meta["failure"]["stage"] == "EvaluateHealth"
    assert meta["failure"]["environment"] == "staging"
    assert "finished_at" in meta
    stages = [item["stage"] for item in cloud.events(deployment_id)]
    assert stages.count("NotifyFailure") == 1


def test_notify_failure_after_a_rejection_marks_failed(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given ValidateArtifact refused the push (no pipeline registered)
    event = cloud.event_for(cloud.put_bundle())
    request = {"event": event, "execution_arn": EXECUTION_ARN, "started_at": STARTED_AT}
    with pytest.raises(PipelineNotFoundError) as raised:
        handlers["validate_artifact"].handler(request, context)
    cause = f'{{"errorMessage": "{raised.value}", "errorType": "PipelineNotFoundError"}}'
    # When NotifyFailure runs
    report = _notify(handlers, context, event, "PipelineNotFoundError", cause)
    # Then the deployment is FAILED and on-call learns why and that nothing was deployed
    assert (report["outcome"], report["error"]) == ("FAILED", "PipelineNotFoundError")
    (message,) = cloud.notifications()
    assert message["Subject"] == "[Conveyor] hello 1.0.0 validation: FAILED"
    assert "What failed: ValidateArtifact" in message["Message"]
    assert "no pipeline is registered for app 'hello'" in message["Message"]
    assert "nothing was deployed" in message["Message"]
    deployment_id = PushedObject.from_event(event).deployment_id
    assert cloud.meta(deployment_id)["status"] == "FAILED"
    assert cloud.alias()["FunctionVersion"] == "1"


def test_notify_failure_for_a_key_outside_the_layout(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    event = load_event("s3_object_created_outside_layout.json")
    report = _notify(handlers, context, event, "ArtifactLayoutError", "not of the form artifacts/<app>/<version>.zip")
    assert report["outcome"] == "FAILED"
    assert cloud.meta(report["deployment_id"])["status"] == "FAILED"
    (message,) = cloud.notifications()
    assert "artifacts/hello/builds/1.0.0.zip" in message["Message"]


def _environment_results(step: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"release": step["release"], "traffic": step["traffic"], "health": step["health"]}]


def test_finalize_marks_succeeded_with_versions_and_timings(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a canary that passed health at 10% and at 100%
    cloud.cloudwatch.put_metric_alarm(
        AlarmName="hello-staging-errors",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloud.cloudwatch.set_alarm_state(AlarmName="hello-staging-errors", StateValue="OK", StateReason="quiet")
    state = validated(CANARY_SPEC)
    step = _roll_out(handlers, context, state, monkeypatch, Invocation({"status": "ok"}, None, "2", 3.0))
    assert step["health"]["status"] == "pass"
    assert step["traffic"]["complete"] is True
    # When Finalize runs with what the Map returned
    report = handlers["finalize"].handler(
        {"deployment": state["deployment"], "environments": _environment_results(step)}, context
    )
    # Then the ledger says SUCCEEDED, the environment LIVE, and Finalize's event has versions and timings
    assert (report["outcome"], report["notified"]) == ("SUCCEEDED", False)
    deployment_id = state["deployment"]["deployment_id"]
    meta = cloud.meta(deployment_id)
    assert meta["status"] == "SUCCEEDED"
    assert "finished_at" in meta
    assert (meta["environments"]["staging"]["status"], meta["environments"]["staging"]["weight"]) == ("LIVE", 100)
    (final,) = [item for item in cloud.events(deployment_id) if item["stage"] == "Finalize"]
    assert final["detail"]["versions"] == {"staging": {"before": "1", "after": "2"}}
    timings = final["detail"]["timings_ms"]
    assert {"ValidateArtifact", "staging/Deploy", "staging/ShiftTraffic", "staging/EvaluateHealth"} <= set(timings)
    assert all(value >= 0 for value in timings.values())
    assert cloud.alias()["FunctionVersion"] == "2"
    assert cloud.notifications() == []


def test_finalize_notifies_on_success_when_the_pipeline_asks(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = pipeline_yaml(
        environments=[{**DEFAULT_SPEC["environments"][0], "health": {"synthetic": {"expect": {"status": "ok"}}}}],
        notifications={"on_success": True},
    )
    state = validated(spec)
    step = _roll_out(handlers, context, state, monkeypatch, Invocation({"status": "ok"}, None, "2", 3.0))
    report = handlers["finalize"].handler(
        {"deployment": state["deployment"], "environments": _environment_results(step)}, context
    )
    assert report["notified"] is True
    (message,) = cloud.notifications()
    assert message["Subject"] == "[Conveyor] hello 1.0.0: SUCCEEDED"
    assert "staging: LIVE - hello-staging:live now serves version 2 (was 1)" in message["Message"]
