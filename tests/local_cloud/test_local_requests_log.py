"""The local cloud's request log counts the AWS API calls it serves, by caller, service and operation."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable
from typing import Any

from local_cloud_support import invoke

from conveyor_local import requests_log
from conveyor_local.requests_log import RequestCounts, RequestLog

Aws = Callable[[str], Any]
_SIGNED = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host"


def _environ(service: str, method: str = "POST", path: str = "/", **extra: Any) -> dict[str, Any]:
    return {
        "HTTP_AUTHORIZATION": _SIGNED.format(service=service),
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(b""),
        **extra,
    }


def test_each_protocol_names_its_operation() -> None:
    json_protocol = _environ("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.UpdateItem")
    body = b"Action=Publish&TopicArn=arn"
    query = _environ(
        "sns",
        CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": io.BytesIO(body)},
    )
    assert requests_log.operation_of("dynamodb", json_protocol) == "UpdateItem"
    assert requests_log.operation_of("sns", query) == "Publish"
    assert query["wsgi.input"].read() == body  # moto still reads the whole body after us
    lam = "/2015-03-31/functions/hello-staging"
    assert requests_log.operation_of("lambda", _environ("lambda", "POST", f"{lam}/invocations")) == "Invoke"
    assert requests_log.operation_of("lambda", _environ("lambda", "PUT", f"{lam}/aliases/live")) == "UpdateAlias"
    assert requests_log.operation_of("lambda", _environ("lambda", "GET", f"{lam}/aliases/live")) == "GetAlias"
    assert requests_log.operation_of("lambda", _environ("lambda", "POST", f"{lam}/versions")) == "PublishVersion"
    assert requests_log.operation_of("s3", _environ("s3", "GET", "/bucket/releases/a/b.zip")) == "GetObject"
    # one path, told apart by a required query-string member, whatever order the model lists them in
    listing = _environ("s3", "GET", "/bucket/releases/a/b.zip", QUERY_STRING="uploadId=7")
    assert requests_log.operation_of("s3", listing) == "ListParts"
    # and by a required header: a PUT of an object is PutObject, unless it names a source to copy
    assert requests_log.operation_of("s3", _environ("s3", "PUT", "/bucket/releases/a/b.zip")) == "PutObject"
    copy = _environ("s3", "PUT", "/bucket/releases/a/b.zip", HTTP_X_AMZ_COPY_SOURCE="/bucket/artifacts/a.zip")
    assert requests_log.operation_of("s3", copy) == "CopyObject"


def test_each_caller_is_named_from_its_user_agent() -> None:
    lambda_worker = "Boto3/1.43 md/Botocore#1.43 ua/2.1 os/linux exec-env/AWS_Lambda_python3.11 cfg/retry-mode#standard"
    bench_script = "Boto3/1.43 md/Botocore#1.43 ua/2.1 os/linux app/minimum-safe cfg/retry-mode#standard"
    assert requests_log.caller_of({"HTTP_USER_AGENT": lambda_worker}) == "lambda"
    assert requests_log.caller_of({"HTTP_USER_AGENT": f"Boto3/1.43 {requests_log.STATES_USER_AGENT}"}) == "states"
    assert requests_log.caller_of({"HTTP_USER_AGENT": bench_script}) == "app/minimum-safe"
    assert requests_log.caller_of({"HTTP_USER_AGENT": "aws-cli/2.17 md/Botocore#2.0"}) == "client"


def test_unsigned_requests_are_not_api_calls() -> None:
    log = RequestLog()
    app = log.middleware(lambda environ, start_response: [b""])
    app({"PATH_INFO": "/moto-api/config", "REQUEST_METHOD": "POST"}, lambda *args: None)
    assert log.counts().total == 0


def test_counts_are_exact_under_concurrent_requests() -> None:
    log = RequestLog()
    app = log.middleware(lambda environ, start_response: [b""])

    def hammer() -> None:
        for _ in range(500):
            app(_environ("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.GetItem"), lambda *args: None)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.counts().calls == {("client", "dynamodb", "GetItem"): 4000}


def test_snapshots_subtract_to_what_happened_between() -> None:
    earlier = RequestCounts({("client", "lambda", "Invoke"): 2}, cpu_seconds=10.25)
    later = RequestCounts({("client", "lambda", "Invoke"): 5, ("lambda", "dynamodb", "PutItem"): 1}, cpu_seconds=11.5)
    between = later.since(earlier)
    assert between.calls == {("client", "lambda", "Invoke"): 3, ("lambda", "dynamodb", "PutItem"): 1}
    assert between.cpu_seconds == 1.25
    assert between.total == 4
    assert between.by(service="lambda") == 3
    assert between.by(caller="lambda") == 1
    assert RequestCounts.from_json(between.to_json()) == between


def test_the_running_cloud_counts_a_client_call_and_the_calls_its_function_makes(
    local_cloud: dict[str, Any], aws: Aws
) -> None:
    # Given the log as it stands
    before = requests_log.read(local_cloud["endpoint"])

    # When a client invokes the probe, which writes one item to DynamoDB from inside its worker
    function = local_cloud["outputs"]["GatedProbeFunctionName"]
    payload, response = invoke(aws("lambda"), function, {"action": "mark", "marker": uuid.uuid4().hex})
    assert "FunctionError" not in response, payload

    # Then the invoke is the client's, the write is the function's
    after = requests_log.read(local_cloud["endpoint"])
    between = after.since(before)
    assert between.calls.get(("client", "lambda", "Invoke")) == 1
    assert between.calls.get(("lambda", "dynamodb", "PutItem")) == 1
    # And the local cloud's CPU (server and workers) is reported, and never goes back
    assert before.cpu_seconds > 0
    assert after.cpu_seconds >= before.cpu_seconds


def test_cpu_of_a_live_process_is_read_from_proc() -> None:
    import os

    from conveyor_local.workers import process_cpu_seconds

    busy = sum(i * i for i in range(200_000))  # make sure this process has used a few ticks
    assert busy > 0
    times = os.times()
    assert 0 < process_cpu_seconds(os.getpid()) <= times.user + times.system + 0.05
    assert process_cpu_seconds(2**22 + 1) == 0.0  # no such process
