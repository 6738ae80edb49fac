"""A target of several functions (``target.functions``) against moto's Lambda and the ledger: they are deployed,
moved, judged, restored and locked together, as the state machine chains the stages."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from conveyor import runtime
from conveyor.adapters.lambda_functions import LambdaTargets
from conveyor.domain.errors import LockLostError, TargetNotManagedError
from conveyor.domain.ports import Invocation
from conveyor.domain.target_identity import Home, resolve_function

from tests.fakes import pipeline_yaml
from tests.fakes.builders import DEFAULT_SPEC
from tests.functional.conftest import (
    ACCOUNT,
    EXECUTION_ARN,
    REGION,
    TAG_KEY,
    Cloud,
    FakeLambdaContext,
    StageHandler,
    _function_zip,
    environment_step,
)

WORKER = "hello-worker-staging"
FUNCTIONS = ["hello-staging", WORKER]


def spec(**health: Any) -> str:
    return pipeline_yaml(
        environments=[
            {
                **DEFAULT_SPEC["environments"][0],
                "target": {"kind": "lambda", "functions": FUNCTIONS, "alias": "live"},
                "strategy": {"type": "canary", "weight": 10, "bake_seconds": 0},
                "health": health
                or {
                    "synthetic": [
                        {"payload": {"ping": True}, "expect": {"status": "ok"}},
                        {"function": WORKER, "payload": {"Records": []}, "expect": {"status": "ok"}},
                    ]
                },
            }
        ]
    )


class AnswerByFunction(LambdaTargets):
    """Real moto for everything but invoke (moto runs Lambda code only in Docker): each function's answer."""

    def __init__(self, answers: dict[str, Invocation]) -> None:
        super().__init__(runtime.session())
        self.answers = answers
        self.invoked: list[tuple[str, str]] = []

    def invoke(self, function_name: str, qualifier: str, payload: dict[str, Any]) -> Invocation:
        self.invoked.append((function_name, qualifier))
        return self.answers[function_name]


OK = Invocation({"status": "ok"}, None, "2", 1)
BROKEN = Invocation({"errorType": "KeyError", "errorMessage": "'queue_url'"}, "Unhandled", "2", 1)


@pytest.fixture
def worker(cloud: Cloud) -> str:
    """A second managed function of the app, its alias ``live`` on version 1."""
    cloud.lambda_.create_function(
        FunctionName=WORKER,
        Runtime="python3.11",
        Role=cloud.role_arn,
        Handler="worker.handler",
        Code={"ZipFile": _function_zip()},
        Tags={TAG_KEY: "true"},
    )
    version = cloud.lambda_.publish_version(FunctionName=WORKER)["Version"]
    cloud.lambda_.create_alias(FunctionName=WORKER, Name="live", FunctionVersion=version)
    return WORKER


def _arn(name: str) -> str:
    return resolve_function(name, Home(account=ACCOUNT, region=REGION), field="test").arn


def _lock_worker(locks: Any) -> int | None:
    """Another deployment (one whose spec names the worker alone) takes the worker's lock: its token, or None."""
    return locks.try_acquire(  # type: ignore[no-any-return]
        _arn(WORKER),
        holder="arn:other",
        deployment_id="d-other",
        app="hello",
        environment="staging",
        lease_seconds=3600,
        now=time.time(),
    )


def _versions(cloud: Cloud, function: str) -> list[str]:
    return [v["Version"] for v in cloud.lambda_.list_versions_by_function(FunctionName=function)["Versions"]]


def _rolled_out(
    handlers: dict[str, StageHandler], context: FakeLambdaContext, state: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    release = handlers["deploy"].handler(environment_step(state), context)
    traffic = handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    return release, traffic


def test_deploy_publishes_a_version_of_every_function_and_records_them(
    cloud: Cloud,
    worker: str,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    state = validated(spec())
    release = handlers["deploy"].handler(environment_step(state), context)
    # Each function got the release's package (keeping its own handler) and published its own version 2
    assert (release["function_name"], release["version_before"], release["version_after"]) == (
        "hello-staging",
        "1",
        "2",
    )
    [companion] = release["companions"]
    assert (companion["function_name"], companion["version_before"], companion["version_after"]) == (WORKER, "1", "2")
    code = cloud.lambda_.get_function(FunctionName=WORKER, Qualifier="2")["Configuration"]
    assert (code["CodeSha256"], code["Handler"]) == (release["code_sha256"], "worker.handler")
    entry = cloud.meta(state["deployment"]["deployment_id"])["environments"]["staging"]
    assert entry["functions"] == FUNCTIONS
    assert [(c["function_name"], c["version_before"], c["version_after"]) for c in entry["companions"]] == [
        (WORKER, "1", "2")
    ]


def test_every_alias_moves_step_by_step_and_each_serves_the_release_at_the_end(
    cloud: Cloud,
    worker: str,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    state = validated(spec())
    release, traffic = _rolled_out(handlers, context, state)
    for name in FUNCTIONS:
        alias = cloud.lambda_.get_alias(FunctionName=name, Name="live")
        assert (alias["FunctionVersion"], alias["RoutingConfig"]["AdditionalVersionWeights"]) == ("1", {"2": 0.1})
    assert set(traffic["companion_revisions"]) == {WORKER}
    final = handlers["shift_traffic"].handler(environment_step(state, release=release, traffic=traffic), context)
    assert final["complete"] is True
    for name in FUNCTIONS:
        alias = cloud.lambda_.get_alias(FunctionName=name, Name="live")
        assert alias["FunctionVersion"] == "2"
        assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
        served = runtime.ledger().served(name, "live")
        assert served is not None, name
        assert (served.version, served.lambda_version) == ("1.0.0", "2"), name


def test_one_function_failing_its_check_fails_the_verdict_and_rollback_restores_all(
    cloud: Cloud,
    worker: str,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given both functions at 10% on their new versions, the worker's new version raising
    state = validated(spec())
    release, traffic = _rolled_out(handlers, context, state)
    targets = AnswerByFunction({"hello-staging": OK, WORKER: BROKEN})
    monkeypatch.setattr(runtime, "targets", lambda: targets)
    step = environment_step(state, release=release, traffic=traffic)
    # When health is judged
    verdict = handlers["evaluate_health"].handler(step, context)
    # Then each function's check ran against its own new version, and the worker's failure fails the verdict
    assert sorted(targets.invoked) == [("hello-staging", "2"), (WORKER, "2")]
    assert verdict["status"] == "fail"
    assert f"{WORKER}:2 raised KeyError" in verdict["reason"]
    # And RollBack puts both aliases back on version 1 alone
    result = handlers["roll_back"].handler({**step, "health": verdict}, context)
    for name in FUNCTIONS:
        alias = cloud.lambda_.get_alias(FunctionName=name, Name="live")
        assert alias["FunctionVersion"] == "1", name
        assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights"), name
    assert (result["restored_version"], result["companions"][0]["function_name"]) == ("1", WORKER)
    assert result["companions"][0]["restored_version"] == "1"


def test_the_lock_covers_every_function(
    cloud: Cloud,
    worker: str,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    # Given the environment's lock taken (validated holds every environment's lock, as AcquireLock does)
    state = validated(spec())
    locks = runtime.locks()
    grant = state["locks"]["staging"]
    # Then the worker's lock is this execution's too, and fenced with it
    assert locks.get(_arn(WORKER)).holder == EXECUTION_ARN
    assert set(grant["companion_tokens"]) == {_arn(WORKER)}
    # And a deployment whose spec names the worker alone cannot take it meanwhile
    assert _lock_worker(locks) is None
    # And a stage of an execution that lost the worker's lock changes nothing
    locks.release(_arn(WORKER), EXECUTION_ARN)
    assert _lock_worker(locks) is not None
    with pytest.raises(LockLostError, match="is no longer this execution's"):
        handlers["deploy"].handler(environment_step(state), context)
    assert _versions(cloud, WORKER) == ["$LATEST", "1"]


def test_a_function_held_by_another_deployment_makes_the_environment_wait(
    cloud: Cloud,
    worker: str,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    # Given the worker locked by another deployment (one whose spec named it alone)
    locks = runtime.locks()
    assert _lock_worker(locks) is not None
    # When this deployment asks for the environment's lock
    state = validated(spec())
    grant = state["locks"]["staging"]
    # Then it waits behind that deployment, holding nothing
    assert (grant["status"], grant["waiting_for"]) == ("waiting", "d-other")
    assert locks.get(_arn("hello-staging")) is None or locks.get(_arn("hello-staging")).holder is None
    entry = cloud.meta(state["deployment"]["deployment_id"])["environments"]["staging"]
    assert (entry["status"], entry["waiting_for"]) == ("QUEUED", "d-other")


def test_a_function_that_lost_its_tag_stops_deploy_before_any_code_changes(
    cloud: Cloud,
    worker: str,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
) -> None:
    state = validated(spec())
    cloud.lambda_.untag_resource(Resource=_arn(WORKER), TagKeys=[TAG_KEY])
    with pytest.raises(TargetNotManagedError):
        handlers["deploy"].handler(environment_step(state), context)
    for name in FUNCTIONS:  # neither function's code changed nor a version published
        assert _versions(cloud, name) == ["$LATEST", "1"], name
