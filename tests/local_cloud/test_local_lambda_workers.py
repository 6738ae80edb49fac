"""Lambda code runs for real in worker processes of the local cloud."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from local_cloud_support import invoke, wait_for


def test_a_handler_return_value_comes_back(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given the provisioned probe function
    name = local_cloud["outputs"]["ProbeFunctionName"]

    # When it is invoked
    payload, response = invoke(aws("lambda"), name, {"action": "echo", "n": 1})

    # Then the handler's return value is the payload, with the layer importable and a real context
    assert "FunctionError" not in response
    assert payload["event"] == {"action": "echo", "n": 1}
    assert payload["greeting"] == "hello from the layer"
    context = payload["context"]
    assert context["function_name"] == name
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"].endswith(f":function:{name}")
    assert context["memory_limit_in_mb"] == 256
    assert 0 < context["remaining_ms"] <= 3000
    assert response["ExecutedVersion"] == "$LATEST"


def test_a_handler_exception_is_a_named_function_error(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # When the probe raises its named exception
    payload, response = invoke(aws("lambda"), local_cloud["outputs"]["ProbeFunctionName"], {"action": "fail"})

    # Then Lambda reports a function error named after the exception class
    assert response["FunctionError"]
    assert payload["errorType"] == "HealthCheckFailedError"
    assert payload["errorMessage"] == "unhealthy"
    assert any("app.py" in frame for frame in payload["stackTrace"])
    assert not any("conveyor_local" in frame for frame in payload["stackTrace"])


def test_template_environment_and_endpoint_reach_the_handler(
    local_cloud: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    # When the probe reports its environment
    wanted = ["GREETING", "BUCKET", "REGION_AND_STACK", "AWS_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME", "_HANDLER"]
    payload, _ = invoke(aws("lambda"), local_cloud["outputs"]["ProbeFunctionName"], {"env": wanted})

    # Then Globals and function variables are resolved and the SDK points at the local cloud
    assert payload["env"] == {
        "GREETING": "hi",
        "BUCKET": local_cloud["outputs"]["BucketName"],
        "REGION_AND_STACK": "us-east-1/conveyor",
        "AWS_ENDPOINT_URL": local_cloud["endpoint"],
        "AWS_LAMBDA_FUNCTION_NAME": local_cloud["outputs"]["ProbeFunctionName"],
        "_HANDLER": "app.handler",
    }


def test_the_function_timeout_is_enforced(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given a function with Timeout: 1
    name = local_cloud["outputs"]["SlowProbeFunctionName"]

    # When its handler would run far longer than that
    started = time.monotonic()
    payload, response = invoke(aws("lambda"), name, {"action": "sleep", "seconds": 600})
    elapsed = time.monotonic() - started

    # Then the invocation is cut off at the timeout with Lambda's error (not waited for: a bound, however
    # loaded the machine, rather than a window)
    assert response["FunctionError"]
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert elapsed < 600

    # And the next invocation gets a fresh, working environment
    payload, response = invoke(aws("lambda"), name, {"action": "echo"})
    assert "FunctionError" not in response


def test_cold_start_then_warm_reuse(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given a function nothing else invokes
    name = local_cloud["outputs"]["ColdProbeFunctionName"]

    # When it is invoked twice in a row
    first, _ = invoke(aws("lambda"), name, {"action": "echo"})
    second, _ = invoke(aws("lambda"), name, {"action": "echo"})

    # Then the second runs in the same (warm) worker process
    assert first["pid"] == second["pid"]
    # And only the first invocation's REPORT carries an Init Duration (a cold start)
    reports = _log_messages(aws, name, "REPORT")
    by_request = {line.split()[2]: line for line in reports}
    assert "Init Duration" in by_request[first["context"]["aws_request_id"]]
    assert "Init Duration" not in by_request[second["context"]["aws_request_id"]]


def test_invocation_logs_land_in_cloudwatch_logs(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given a unique marker
    name = local_cloud["outputs"]["ProbeFunctionName"]
    marker = f"marker-{uuid.uuid4().hex}"

    # When the handler prints it
    payload, _ = invoke(aws("lambda"), name, {"action": marker})

    # Then the line is in /aws/lambda/<name> between START and REPORT lines of that request
    request_id = payload["context"]["aws_request_id"]
    messages = wait_for(lambda: [m for m in _log_messages(aws, name, "") if request_id in m or marker in m])
    assert messages[0].startswith(f"START RequestId: {request_id}")
    assert f"probe action={marker}" in messages
    assert messages[-1].startswith(f"REPORT RequestId: {request_id}")


def _log_messages(aws: Callable[[str], Any], function_name: str, pattern: str) -> list[str]:
    logs = aws("logs")
    events = logs.filter_log_events(logGroupName=f"/aws/lambda/{function_name}")["events"]
    return [event["message"] for event in events if pattern in event["message"]]
