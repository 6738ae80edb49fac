"""What one deployment costs in AWS API calls (issue 9): a two-environment all-at-once release, every
stage run as the state machine chains them, each botocore call the stages make counted by service.

The budget is the issue's: at most 60 calls in all, and Lambda control-plane calls no more than the
minimum safe sequence's 8 (per environment: update code, publish, update alias, plus the read that
proves the function is managed) plus 4. On AWS the control plane is the binding quota (15 requests/s
per account and Region), so a stage that starts reading an alias twice fails here, not in a bill.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from typing import Any

import pytest
from botocore.client import BaseClient
from conveyor import runtime
from conveyor.domain.ports import Invocation

from tests.fakes import pipeline_yaml
from tests.fakes.builders import DEFAULT_SPEC
from tests.functional.conftest import (
    EXECUTION_ARN,
    STARTED_AT,
    TAG_KEY,
    Cloud,
    FakeLambdaContext,
    _function_zip,
    environment_step,
    load_handler,
)
from tests.functional.test_rollout import ProgrammedInvoke

CALL_BUDGET = 60
SAFE_SEQUENCE_CONTROL_PLANE = 8
# Lambda calls that are not control plane: the synthetic health check's invocations of the new version.
DATA_PLANE = {"Invoke"}


class CallCounter:
    def __init__(self) -> None:
        self.by_stage: dict[str, Counter[str]] = defaultdict(Counter)
        self.stage: str | None = None

    def total(self) -> Counter[str]:
        return sum(self.by_stage.values(), Counter())

    def describe(self) -> str:
        return "\n".join(f"{stage}: {dict(calls)}" for stage, calls in self.by_stage.items())


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> CallCounter:
    counted = CallCounter()
    original = BaseClient._make_api_call

    def count(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if counted.stage is not None:
            counted.by_stage[counted.stage][f"{self.meta.service_model.endpoint_prefix}:{operation_name}"] += 1
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", count)
    return counted


def _second_environment(cloud: Cloud) -> str:
    """A production function beside the fixture's staging one, serving version 1 through ``live``."""
    cloud.lambda_.create_function(
        FunctionName="hello-production",
        Runtime="python3.11",
        Role=cloud.role_arn,
        Handler="app.handler",
        Code={"ZipFile": _function_zip()},
        Tags={TAG_KEY: "true"},
    )
    version = cloud.lambda_.publish_version(FunctionName="hello-production")["Version"]
    cloud.lambda_.create_alias(FunctionName="hello-production", Name="live", FunctionVersion=version)
    staging = copy.deepcopy(DEFAULT_SPEC["environments"][0])
    production = copy.deepcopy(staging) | {"name": "production"}
    production["target"]["function_name"] = "hello-production"
    return pipeline_yaml(environments=[staging, production])


def test_a_two_environment_release_stays_within_the_call_budget(
    cloud: Cloud, context: FakeLambdaContext, counter: CallCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a two-environment all-at-once pipeline whose synthetic check answers well
    cloud.put_pipeline(_second_environment(cloud))
    answer = ProgrammedInvoke(Invocation({"status": "ok"}, None, "2", 3.0))
    monkeypatch.setattr(runtime, "targets", lambda: answer)

    def run(stage: str, event: dict[str, Any]) -> Any:
        counter.stage = stage
        try:
            return load_handler(stage).handler(event, context)
        finally:
            counter.stage = None

    # When a release goes through every stage to Finalize, environment after environment
    event = cloud.event_for(cloud.put_bundle(version="1.0.0"), key="artifacts/hello/1.0.0.zip")
    request = {"event": event, "execution_arn": EXECUTION_ARN, "started_at": STARTED_AT}
    run("claim_deployment", request)
    state = {**event, "deployment": run("validate_artifact", request)}
    results, locked = [], []
    for index in range(2):
        step = environment_step(state, index)
        step["lock"] = run("acquire_lock", step)  # and the gates, asked in the same call once the lock is held
        assert step["lock"]["gate"]["decision"] == "open"
        step["release"] = run("deploy", step)
        step["traffic"] = run("shift_traffic", step)
        step["health"] = run("evaluate_health", step)
        assert step["traffic"]["complete"]
        assert step["health"]["status"] == "pass"
        results.append({"release": step["release"], "traffic": step["traffic"], "health": step["health"]})
        locked.append(step["lock"]["target"])
    assert run("finalize", {"deployment": state["deployment"], "environments": results})["outcome"] == "SUCCEEDED"
    # (with every lock it took free again and no queue left behind)
    for target in locked:
        held, queue = runtime.locks().read(target)
        assert (held is None or held.holder is None, queue) == (True, [])

    # Then it costs no more calls than the budget, and the Lambda control plane no more than the safe sequence + 4
    # (the synthetic check's invocations count too: ProgrammedInvoke answers them without a botocore call)
    counter.by_stage["evaluate_health"]["lambda:Invoke"] += len(answer.invoked)
    total = counter.total()
    control_plane = sum(n for call, n in total.items() if call.startswith("lambda:") and call[7:] not in DATA_PLANE)
    assert sum(total.values()) <= CALL_BUDGET, counter.describe()
    assert control_plane <= SAFE_SEQUENCE_CONTROL_PLANE + 4, counter.describe()
