"""``abort_orphaned_execution``: a restarted local cloud ends an execution the dead one left RUNNING."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from local_cloud_support import wait_for
from moto import mock_aws

from conveyor_local import executions, moto_patches

REGION = "us-east-1"
HOLD = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 100000, "End": True}}}


@pytest.fixture
def patched_moto(tmp_path: Path) -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[arg-type]
        moto_patches.apply(moto_patches.Settings(endpoint_url="http://127.0.0.1:9", cache_dir=tmp_path / "cache"))
        try:
            yield
        finally:
            moto_patches.restore()


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


def _status_queue() -> str:
    queue_url = str(_client("sqs").create_queue(QueueName=f"status-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    queue_arn = _client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    _client("events").put_rule(Name="status", EventPattern=json.dumps({"source": ["aws.states"]}))
    _client("events").put_targets(Rule="status", Targets=[{"Id": "q", "Arn": queue_arn["QueueArn"]}])
    return queue_url


def _received(queue_url: str) -> list[dict[str, Any]]:
    messages = _client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


@pytest.mark.usefixtures("patched_moto")
def test_an_orphaned_execution_ends_aborted_with_the_cause_and_is_announced() -> None:
    # Given a RUNNING execution (as a restored snapshot holds it) and a rule on status changes
    queue_url = _status_queue()
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:*"}]}
    role = _client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument=json.dumps(policy))["Role"]["Arn"]
    machine = _client("stepfunctions").create_state_machine(name="hold", definition=json.dumps(HOLD), roleArn=role)
    arn = _client("stepfunctions").start_execution(stateMachineArn=machine["stateMachineArn"], name="orphan")[
        "executionArn"
    ]
    history = _client("stepfunctions").get_execution_history
    wait_for(lambda: any(event["type"] == "WaitStateEntered" for event in history(executionArn=arn)["events"]))
    execution = next(e for e in executions.running_executions() if e.exec_arn == arn)

    # When the restart path aborts it
    aborted = executions.abort_orphaned_execution(execution, "the local cloud restarted while it ran")

    # Then it is ABORTED with that cause, its history ends so, and the ABORTED status change is announced
    assert aborted is True
    described = _client("stepfunctions").describe_execution(executionArn=arn)
    assert described["status"] == "ABORTED"
    assert described["cause"] == "the local cloud restarted while it ran"
    assert history(executionArn=arn)["events"][-1]["type"] == "ExecutionAborted"
    statuses = [(event["detail"]["status"], event["detail"]["cause"]) for event in _received(queue_url)]
    assert statuses == [("RUNNING", None), ("ABORTED", "the local cloud restarted while it ran")]

    # And a second call changes nothing
    assert executions.abort_orphaned_execution(execution, "again") is False
    assert (
        _client("stepfunctions").describe_execution(executionArn=arn)["cause"]
        == "the local cloud restarted while it ran"
    )
