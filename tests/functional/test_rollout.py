"""Deploy, ShiftTraffic, EvaluateHealth and RollBack against moto's Lambda, as the state machine chains them."""

from collections.abc import Callable
from typing import Any

import pytest
from conveyor import runtime
from conveyor.adapters.lambda_functions import LambdaTargets
from conveyor.domain.errors import TargetNotManagedError
from conveyor.domain.ports import Invocation

from tests.fakes import pipeline_yaml
from tests.fakes.builders import DEFAULT_SPEC
from tests.functional.conftest import Cloud, FakeLambdaContext, StageHandler, environment_step

CANARY_SPEC = pipeline_yaml(
    environments=[
        {
            **DEFAULT_SPEC["environments"][0],
            "strategy": {"type": "canary", "weight": 10, "bake_seconds": 0},
            "health": {"synthetic": {"expect": {"status": "ok"}}, "alarms": ["hello-staging-errors"]},
        }
    ]
)


class ProgrammedInvoke(LambdaTargets):
    """Real moto for everything but invoke: moto runs Lambda code only in Docker."""

    def __init__(self, answer: Invocation) -> None:
        super().__init__(runtime.session())
        self.answer = answer
        self.invoked: list[tuple[str, str]] = []

    def invoke(self, function_name: str, qualifier: str, payload: dict[str, Any]) -> Invocation:
        self.invoked.append((function_name, qualifier))
        return self.answer


def _deploy(handlers: dict[str, StageHandler], context: FakeLambdaContext, state: dict[str, Any]) -> dict[str, Any]:
    return handlers["deploy"].handler(environment_step(state), context)


def test_deploy_publishes_a_version_from_the_release_package(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    # Given a validated deployment and a target whose alias serves version 1
    state = validated()
    # When Deploy runs
    release = _deploy(handlers, context, state)
    # Then a new version holding the package's exact code is published, and the alias is untouched
    assert release["version_before"] == "1"
    assert release["version_after"] == "2"
    assert release["reused"] is False
    version = cloud.lambda_.get_function(FunctionName="hello-staging", Qualifier="2")["Configuration"]
    assert version["CodeSha256"] == release["code_sha256"]
    assert "hello 1.0.0" in version["Description"]
    assert cloud.alias()["FunctionVersion"] == "1"
    deployment_id = state["deployment"]["deployment_id"]
    staging = cloud.meta(deployment_id)["environments"]["staging"]
    assert (staging["status"], staging["version_before"], staging["version_after"]) == ("DEPLOYED", "1", "2")


def test_deploy_again_reuses_the_version(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    # Given Deploy already ran once (a redrive or a re-run of the same object)
    state = validated()
    first = _deploy(handlers, context, state)
    # When it runs again
    again = _deploy(handlers, context, state)
    # Then the same version is reused and no other version is published
    assert (again["version_after"], again["reused"]) == (first["version_after"], True)
    versions = cloud.lambda_.list_versions_by_function(FunctionName="hello-staging")["Versions"]
    assert sorted(v["Version"] for v in versions) == ["$LATEST", "1", "2"]


def test_deploy_with_function_config_applies_it(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    state = validated()
    manifest = state["deployment"]["manifest"]
    manifest["function_config"] = {"environment": {"GREETING": "hi"}, "memory_mb": 256, "timeout_seconds": 9}
    release = _deploy(handlers, context, state)
    version = cloud.lambda_.get_function_configuration(FunctionName="hello-staging", Qualifier=release["version_after"])
    assert (version["MemorySize"], version["Timeout"]) == (256, 9)
    assert version["Environment"]["Variables"]["GREETING"] == "hi"


def test_deploy_refuses_a_target_that_lost_its_tag(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    state = validated()
    arn = cloud.lambda_.get_function(FunctionName="hello-staging")["Configuration"]["FunctionArn"]
    cloud.lambda_.untag_resource(Resource=arn, TagKeys=["conveyor:managed"])
    with pytest.raises(TargetNotManagedError):
        _deploy(handlers, context, state)
    versions = cloud.lambda_.list_versions_by_function(FunctionName="hello-staging")["Versions"]
    assert sorted(v["Version"] for v in versions) == ["$LATEST", "1"]


def test_shift_traffic_all_at_once_moves_the_alias(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    state = validated()
    release = _deploy(handlers, context, state)
    traffic = handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    assert (traffic["weight"], traffic["complete"]) == (100, True)
    alias = cloud.alias()
    assert alias["FunctionVersion"] == "2"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    staging = cloud.meta(state["deployment"]["deployment_id"])["environments"]["staging"]
    assert (staging["status"], staging["weight"]) == ("SHIFTING", 100)


def test_shift_traffic_canary_sets_additional_version_weights(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    # Given a canary at 10%
    state = validated(CANARY_SPEC)
    release = _deploy(handlers, context, state)
    # When the first step is applied
    traffic = handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    # Then version 1 stays primary and 10% goes to version 2
    assert (traffic["weight"], traffic["complete"]) == (10, False)
    alias = cloud.alias()
    assert alias["FunctionVersion"] == "1"
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    # And the next step promotes, clearing the routing
    handlers["shift_traffic"].handler(environment_step(state, release=release, traffic=traffic), context)
    alias = cloud.alias()
    assert alias["FunctionVersion"] == "2"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")


def test_shift_traffic_creates_the_alias_on_a_first_deployment(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    cloud.lambda_.delete_alias(FunctionName="hello-staging", Name="live")
    state = validated(CANARY_SPEC)
    release = _deploy(handlers, context, state)
    assert release["version_before"] is None
    traffic = handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    assert (traffic["weight"], traffic["complete"]) == (100, True)
    assert cloud.alias()["FunctionVersion"] == "2"


def _health(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    answer: Invocation,
) -> tuple[dict[str, Any], dict[str, Any], ProgrammedInvoke]:
    state = validated(CANARY_SPEC)
    release = _deploy(handlers, context, state)
    traffic = handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    targets = ProgrammedInvoke(answer)
    monkeypatch.setattr(runtime, "targets", lambda: targets)
    verdict = handlers["evaluate_health"].handler(environment_step(state, release=release, traffic=traffic), context)
    return state, verdict, targets


def _put_alarm(cloud: Cloud, name: str, state: str) -> None:
    cloud.cloudwatch.put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloud.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def test_evaluate_health_fails_when_an_alarm_is_missing(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a healthy synthetic answer but the spec's alarm does not exist
    state, verdict, targets = _health(
        cloud, handlers, context, validated, monkeypatch, Invocation({"status": "ok"}, None, "2", 5.0)
    )
    # Then the verdict fails, naming the alarm, at the canary weight
    assert (verdict["status"], verdict["weight"]) == ("fail", 10)
    assert verdict["reason"] == "alarm 'hello-staging-errors' does not exist"
    assert [(c["name"], c["status"]) for c in verdict["checks"]] == [
        ("synthetic", "pass"),
        ("alarm:hello-staging-errors", "fail"),
    ]
    # The new version itself was invoked, not the alias
    assert targets.invoked == [("hello-staging", "2")]
    stored = cloud.meta(state["deployment"]["deployment_id"])["environments"]["staging"]["verdict"]
    assert stored["status"] == "fail"


def test_evaluate_health_passes_with_an_ok_alarm_and_right_answer(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _put_alarm(cloud, "hello-staging-errors", "OK")
    _, verdict, _ = _health(
        cloud, handlers, context, validated, monkeypatch, Invocation({"status": "ok"}, None, "2", 5.0)
    )
    assert (verdict["status"], verdict["reason"]) == ("pass", "all checks passed")


def test_evaluate_health_fails_on_an_alarm_in_alarm(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _put_alarm(cloud, "hello-staging-errors", "ALARM")
    _, verdict, _ = _health(
        cloud, handlers, context, validated, monkeypatch, Invocation({"status": "ok"}, None, "2", 5.0)
    )
    assert (verdict["status"], verdict["reason"]) == ("fail", "alarm 'hello-staging-errors' is in ALARM")


def test_evaluate_health_fails_when_the_new_version_raises(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _put_alarm(cloud, "hello-staging-errors", "OK")
    crash = Invocation({"errorType": "ImportError", "errorMessage": "no module named requests"}, "Unhandled", "2", 9.0)
    _, verdict, _ = _health(cloud, handlers, context, validated, monkeypatch, crash)
    assert verdict["status"] == "fail"
    assert verdict["reason"] == "hello-staging:2 raised ImportError: no module named requests"


def test_roll_back_restores_the_alias_and_clears_routing(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a canary at 10% whose health check failed
    state = validated(CANARY_SPEC)
    release = _deploy(handlers, context, state)
    traffic = handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    monkeypatch.setattr(runtime, "targets", lambda: ProgrammedInvoke(Invocation({"status": "ok"}, None, "2", 1)))
    step = environment_step(state, release=release, traffic=traffic)
    health = handlers["evaluate_health"].handler(step, context)
    assert cloud.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    # When RollBack runs
    result = handlers["roll_back"].handler({**step, "health": health}, context)
    # Then the alias serves version 1 alone again
    alias = cloud.alias()
    assert alias["FunctionVersion"] == "1"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    assert (result["restored_version"], result["rolled_back_from"]) == ("1", "2")
    assert result["reason"] == "health check failed at 10% traffic: alarm 'hello-staging-errors' does not exist"
    staging = cloud.meta(state["deployment"]["deployment_id"])["environments"]["staging"]
    assert (staging["status"], staging["rollback"]["restored_version"]) == ("ROLLED_BACK", "1")


def test_roll_back_of_a_first_deployment_removes_the_alias(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    cloud.lambda_.delete_alias(FunctionName="hello-staging", Name="live")
    state = validated()
    release = _deploy(handlers, context, state)
    handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    failure = {"Error": "States.Timeout", "Cause": "EvaluateHealth timed out"}
    result = handlers["roll_back"].handler(environment_step(state, release=release, failure=failure), context)
    assert result["restored_version"] is None
    aliases = cloud.lambda_.list_aliases(FunctionName="hello-staging")["Aliases"]
    assert aliases == []
