"""The local cloud logs every AWS request it serves, by service and operation, on the server side."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from local_cloud_support import wait_for

from conveyor_local import moto_patches
from conveyor_local.request_log import MOTO_NAMES, PATH, RequestLog, ServedRequest, read_requests
from conveyor_local.server import client_env


def _marked_client(local_cloud: dict[str, Any], service: str, app_id: str) -> Any:
    """A client whose requests carry ``app/<app_id>`` in their User-Agent, as the bench's do."""
    env = client_env(local_cloud)
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    ).client(service, endpoint_url=env["AWS_ENDPOINT_URL"], config=Config(user_agent_appid=app_id))


def _served(local_cloud: dict[str, Any], since: int, app_id: str | None = None) -> list[tuple[str, str]]:
    page = read_requests(local_cloud["endpoint"], since)
    assert page.complete
    return [(r.service, r.operation) for r in page.requests if app_id is None or r.app_id == app_id]


def test_each_protocol_is_logged_with_its_service_and_operation(local_cloud: dict[str, Any]) -> None:
    # Given a caller that names itself, and the log's position now
    app_id = f"test-{uuid.uuid4().hex[:8]}"
    since = read_requests(local_cloud["endpoint"]).next
    bucket, function = local_cloud["outputs"]["BucketName"], local_cloud["outputs"]["ProbeFunctionName"]

    # When it calls a REST-JSON, a JSON, a REST-XML and a query service
    _marked_client(local_cloud, "lambda", app_id).get_function_configuration(FunctionName=function)
    _marked_client(local_cloud, "dynamodb", app_id).list_tables()
    _marked_client(local_cloud, "s3", app_id).put_object(Bucket=bucket, Key=f"logged/{app_id}", Body=b"x")
    _marked_client(local_cloud, "sns", app_id).list_topics()
    _marked_client(local_cloud, "stepfunctions", app_id).list_state_machines()

    # Then each request is logged once, in order, under botocore's service name and the operation it named
    assert _served(local_cloud, since, app_id) == [
        ("lambda", "GetFunctionConfiguration"),
        ("dynamodb", "ListTables"),
        ("s3", "PutObject"),
        ("sns", "ListTopics"),
        ("stepfunctions", "ListStateMachines"),
    ]


def test_calls_step_functions_makes_itself_are_logged(local_cloud: dict[str, Any]) -> None:
    # Given an execution started by a caller that names itself
    app_id = f"test-{uuid.uuid4().hex[:8]}"
    sfn = _marked_client(local_cloud, "stepfunctions", app_id)
    since = read_requests(local_cloud["endpoint"]).next
    arn = sfn.start_execution(
        stateMachineArn=local_cloud["outputs"]["StateMachineArn"],
        name=uuid.uuid4().hex,
        input=json.dumps({"detail": {"object": {"key": "fail"}}}),
    )["executionArn"]

    # When it has run its Lambda task
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")

    # Then the Invoke that Step Functions sent is in the log, not marked as the caller's
    page = read_requests(local_cloud["endpoint"], since)
    invokes = [r for r in page.requests if (r.service, r.operation) == ("lambda", "Invoke")]
    assert len(invokes) == 1
    assert invokes[0].app_id is None
    ours = [(r.service, r.operation) for r in page.requests if r.app_id == app_id]
    assert ("stepfunctions", "StartExecution") in ours


def test_reading_the_log_is_not_logged(local_cloud: dict[str, Any]) -> None:
    # Given the log's position
    first = read_requests(local_cloud["endpoint"]).next

    # When it is read again with nothing else going on
    second = read_requests(local_cloud["endpoint"], first)

    # Then the read itself added nothing
    assert second.next == first
    assert second.requests == []


def test_a_full_log_drops_the_oldest_and_says_so() -> None:
    # Given a log that keeps two entries
    log = RequestLog(capacity=2)
    for operation in ("GetItem", "PutItem", "UpdateItem"):
        log.record("dynamodb", operation, None)

    # When everything since the start is asked for
    page = log.since(0)

    # Then the newest two come back and the page says one was dropped
    assert [r.operation for r in page.requests] == ["PutItem", "UpdateItem"]
    assert (page.first, page.next) == (1, 3)
    assert not page.complete
    assert log.since(1).complete


def test_an_unsigned_request_is_passed_on_but_not_logged() -> None:
    # Given the middleware in front of an app (moto's own /moto-api calls are unsigned)
    log = RequestLog()
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/moto-api/config", "wsgi.input": io.BytesIO(b"{}")}

    # When an unsigned request arrives
    log.middleware(app)(environ, lambda *_: None)

    # Then moto still gets it, and the log stays empty
    assert seen == ["/moto-api/config"]
    assert log.since(0).requests == []


def test_a_since_that_is_not_a_number_is_refused() -> None:
    # Given the log's endpoint
    log = RequestLog()
    log.record("s3", "GetObject", None)
    statuses: list[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": PATH, "QUERY_STRING": "since=abc"}

    # When it is asked for a page from "abc"
    body = b"".join(log.middleware(lambda *_: [])(environ, lambda status, headers: statuses.append(status)))

    # Then it answers 400, naming the parameter
    assert statuses == ["400 Bad Request"]
    assert b"since='abc'" in body


def test_a_page_round_trips_through_json() -> None:
    # Given a recorded request
    log = RequestLog()
    log.record("lambda", "PublishVersion", "conveyor-bench")

    # When the page is served and parsed back
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": PATH, "QUERY_STRING": "since=0"}
    body = b"".join(log.middleware(lambda *_: [])(environ, lambda *_: None))

    # Then the reader sees what was recorded
    assert json.loads(body)["requests"] == [
        ServedRequest(sequence=0, service="lambda", operation="PublishVersion", app_id="conveyor-bench").model_dump()
    ]


def test_the_moto_names_the_log_relies_on_are_registered_seams() -> None:
    assert set(MOTO_NAMES) <= set(moto_patches.SEAMS)
