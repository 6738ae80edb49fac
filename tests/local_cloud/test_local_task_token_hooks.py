"""Task-token hooks on the local cloud: a user Lambda invoked asynchronously by ``lambda:invoke.waitForTaskToken``
answers from its own worker process (SendTaskSuccess/Failure/Heartbeat), and the state's ``TimeoutSecondsPath``
and ``HeartbeatSecondsPath`` end a silent hook with ``States.Timeout``/``States.HeartbeatTimeout``, as on AWS."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from local_cloud_support import wait_for

Aws = Callable[[str], Any]

#: The hook: does what ``mode`` says with its token, and journals each run in a queue (one message per run).
HOOK_CODE = """
import json, os, time
import boto3

def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=event["journal"], MessageBody=context.aws_request_id)
    sfn, token, mode = boto3.client("stepfunctions"), event["task_token"], event["mode"]
    if mode == "succeed":
        sfn.send_task_success(taskToken=token, output=json.dumps({"status": "pass", "output": {"rows": 3}}))
    elif mode == "fail":
        sfn.send_task_failure(taskToken=token, error="SchemaLockedError", cause="the table is locked")
    elif mode == "heartbeat":  # keeps the state alive past its heartbeat window several times, then answers
        for _ in range(event["beats"]):
            sfn.send_task_heartbeat(taskToken=token)
            time.sleep(event["beat_seconds"])
        sfn.send_task_success(taskToken=token, output=json.dumps({"status": "pass", "beats": event["beats"]}))
    # "silent": answers nothing
"""


def _machine(aws: Aws, function: str) -> str:
    definition = {
        "StartAt": "InvokeHook",
        "States": {
            "InvokeHook": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": function,
                    "InvocationType": "Event",
                    "Payload": {
                        "task_token.$": "$$.Task.Token",
                        "mode.$": "$.mode",
                        "journal.$": "$.journal",
                        "beats.$": "$.beats",
                        "beat_seconds.$": "$.beat_seconds",
                    },
                },
                "TimeoutSecondsPath": "$.timeout_seconds",
                "HeartbeatSecondsPath": "$.heartbeat_seconds",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Failed"}],
                "End": True,
            },
            "Failed": {"Type": "Pass", "OutputPath": "$.failure", "End": True},
        },
    }
    role = _role(aws)
    name = f"hook-{uuid.uuid4().hex[:8]}"
    created = aws("stepfunctions").create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)
    return str(created["stateMachineArn"])


def _role(aws: Aws) -> str:
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:*"}]}
    name = f"hook-role-{uuid.uuid4().hex[:8]}"
    return str(aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _hook(aws: Aws) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HOOK_CODE)
    name = f"token-hook-{uuid.uuid4().hex[:8]}"
    aws("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=_role(aws),
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        Timeout=60,
    )
    return name


@pytest.fixture
def run(aws: Aws) -> Callable[..., tuple[dict[str, Any], int]]:
    """Run the one-state machine with ``mode``; returns (execution, how many times the hook ran)."""
    function = _hook(aws)
    machine = _machine(aws, function)

    def execute(mode: str, *, timeout: int = 900, heartbeat: int = 900, beats: int = 0, beat_seconds: float = 0) -> Any:
        journal = aws("sqs").create_queue(QueueName=f"journal-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        payload = {
            "mode": mode,
            "journal": journal,
            "timeout_seconds": timeout,
            "heartbeat_seconds": heartbeat,
            "beats": beats,
            "beat_seconds": beat_seconds,
        }
        arn = aws("stepfunctions").start_execution(
            stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(payload)
        )["executionArn"]
        ended = wait_for(
            lambda: (d := aws("stepfunctions").describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
            timeout=60,
        )
        runs = int(
            aws("sqs").get_queue_attributes(QueueUrl=journal, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        return ended, runs

    return execute


def test_a_hook_invoked_asynchronously_answers_its_token_from_its_worker(run: Callable[..., Any]) -> None:
    ended, runs = run("succeed")
    assert ended["status"] == "SUCCEEDED"
    assert json.loads(ended["output"]) == {"status": "pass", "output": {"rows": 3}}
    assert runs == 1


def test_a_hook_that_reports_failure_fails_the_state_with_its_error_and_cause(run: Callable[..., Any]) -> None:
    ended, runs = run("fail")
    assert json.loads(ended["output"]) == {"Error": "SchemaLockedError", "Cause": "the table is locked"}
    assert runs == 1


def test_a_silent_hook_times_out_on_the_states_scaled_timeout(run: Callable[..., Any]) -> None:
    # 300 s on the 0.01 time scale: 3 s, with no heartbeat window shorter than the timeout
    ended, runs = run("silent", timeout=300, heartbeat=300)
    assert json.loads(ended["output"])["Error"] == "States.Timeout"
    assert runs == 1


def test_a_hook_that_stops_sending_heartbeats_ends_in_a_heartbeat_timeout(run: Callable[..., Any]) -> None:
    # A 900 s timeout, a 100 s heartbeat window (1 s on the local scale), and a hook that never beats
    ended, _ = run("silent", timeout=900, heartbeat=100)
    assert json.loads(ended["output"])["Error"] == "States.HeartbeatTimeout"


def test_heartbeats_keep_a_hook_alive_past_its_heartbeat_window(run: Callable[..., Any]) -> None:
    # A 300 s heartbeat window (3 s scaled) and a hook that beats at least every 0.1 s for 40 beats: it outlives
    # the window (each sleep is at least 0.1 s) and answers in time unless a single beat comes 3 s late
    ended, runs = run("heartbeat", timeout=900, heartbeat=300, beats=40, beat_seconds=0.1)
    assert ended["status"] == "SUCCEEDED", ended
    assert json.loads(ended["output"]) == {"status": "pass", "beats": 40}
    assert runs == 1


def test_the_token_of_a_task_already_answered_is_refused(aws: Aws) -> None:
    # Given a task whose token went out on a queue, answered, and its execution ended
    sfn, sqs = aws("stepfunctions"), aws("sqs")
    queue = sqs.create_queue(QueueName=f"tokens-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name=f"ask-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=_role(aws)
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name=uuid.uuid4().hex, input="{}")["executionArn"]
    token = wait_for(
        lambda: next(
            (json.loads(m["Body"])["token"] for m in sqs.receive_message(QueueUrl=queue).get("Messages", [])), None
        ),
        timeout=60,
    )
    sfn.send_task_success(taskToken=token, output=json.dumps({"decision": "approve"}))
    assert wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED", timeout=60)

    # When a second answer comes with the same token (a late or racing decision), Then it is refused, both ways
    for answer in (
        lambda: sfn.send_task_failure(taskToken=token, error="Rejected", cause="too late"),
        lambda: sfn.send_task_success(taskToken=token, output="{}"),
    ):
        with pytest.raises(ClientError) as refused:
            answer()
        assert refused.value.response["Error"]["Code"] == "InvalidToken"
    assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
