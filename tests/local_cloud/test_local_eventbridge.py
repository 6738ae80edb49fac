"""S3 -> EventBridge -> Step Functions on the local cloud, as on AWS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from local_cloud_support import wait_for

from conveyor_local.moto_patches import events, registry


def _executions(aws: Callable[[str], Any], machine_arn: str) -> list[dict[str, Any]]:
    return aws("stepfunctions").list_executions(stateMachineArn=machine_arn)["executions"]  # type: ignore[no-any-return]


def _input_of(aws: Callable[[str], Any], execution_arn: str) -> dict[str, Any]:
    return json.loads(aws("stepfunctions").describe_execution(executionArn=execution_arn)["input"])  # type: ignore[no-any-return]


def test_an_upload_starts_an_execution_with_the_event_as_input(
    local_cloud: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    # Given the bucket with EventBridge notifications and a rule on artifacts/ targeting the state machine
    bucket, machine = local_cloud["outputs"]["BucketName"], local_cloud["outputs"]["StateMachineArn"]
    before = {execution["executionArn"] for execution in _executions(aws, machine)}

    # When two bundles are uploaded
    keys = [f"artifacts/x/{uuid.uuid4().hex}.zip" for _ in range(2)]
    for key in keys:
        aws("s3").put_object(Bucket=bucket, Key=key, Body=b"bundle")

    # Then each starts its own uniquely named execution whose input is the S3 Object Created event
    def new_executions() -> list[dict[str, Any]]:
        return [e for e in _executions(aws, machine) if e["executionArn"] not in before]

    started = wait_for(lambda: len(found := new_executions()) == 2 and found)
    assert len({execution["name"] for execution in started}) == 2
    events = [_input_of(aws, execution["executionArn"]) for execution in started]
    assert sorted(event["detail"]["object"]["key"] for event in events) == sorted(keys)
    for event in events:
        assert event["source"] == "aws.s3"
        assert event["detail-type"] == "Object Created"
        assert event["detail"]["bucket"]["name"] == bucket
        assert event["time"].endswith("Z")
        uuid.UUID(event["id"])
    assert events[0]["id"] != events[1]["id"]

    # And the executions run to completion (the Lambda task ran, the scaled Wait elapsed)
    for execution in started:
        described = wait_for(
            lambda arn=execution["executionArn"]: (
                d if (d := aws("stepfunctions").describe_execution(executionArn=arn))["status"] != "RUNNING" else None
            )
        )
        assert described["status"] == "SUCCEEDED", described


def test_an_upload_outside_the_pattern_starts_nothing(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given the rule only matches keys under artifacts/
    bucket, machine = local_cloud["outputs"]["BucketName"], local_cloud["outputs"]["StateMachineArn"]
    marker = f"releases/{uuid.uuid4().hex}.zip"

    # When something else is uploaded
    aws("s3").put_object(Bucket=bucket, Key=marker, Body=b"x")

    # Then no execution sees it (delivery happens inside the PutObject call, so there is nothing to wait for)
    keys = [_input_of(aws, e["executionArn"])["detail"]["object"]["key"] for e in _executions(aws, machine)]
    assert marker not in keys


def test_a_named_lambda_error_is_caught_by_the_asl(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given the ASL catches HealthCheckFailedError from the probe task
    machine = local_cloud["outputs"]["StateMachineArn"]

    # When the probe is told to fail
    arn = aws("stepfunctions").start_execution(
        stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps({"detail": {"object": {"key": "fail"}}})
    )["executionArn"]

    # Then the execution takes the Catch path and still succeeds
    described = wait_for(
        lambda: d if (d := aws("stepfunctions").describe_execution(executionArn=arn))["status"] != "RUNNING" else None
    )
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["error"]["Error"] == "HealthCheckFailedError"


def test_a_lambda_target_is_invoked_with_the_event(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given a rule on a custom source targeting the probe function
    name = local_cloud["outputs"]["ProbeFunctionName"]
    arn = aws("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    rule = f"probe-{uuid.uuid4().hex[:8]}"
    marker = f"lambda-target-{uuid.uuid4().hex}"
    aws("events").put_rule(Name=rule, EventPattern=json.dumps({"source": ["conveyor.test"]}))
    aws("events").put_targets(Rule=rule, Targets=[{"Id": "probe", "Arn": arn}])

    # When a matching event is put
    aws("events").put_events(
        Entries=[{"Source": "conveyor.test", "DetailType": "Probe", "Detail": json.dumps({"action": marker})}]
    )

    # Then the function runs asynchronously with the whole event
    def delivered() -> dict[str, Any] | None:
        events = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        lines = [e["message"] for e in events if e["message"].startswith("probe event=") and marker in e["message"]]
        return json.loads(lines[0].removeprefix("probe event=")) if lines else None

    event = wait_for(delivered)
    assert event["source"] == "conveyor.test"
    assert event["detail-type"] == "Probe"
    assert event["detail"] == {"action": marker}


def test_an_input_transformer_parses_each_path_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given JSONPath's parser, counted, and the patch in place (as the server applies it)
    parses: list[str] = []
    jsonpath_parse = registry.resolve_dotted("jsonpath_ng.ext.parser.parse")
    counted = lambda path, *rest: parses.append(path) or jsonpath_parse(path)  # noqa: E731
    monkeypatch.setitem(registry.ORIGINALS, events.INPUT_PATH_PARSE, counted)
    monkeypatch.setattr(registry.resolve_dotted("jsonpath_ng.ext"), "parse", events.parse_input_path)
    field = f"app{uuid.uuid4().hex[:6]}"
    template_parser = registry.resolve_dotted("moto.events.utils.EventTemplateParser")
    event = {"detail": {field: "orders"}, "ingestion-time": 0}

    # When three events go through a rule's input transformer
    delivered = [template_parser.parse('{"app": "<app>"}', {"app": f"$.detail.{field}"}, event) for _ in range(3)]

    # Then its path was parsed once and each event got its value
    assert parses == [f"$.detail.{field}"]
    assert delivered == [{"app": "orders"}] * 3
