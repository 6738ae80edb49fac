"""An injected SNS or DynamoDB fault answers as the service does (its error code, in its protocol), so a client
reads it as that error: an SNS fault had been a 500 with an HTML body ("invalid XML received")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conveyor_local.faults import write_plan


@pytest.fixture
def plan(local_cloud: dict[str, Any]) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    state_dir = Path(local_cloud["state_dir"])
    yield lambda rules: write_plan(state_dir, rules)
    write_plan(state_dir, [])


def test_an_sns_fault_is_the_error_code_it_names(aws: Callable[[str], Any], plan: Callable[..., None]) -> None:
    topic = aws("sns").create_topic(Name="fault-check")["TopicArn"]
    plan([{"id": "sns-down", "operation": "*", "topic": topic, "error": "InternalError", "times": 100}])
    with pytest.raises(ClientError) as raised:  # (after the SDK's own retries of a 500)
        aws("sns").publish(TopicArn=topic, Message="m")
    assert raised.value.response["Error"]["Code"] == "InternalError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    plan([])
    assert aws("sns").publish(TopicArn=topic, Message="m")["MessageId"]


def test_a_lambda_invoke_fault_is_the_error_code_it_names(
    local_cloud: dict[str, Any], aws: Callable[[str], Any], plan: Callable[..., None]
) -> None:
    function = local_cloud["outputs"]["ProbeFunctionName"]
    plan(
        [{"id": "invoke-down", "operation": "Invoke", "function": function, "error": "ServiceException", "times": 100}]
    )
    with pytest.raises(ClientError) as raised:  # (after the SDK's own retries of a 500)
        aws("lambda").invoke(FunctionName=function, Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ServiceException"
    plan([])
    assert aws("lambda").invoke(FunctionName=function, Payload=b"{}")["StatusCode"] == 200
