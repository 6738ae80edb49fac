"""A failed asynchronous invocation is retried as the function's event invoke config says (Lambda's
``MaximumRetryAttempts``), not always twice: a task-token hook sets 0, so a crashed hook never runs again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import lambda_backends

from conveyor_local.moto_patches import awslambda, registry

REGION = "us-east-1"
ACCOUNT = "123456789012"


@pytest.fixture
def function() -> Iterator[Any]:
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "*"}]}
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        lam.create_function(
            FunctionName="hook", Runtime="python3.11", Role=role, Handler="app.handler", Code={"ZipFile": b"x"}
        )
        yield lam


def _backend() -> Any:
    return lambda_backends[ACCOUNT][REGION]


def test_without_an_event_invoke_config_lambda_retries_twice(function: Any) -> None:
    backend = _backend()
    assert awslambda.async_retry_attempts(backend, backend.get_function("hook", None)) == 2


@pytest.mark.parametrize("attempts", [0, 1])
def test_the_event_invoke_configs_maximum_retry_attempts_is_how_often(function: Any, attempts: int) -> None:
    function.put_function_event_invoke_config(FunctionName="hook", MaximumRetryAttempts=attempts)
    backend = _backend()
    assert awslambda.async_retry_attempts(backend, backend.get_function("hook", None)) == attempts


class _Crashing:
    """A function whose every invocation ends in a function error, counting them."""

    function_name = "hook"

    def __init__(self) -> None:
        self.invocations = 0

    def invoke(self, body: Any, request_headers: dict[str, str], response_headers: dict[str, str]) -> bytes:
        self.invocations += 1
        response_headers["x-amz-function-error"] = "Unhandled"
        return b"{}"


@pytest.mark.parametrize(("retries", "runs"), [(0, 1), (1, 2), (2, 3)])
def test_a_crashing_asynchronous_invocation_runs_once_plus_its_retries(
    monkeypatch: pytest.MonkeyPatch, retries: int, runs: int
) -> None:
    monkeypatch.setitem(registry.STATE, "time_scale", 0.0)
    fn = _Crashing()
    awslambda._run_async(fn, b"{}", "hook", retries)
    assert fn.invocations == runs


def test_an_invocation_lambda_gave_up_on_goes_to_its_on_failure_queue(
    function: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function whose event invoke config sends failures to a queue (as the template's Reconcile does)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function.put_function_event_invoke_config(
        FunctionName="hook", MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": arn}}
    )
    backend = _backend()
    hook = backend.get_function("hook", None)
    assert awslambda.on_failure_destination(backend, hook) == arn

    # When an asynchronous invocation of it fails every time
    monkeypatch.setitem(registry.STATE, "time_scale", 0.0)
    crashing = _Crashing()
    crashing.function_arn = hook.function_arn  # type: ignore[attr-defined]
    awslambda._run_async(crashing, b'{"detail": {"status": "ABORTED"}}', "hook", 1, arn)

    # Then the queue holds Lambda's invocation record: why it gave up, the event, and the error
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"detail": {"status": "ABORTED"}}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert crashing.invocations == 2
