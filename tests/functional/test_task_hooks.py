"""ShiftTraffic lists the step hooks due at its weight; RecordHook records a hook's answer in the DynamoDB ledger."""

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from conveyor.domain.errors import HookFailedError

from tests.fakes import pipeline_yaml
from tests.fakes.builders import DEFAULT_SPEC
from tests.functional.conftest import (
    REGION,
    TAG_KEY,
    Cloud,
    FakeLambdaContext,
    StageHandler,
    environment_step,
    load_function,
)

HOOK = "hello-smoke"
SPEC = pipeline_yaml(
    environments=[
        {
            **DEFAULT_SPEC["environments"][0],
            "strategy": {"type": "canary", "weight": 10, "bake_seconds": 0},
            "health": {
                "synthetic": {"expect": {"status": "ok"}},
                "hooks": [{"name": "smoke", "function_name": HOOK, "at": [10], "timeout_seconds": 600}],
            },
        }
    ]
)


@pytest.fixture
def hooked(cloud: Cloud, validated: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """A validated deployment whose canary runs the managed hook ``hello-smoke`` at 10%."""
    role = boto3.client("iam", region_name=REGION).get_role(RoleName="hello-staging-role")["Role"]["Arn"]
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=HOOK,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        Tags={TAG_KEY: "true"},
    )
    return validated(SPEC)


def _traffic(handlers: dict[str, StageHandler], context: FakeLambdaContext, state: dict[str, Any]) -> dict[str, Any]:
    release = handlers["deploy"].handler(environment_step(state), context)
    traffic = handlers["shift_traffic"].handler(environment_step(state, release=release), context)
    return {"release": release, "traffic": traffic}


def test_shift_traffic_lists_the_hook_due_at_its_weight_without_any_token(
    hooked: dict[str, Any], handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    traffic = _traffic(handlers, context, hooked)["traffic"]
    (call,) = traffic["hooks"]
    assert call["hook"] == {
        "name": "smoke",
        "function_name": HOOK,
        "qualifier": "$LATEST",
        "timeout_seconds": 600,
        "heartbeat_seconds": 600,
    }
    assert (call["invocation"]["weight"], call["invocation"]["step"]) == (10, 1)
    assert "token" not in str(traffic).lower()


def test_record_hook_keeps_the_answer_and_output_in_the_ledger(
    cloud: Cloud, hooked: dict[str, Any], handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    (call,) = _traffic(handlers, context, hooked)["traffic"]["hooks"]
    record = StageHandler(load_function("rollout"), "RecordHook")
    answer = {"status": "pass", "detail": "5 probes ok", "output": {"probes": 5}}

    outcome = record.handler({"call": call, "result": answer}, context)

    assert (outcome["status"], outcome["output"]) == ("pass", {"probes": 5})
    events = [e for e in cloud.events(hooked["deployment"]["deployment_id"]) if e["stage"] == "RunStepHooks"]
    assert [(e["status"], e["detail"]["output"], e["detail"]["verdict"]) for e in events] == [
        ("succeeded", {"probes": 5}, "pass")
    ]


def test_record_hook_raises_on_a_timed_out_hook_and_records_it_failed(
    cloud: Cloud, hooked: dict[str, Any], handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    (call,) = _traffic(handlers, context, hooked)["traffic"]["hooks"]
    record = StageHandler(load_function("rollout"), "RecordHook")

    with pytest.raises(HookFailedError, match=r"hook 'smoke' \(hello-smoke:\$LATEST\) at 10% traffic .* 600 s"):
        record.handler({"call": call, "failure": {"Error": "States.Timeout", "Cause": None}}, context)

    events = [e for e in cloud.events(hooked["deployment"]["deployment_id"]) if e["stage"] == "RunStepHooks"]
    assert [e["status"] for e in events] == ["failed"]
