"""The local cloud keeps its state across `local down`/`up` and a crash, and `--fresh` starts empty.

Each test runs its own local cloud in a subprocess (the session one must not be restarted), and
waits on what the cloud makes observable: the snapshot manifest's ``changes`` against the
``x-conveyor-local-change`` sequence number its responses carry, never a sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from local_cloud_support import FIXTURES, TIME_SCALE, invoke, wait_for

from conveyor_cli import main as cli
from conveyor_local.persistence import (
    CHANGE_HEADER,
    MANIFEST_FILE,
    RESTART_CAUSE,
    SNAPSHOT_DIR,
    SNAPSHOT_FILE,
    SnapshotManifest,
)
from conveyor_local.server import LocalCloudError, client_env, read_state, start_background, stop

TEMPLATE = FIXTURES / "template.yaml"


class Cloud:
    """One local cloud of a test, restartable on the same state dir."""

    def __init__(self, state_dir: Path, time_scale: float) -> None:
        self.state_dir = state_dir
        self.time_scale = time_scale
        self.state: dict[str, Any] = {}
        self._clients: dict[str, Any] = {}
        self.last_change = 0

    def up(self, *, fresh: bool = False) -> dict[str, Any]:
        self.state = start_background(
            port=0, template=TEMPLATE, state_dir=self.state_dir, time_scale=self.time_scale, fresh=fresh
        )
        self._clients.clear()
        return self.state

    def client(self, service: str) -> Any:
        if service not in self._clients:
            env = client_env(self.state)
            client = boto3.client(
                service,  # type: ignore[call-overload]
                endpoint_url=env["AWS_ENDPOINT_URL"],
                region_name=env["AWS_DEFAULT_REGION"],
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            )
            client.meta.events.register("after-call.*.*", self._remember_change)
            self._clients[service] = client
        return self._clients[service]

    def _remember_change(self, http_response: Any, **_: Any) -> None:
        sequence = http_response.headers.get(CHANGE_HEADER)
        if sequence is not None:
            self.last_change = max(self.last_change, int(sequence))

    def output(self, name: str) -> str:
        return str(self.state["outputs"][name])

    def manifest(self) -> SnapshotManifest | None:
        path = self.state_dir / SNAPSHOT_DIR / MANIFEST_FILE
        return SnapshotManifest.model_validate_json(path.read_bytes()) if path.exists() else None

    def wait_until_saved(self) -> SnapshotManifest:
        """Until a snapshot on disk holds every change this test's clients saw acknowledged."""
        wanted = self.last_change
        assert wanted > 0, "the test made no tracked change"

        def saved() -> SnapshotManifest | None:
            manifest = self.manifest()
            return manifest if manifest is not None and manifest.changes >= wanted else None

        manifest: SnapshotManifest = wait_for(saved, timeout=60)
        return manifest

    def crash(self) -> None:
        """SIGKILL the server alone, as a crash would (its workers see their stdin close and exit)."""
        pid = int(self.state["pid"])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), timeout=30)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (reaping it first: the server is this test process's child)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    restartable = Cloud(tmp_path / "state", TIME_SCALE)
    yield restartable
    stop(restartable.state_dir)


@pytest.fixture
def slow_cloud(tmp_path: Path) -> Iterator[Cloud]:
    """Waits last their written length (the fixture pipeline's Bake: 100 s), so an execution stays RUNNING."""
    restartable = Cloud(tmp_path / "state", 1.0)
    yield restartable
    stop(restartable.state_dir)


def _create_state(cloud: Cloud) -> dict[str, Any]:
    """A function version and alias, two versions of an object, a ledger item, a topic, a queue message,
    a rule, an alarm, a log line and a finished execution; returns what to look for afterwards."""
    function = cloud.output("ProbeFunctionName")
    lambda_ = cloud.client("lambda")
    version = lambda_.publish_version(FunctionName=function)["Version"]
    lambda_.create_alias(FunctionName=function, Name="live", FunctionVersion=version)
    lambda_.tag_resource(
        Resource=lambda_.get_function(FunctionName=function)["Configuration"]["FunctionArn"], Tags={"team": "payments"}
    )
    payload, _ = invoke(lambda_, f"{function}:live", {"action": "echo"})
    bucket = cloud.output("BucketName")
    s3 = cloud.client("s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="pipelines/app.yaml", Body=b"v1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="pipelines/app.yaml", Body=b"v2")
    table = cloud.client("dynamodb").list_tables()["TableNames"][0]
    cloud.client("dynamodb").put_item(
        TableName=table, Item={"pk": {"S": "deployment#1"}, "outcome": {"S": "SUCCEEDED"}}
    )
    topic = cloud.client("sns").create_topic(Name="notifications")["TopicArn"]
    queue = cloud.client("sqs").create_queue(QueueName="inbox")["QueueUrl"]
    cloud.client("sqs").send_message(QueueUrl=queue, MessageBody="hello")
    cloud.client("events").put_rule(Name="status-changes", EventPattern=json.dumps({"source": ["aws.states"]}))
    cloud.client("cloudwatch").put_metric_alarm(
        AlarmName="errors",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    sfn = cloud.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=cloud.output("StateMachineArn"),
        name="finished",
        input=json.dumps({"detail": {"object": {"key": "artifacts/app/1.zip"}}}),
    )["executionArn"]
    wait_for(lambda: sfn.describe_execution(executionArn=execution)["status"] == "SUCCEEDED", timeout=60)
    # A change made after the execution was seen to end: a snapshot holding it holds the end too.
    s3.put_object(Bucket=bucket, Key="marker", Body=b"after the execution ended")
    return {
        "function": function,
        "version": version,
        "worker_pid": payload["pid"],
        "bucket": bucket,
        "first_version": first,
        "table": table,
        "topic": topic,
        "queue": queue,
        "execution": execution,
    }


def _assert_state_is_back(cloud: Cloud, created: dict[str, Any]) -> None:
    # (before any new invocation: the metrics of the one before the restart)
    metrics = cloud.client("cloudwatch").list_metrics(Namespace="AWS/Lambda", MetricName="Invocations")["Metrics"]
    assert {"Name": "FunctionName", "Value": created["function"]} in [d for m in metrics for d in m["Dimensions"]]
    lambda_ = cloud.client("lambda")
    alias = lambda_.get_alias(FunctionName=created["function"], Name="live")
    assert alias["FunctionVersion"] == created["version"]
    assert lambda_.list_tags(Resource=alias["AliasArn"].rsplit(":", 1)[0])["Tags"]["team"] == "payments"
    payload, response = invoke(lambda_, f"{created['function']}:live", {"action": "echo"})
    assert response["ExecutedVersion"] == created["version"]
    assert payload["pid"] != created["worker_pid"], "workers are not state: they start cold"
    s3 = cloud.client("s3")
    assert s3.get_object(Bucket=created["bucket"], Key="pipelines/app.yaml")["Body"].read() == b"v2"
    older = s3.get_object(Bucket=created["bucket"], Key="pipelines/app.yaml", VersionId=created["first_version"])
    assert older["Body"].read() == b"v1"
    item = cloud.client("dynamodb").get_item(TableName=created["table"], Key={"pk": {"S": "deployment#1"}})
    assert item["Item"]["outcome"] == {"S": "SUCCEEDED"}
    assert cloud.client("sns").get_topic_attributes(TopicArn=created["topic"])["Attributes"]["TopicArn"]
    messages = cloud.client("sqs").receive_message(QueueUrl=created["queue"])["Messages"]
    assert [message["Body"] for message in messages] == ["hello"]
    assert cloud.client("events").describe_rule(Name="status-changes")["Name"] == "status-changes"
    assert [a["AlarmName"] for a in cloud.client("cloudwatch").describe_alarms(AlarmNames=["errors"])["MetricAlarms"]]
    log_events = cloud.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{created['function']}")["events"]
    assert any("probe action=echo" in event["message"] for event in log_events)
    sfn = cloud.client("stepfunctions")
    described = sfn.describe_execution(executionArn=created["execution"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"key": "artifacts/app/1.zip"}
    history = sfn.get_execution_history(executionArn=created["execution"])["events"]
    assert history[-1]["type"] == "ExecutionSucceeded"


def test_a_clean_restart_keeps_every_resource(cloud: Cloud) -> None:
    # Given a local cloud holding a function alias, object versions, a ledger item, messaging and an execution
    cloud.up()
    created = _create_state(cloud)

    # When it is stopped cleanly and started again
    assert stop(cloud.state_dir) is True
    restarted = cloud.up()

    # Then everything is back, and the start says what it restored
    _assert_state_is_back(cloud, created)
    restored = restarted["restored"]
    assert restored["restored"] is True
    assert restored["fresh"] is False
    assert restored["counts"]["aliases"] == 1
    assert restored["counts"]["object versions"] == 3, "two of pipelines/app.yaml, one marker"
    assert restored["counts"]["items"] == 1
    assert restored["counts"]["executions"] == 1
    assert restored["aborted_executions"] == []


def test_a_crash_keeps_what_was_acknowledged(cloud: Cloud) -> None:
    # Given a local cloud whose changes a snapshot on disk holds
    cloud.up()
    created = _create_state(cloud)
    cloud.wait_until_saved()

    # When the server is killed without a chance to save anything more, and started again
    cloud.crash()
    cloud.up()

    # Then everything is back
    _assert_state_is_back(cloud, created)


def _stack_inventory(cloud: Cloud) -> dict[str, Any]:
    """What provisioning the fixture template made, in the terms a duplicate would show up in."""
    lambda_ = cloud.client("lambda")
    functions = sorted(f["FunctionName"] for f in lambda_.list_functions()["Functions"])
    return {
        "layer versions": [
            v["Version"] for v in lambda_.list_layer_versions(LayerName="conveyor-ProbeLayer")["LayerVersions"]
        ],
        "function versions": {
            name: [v["Version"] for v in lambda_.list_versions_by_function(FunctionName=name)["Versions"]]
            for name in functions
        },
        "state machines": sorted(
            m["name"] for m in cloud.client("stepfunctions").list_state_machines()["stateMachines"]
        ),
        "rules": sorted(r["Name"] for r in cloud.client("events").list_rules()["Rules"]),
        "roles": sorted(r["RoleName"] for r in cloud.client("iam").list_roles()["Roles"]),
        "queues": sorted(url.rsplit("/", 1)[-1] for url in cloud.client("sqs").list_queues().get("QueueUrls", [])),
        "tables": cloud.client("dynamodb").list_tables()["TableNames"],
    }


def test_a_restart_provisions_over_the_restored_stack_without_duplicating_it(cloud: Cloud) -> None:
    # Given a local cloud that was provisioned once and then restarted
    first = cloud.up()
    before = _stack_inventory(cloud)
    stop(cloud.state_dir)

    # When the template is provisioned again over the restored state
    second = cloud.up()

    # Then it found every resource instead of creating another
    assert second["outputs"] == first["outputs"]
    assert _stack_inventory(cloud) == before
    assert second["restored"]["counts"]["functions"] == len(before["function versions"])


def test_an_execution_running_at_a_crash_ends_aborted_on_restart(slow_cloud: Cloud) -> None:
    # Given an execution waiting in its Bake state when the server is killed
    slow_cloud.up()
    sfn = slow_cloud.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=slow_cloud.output("StateMachineArn"),
        name="interrupted",
        input=json.dumps({"detail": {"object": {"key": "artifacts/app/2.zip"}}}),
    )["executionArn"]

    def baking() -> bool:
        events = sfn.get_execution_history(executionArn=execution)["events"]
        return any(event["type"] == "WaitStateEntered" for event in events)

    wait_for(baking, timeout=60)
    # And a rule that forwards the state machine's endings to a queue (as the reconciler's rule does to it)
    sqs, events = slow_cloud.client("sqs"), slow_cloud.client("events")
    queue = sqs.create_queue(QueueName="endings")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["ABORTED"], "stateMachineArn": [slow_cloud.output("StateMachineArn")]},
    }
    events.put_rule(Name="endings", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="endings", Targets=[{"Id": "queue", "Arn": queue_arn}])
    slow_cloud.client("s3").put_object(Bucket=slow_cloud.output("BucketName"), Key="marker", Body=b"x")
    slow_cloud.wait_until_saved()
    slow_cloud.crash()

    # When the cloud is started again
    restarted = slow_cloud.up()

    # Then the execution is not lost: it ended ABORTED, saying why, with its history kept
    sfn = slow_cloud.client("stepfunctions")
    described = sfn.describe_execution(executionArn=execution)
    assert described["status"] == "ABORTED"
    assert described["error"] == "States.Aborted"
    assert described["cause"] == RESTART_CAUSE
    assert "stopDate" in described
    events = sfn.get_execution_history(executionArn=execution)["events"]
    assert events[-1]["type"] == "ExecutionAborted"
    assert events[-1]["executionAbortedEventDetails"]["cause"] == RESTART_CAUSE
    assert any(event["type"] == "WaitStateEntered" for event in events)
    assert restarted["restored"]["aborted_executions"] == [execution]
    # and the restart's own snapshot holds the new status (a second crash does not make it RUNNING again)
    slow_cloud.client("s3").put_object(Bucket=slow_cloud.output("BucketName"), Key="marker", Body=b"y")
    slow_cloud.wait_until_saved()
    slow_cloud.crash()
    again = slow_cloud.up()
    assert again["restored"]["aborted_executions"] == []
    assert slow_cloud.client("stepfunctions").describe_execution(executionArn=execution)["status"] == "ABORTED"
    # And its ending was announced once (on the first restart), so Conveyor's reconciler restores traffic and
    # closes the ledger
    sqs = slow_cloud.client("sqs")
    queue = sqs.get_queue_url(QueueName="endings")["QueueUrl"]
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    assert len(received) == 1
    announced = json.loads(received[0]["Body"])
    assert (announced["detail"]["executionArn"], announced["detail"]["status"]) == (execution, "ABORTED")
    assert announced["detail"]["cause"] == RESTART_CAUSE


def test_fresh_starts_empty_and_says_so(cloud: Cloud) -> None:
    # Given a stopped local cloud with saved state
    cloud.up()
    bucket = cloud.output("BucketName")
    cloud.client("s3").put_object(Bucket=bucket, Key="pipelines/app.yaml", Body=b"v1")
    stop(cloud.state_dir)

    # When it is started with --fresh
    state = cloud.up(fresh=True)

    # Then nothing of before is there, and the start says it started empty on purpose
    assert state["restored"]["fresh"] is True
    assert state["restored"]["restored"] is False
    assert cloud.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_fresh_is_refused_while_the_cloud_runs(cloud: Cloud) -> None:
    # Given a running local cloud
    cloud.up()

    # When --fresh is asked of it, Then it is refused, naming what to do
    with pytest.raises(LocalCloudError, match=r"already running.*local down.*--fresh"):
        cloud.up(fresh=True)


def test_a_snapshot_from_another_moto_is_refused_with_what_to_do(cloud: Cloud) -> None:
    # Given a state dir whose snapshot cannot be read back
    snapshot = cloud.state_dir / SNAPSHOT_DIR / SNAPSHOT_FILE
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"not a pickle")

    # When the cloud starts, Then it fails naming the file and the way out
    with pytest.raises(LocalCloudError, match=r"(?s)state.pickle cannot be read back.*--fresh"):
        cloud.up()


def test_local_up_says_what_it_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the CLI's state dir, and a local cloud started, given an object, and stopped
    monkeypatch.setenv("CONVEYOR_STATE_DIR", str(tmp_path / "state"))
    up = ["local", "up", "--port", "0", "--template", str(TEMPLATE)]
    try:
        assert cli.main(up) == 0
        assert "started empty (no saved state)" in capsys.readouterr().out
        cloud = Cloud(tmp_path / "state", TIME_SCALE)
        cloud.state = read_state(cloud.state_dir)
        cloud.client("s3").put_object(Bucket=cloud.output("BucketName"), Key="pipelines/app.yaml", Body=b"v1")
        assert cli.main(["local", "down"]) == 0
        assert "local cloud stopped, its state saved" in capsys.readouterr().out

        # When it is started again, and then afresh
        assert cli.main(up) == 0
        restored = capsys.readouterr().out
        assert cli.main(["local", "down"]) == 0
        assert cli.main([*up, "--fresh"]) == 0
        fresh = capsys.readouterr().out
    finally:
        stop(tmp_path / "state")

    # Then the first says what came back, the second that it started empty on purpose
    assert re.search(r"restored \d+ functions", restored)
    assert "1 object versions" in restored
    assert "started empty (--fresh: any saved state was discarded)" in fresh
