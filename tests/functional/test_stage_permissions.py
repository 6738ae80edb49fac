"""Least privilege that still works: every DynamoDB and Lambda call a stage makes is one its role in template.yaml
grants (moto evaluates no IAM, so without this a narrowed policy would fail only on AWS).

Each handler runs as the state machine chains them, on moto, while every botocore API call is recorded
against the stage that made it; the calls are then checked against the template's statements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.client import BaseClient
from conveyor import runtime
from conveyor.domain.ports import Invocation

from tests.functional.conftest import (
    EXECUTION_ARN,
    STAGE_FUNCTIONS,
    STARTED_AT,
    Cloud,
    FakeLambdaContext,
    StageHandler,
    environment_step,
    load_handler,
)
from tests.functional.test_rollout import CANARY_SPEC, ProgrammedInvoke
from tests.unit.test_template_policies import TEMPLATE, granted_actions

# The template's function serving each stage (tests/functional/conftest.py STAGE_FUNCTIONS).
FUNCTIONS = {stage: f"{function.title()}Function" for stage, (function, _) in STAGE_FUNCTIONS.items()}
CHECKED_SERVICES = ("dynamodb", "lambda")
IAM_ACTION = {"lambda:Invoke": "lambda:InvokeFunction"}
# A transaction is authorized item by item, as the single-item action each of its parts is (there is no
# TransactWriteItems IAM action).
TRANSACT_PART_ACTION = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_actions(service: str, operation_name: str, api_params: dict[str, Any]) -> set[str]:
    """The IAM actions one API call needs."""
    if f"{service}:{operation_name}" == "dynamodb:TransactWriteItems":
        return {f"dynamodb:{TRANSACT_PART_ACTION[kind]}" for part in api_params["TransactItems"] for kind in part}
    action = f"{service}:{operation_name}"
    return {IAM_ACTION.get(action, action)}


class Recorder:
    def __init__(self) -> None:
        self.calls: dict[str, set[str]] = defaultdict(set)
        self.stage: str | None = None

    @contextmanager
    def running(self, stage: str) -> Iterator[None]:
        self.stage = stage
        try:
            yield
        finally:
            self.stage = None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorded = Recorder()
    original = BaseClient._make_api_call

    def record(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.endpoint_prefix
        if recorded.stage is not None and service in CHECKED_SERVICES:
            recorded.calls[recorded.stage].update(iam_actions(service, operation_name, api_params))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    return recorded


def run(recorder: Recorder, stage: str, event: dict[str, Any], context: FakeLambdaContext) -> Any:
    with recorder.running(stage):
        return load_handler(stage).handler(event, context)


def _alarm(cloud: Cloud, state: str) -> None:
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
    cloud.cloudwatch.set_alarm_state(AlarmName="hello-staging-errors", StateValue=state, StateReason="test")


def deploy_once(
    cloud: Cloud, recorder: Recorder, context: FakeLambdaContext, version: str, execution: str, *, approval: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Claim, validate, (ask for approval,) lock, deploy, then shift and judge until health fails or completes."""
    event = cloud.event_for(cloud.put_bundle(version=version), key=f"artifacts/hello/{version}.zip")
    request = {"event": event, "execution_arn": execution, "started_at": STARTED_AT}
    run(recorder, "claim_deployment", request, context)
    state = {**event, "deployment": run(recorder, "validate_artifact", request, context)}
    step = environment_step(state)
    if approval:  # what the RequestApproval task sends; the person's answer comes back through Step Functions
        run(recorder, "request_approval", {"kind": "approval", "task_token": "token-1", **step}, context)
    if not approval:  # CheckGates before the lock: the first release finds staging's alarm OK
        assert run(recorder, "check_gates", step, context)["decision"] == "open"
    step["lock"] = run(recorder, "acquire_lock", step, context)
    step["release"] = run(recorder, "deploy", step, context)
    while True:
        step["traffic"] = run(recorder, "shift_traffic", step, context)
        step["health"] = run(recorder, "evaluate_health", step, context)
        if step["health"]["status"] == "fail" or step["traffic"]["complete"]:
            return state, step


def test_every_call_a_stage_makes_is_granted_to_its_role(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a canary pipeline whose synthetic check answers well
    cloud.put_pipeline(CANARY_SPEC)
    monkeypatch.setattr(runtime, "targets", lambda: ProgrammedInvoke(Invocation({"status": "ok"}, None, "2", 3.0)))

    # When one release goes live (Finalize) ...
    _alarm(cloud, "OK")
    state, step = deploy_once(cloud, recorder, context, "1.0.0", EXECUTION_ARN, approval=False)
    results = [{"release": step["release"], "traffic": step["traffic"], "health": step["health"]}]
    run(recorder, "finalize", {"deployment": state["deployment"], "environments": results}, context)

    # ... and the next one, once a person was asked to approve it, fails its canary, is rolled back and reported
    _alarm(cloud, "ALARM")
    second = EXECUTION_ARN.replace("run-1", "run-2")
    state, step = deploy_once(cloud, recorder, context, "1.0.1", second, approval=True)
    assert step["health"]["status"] == "fail"
    step["rollback"] = run(recorder, "roll_back", step, context)
    failure = {"Error": "DeploymentRolledBackError", "Cause": "rolled back"}
    report = run(
        recorder,
        "notify_failure",
        {"execution_input": state, "execution_arn": second, "failure": failure, "started_at": STARTED_AT},
        context,
    )
    assert report["outcome"] == "ROLLED_BACK"

    # Then every stage ran, and each DynamoDB and Lambda call it made is granted to its role
    assert set(recorder.calls) == set(FUNCTIONS)
    missing = {
        function: sorted(call for call in recorder.calls[stage] if not _granted(call, granted_actions(function)))
        for stage, function in FUNCTIONS.items()
    }
    assert {function: calls for function, calls in missing.items() if calls} == {}, "called but not granted"


def _granted(action: str, granted: set[str]) -> bool:
    service = action.split(":", 1)[0]
    return action in granted or f"{service}:*" in granted


def test_the_template_is_the_one_checked() -> None:
    assert set(FUNCTIONS.values()) <= set(TEMPLATE["Resources"])
