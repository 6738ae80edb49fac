"""What an operator's tools (the CLI) do through the library's adapters: push and register, list and read the
bucket, describe and stop executions, read logs, redrive a queue, tell who calls. Against moto, in process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
from boto3.session import Session
from botocore.stub import Stubber
from conveyor.adapters import aws
from conveyor.adapters.logs import CloudWatchLogs
from conveyor.adapters.s3 import S3Artifacts
from conveyor.adapters.sqs import SqsQueue
from conveyor.adapters.stepfunctions import StepFunctionsExecutions
from conveyor.adapters.sts import caller_arn

from tests.fakes import make_bundle, pipeline_yaml
from tests.functional.conftest import BUCKET, REGION, Cloud

SECOND_PAGE_REQUEST = {
    "logGroupName": "/aws/lambda/f",
    "startTime": int(datetime(2026, 12, 5, tzinfo=UTC).timestamp() * 1000),
    "endTime": int(datetime(2026, 12, 5, 1, tzinfo=UTC).timestamp() * 1000),
    "filterPattern": '"d-1"',
    "nextToken": "t1",
}


def _session() -> Session:
    return Session(region_name=REGION)


def test_a_pushed_bundle_and_a_registered_spec_are_stored_encrypted_and_listed(cloud: Cloud) -> None:
    # Given the artifact bucket, through the library's adapter
    artifacts = S3Artifacts(_session())
    bundle = make_bundle("hello", "2.0.0")

    # When a bundle is pushed and a spec registered twice
    pushed = artifacts.put_bundle(BUCKET, "artifacts/hello/2.0.0.zip", bundle)
    first = artifacts.put_pipeline(BUCKET, "hello", pipeline_yaml().encode())
    second = artifacts.put_pipeline(BUCKET, "hello", pipeline_yaml().encode() + b"\n# again\n")

    # Then each is stored SSE-S3, with the version id and ETag its event will name
    head = cloud.s3.head_object(Bucket=BUCKET, Key=pushed.key)
    assert (head["VersionId"], head["ETag"], head["ServerSideEncryption"]) == (pushed.version_id, pushed.etag, "AES256")
    assert artifacts.head(BUCKET, pushed.key).version_id == pushed.version_id
    assert cloud.s3.head_object(Bucket=BUCKET, Key="pipelines/hello.yaml")["ContentType"] == "application/yaml"
    # And the listing names what is current, the version listing every registration, each readable as it was
    assert [stored.key for stored in artifacts.listed(BUCKET, "artifacts/")] == ["artifacts/hello/2.0.0.zip"]
    versions = {stored.version_id: stored for stored in artifacts.pipeline_versions(BUCKET, "hello")}
    assert set(versions) == {first.version_id, second.version_id}
    assert artifacts.read_version(BUCKET, versions[first.version_id]) == pipeline_yaml().encode()
    assert all(stored.last_modified is not None for stored in versions.values())


def test_executions_are_described_found_running_and_stopped_with_their_error_and_cause(cloud: Cloud) -> None:
    # Given a state machine whose execution waits
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = json.dumps({"StartAt": "Bake", "States": {"Bake": {"Type": "Wait", "Seconds": 3600, "End": True}}})
    machine = sfn.create_state_machine(name="m", roleArn=cloud.role_arn, definition=definition)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name="e1", input='{"app": "hello"}')["executionArn"]
    executions = StepFunctionsExecutions(_session())

    # When an operator's tool describes it, finds the running ones and stops it
    described = executions.describe(arn)
    running = list(executions.running(machine, limit=10))
    executions.stop(arn, error="Conveyor.Aborted", cause="by alice")

    # Then it is seen as it is: running with its input, then ABORTED with the error and cause given
    assert (described.status, described.name, described.input) == ("RUNNING", "e1", '{"app": "hello"}')
    assert described.state_machine_arn == machine
    assert [execution.execution_arn for execution in running] == [arn]
    stopped = executions.describe(arn)
    assert stopped.status == "ABORTED"
    assert stopped.stopped_at is not None
    assert json.loads(executions.definition(machine)) == json.loads(definition)


def test_a_function_s_log_events_naming_a_deployment_are_read(cloud: Cloud) -> None:
    # Given a function's log group holding more events than one page, some naming the deployment
    logs = boto3.client("logs", region_name=REGION)
    group = "/aws/lambda/conveyor-Rollout"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = datetime.now(UTC)
    millis = int(now.timestamp() * 1000)
    messages = [f"deploying d-42 step {n}" if n % 2 == 0 else f"other d-7 step {n}" for n in range(30)]
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": millis + n, "message": message} for n, message in enumerate(messages)],
    )

    # When the events naming d-42 are read
    reader = CloudWatchLogs(_session())
    found = list(
        reader.function_events(
            "conveyor-Rollout", start=now - timedelta(minutes=1), end=now + timedelta(minutes=1), text="d-42"
        )
    )

    # Then all of them, and only them
    assert [event["message"] for event in found] == [m for m in messages if "d-42" in m]


def test_log_events_are_read_page_after_page_until_no_token_is_left() -> None:
    session = Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(aws.client(session, "logs")) as stub:
        stub.add_response("filter_log_events", {"events": [{"message": "a"}], "nextToken": "t1"})
        stub.add_response("filter_log_events", {"events": [{"message": "b"}]}, expected_params=SECOND_PAGE_REQUEST)
        start = datetime(2026, 12, 5, tzinfo=UTC)
        found = list(
            CloudWatchLogs(session).function_events("f", start=start, end=start + timedelta(hours=1), text="d-1")
        )
    assert [event["message"] for event in found] == ["a", "b"]


def test_a_queue_is_read_and_emptied_message_by_message(cloud: Cloud) -> None:
    # Given a queue holding three messages
    for n in range(3):
        cloud.sqs.send_message(QueueUrl=cloud.queue_url, MessageBody=f"m{n}")
    queue = SqsQueue(_session(), cloud.queue_url)

    # When each received message is deleted
    received = []
    while batch := queue.receive():
        for message in batch:
            received.append(message.body)
            queue.delete(message)

    # Then all three were read once, and the queue is empty
    assert sorted(received) == ["m0", "m1", "m2"]
    assert queue.receive() == []


def test_the_caller_is_named_by_its_aws_identity(cloud: Cloud) -> None:
    assert caller_arn(_session()).startswith("arn:aws:")
