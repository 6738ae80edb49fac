"""The pieces of the local cloud's persistence, in-process: pickling moto's state, the store, change tracking."""

from __future__ import annotations

import collections
import io
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from local_cloud_support import wait_for
from moto import mock_aws

from conveyor_local import moto_patches, persistence
from conveyor_local.persistence import (
    CHANGE_HEADER,
    RESTART_CAUSE,
    ChangeTracker,
    RestoreSummary,
    SnapshotManifest,
    SnapshotStore,
    Snapshotter,
)


def _round_trip(value: Any) -> Any:
    buffer = io.BytesIO()
    persistence._BackendPickler(buffer).dump(value)
    return persistence.pickle.loads(buffer.getvalue())


class _Holder:
    """Stands in for a moto model: an object graph with the kinds pickle refuses."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rlock = threading.RLock()
        self.condition = threading.Condition()
        self.event = threading.Event()
        self.event.set()
        self.items = {"a": _Item("a")}
        self.index: weakref.WeakValueDictionary[str, _Item] = weakref.WeakValueDictionary(self.items)
        self.aliases: collections.defaultdict[str, dict[str, str]] = collections.defaultdict(lambda: {})
        self.aliases["fn"]["live"] = "1"


class _Item:
    def __init__(self, name: str) -> None:
        self.name = name


def test_locks_weak_dicts_and_lambda_factories_come_back_usable() -> None:
    # Given an object graph holding what plain pickle refuses
    holder = _Holder()
    with holder.lock:
        # When it is pickled and loaded (while a lock is held, as a request thread might)
        restored = _round_trip(holder)

    # Then the locks come back new and released, the weak index still points at the (shared) items
    assert restored.lock.acquire(blocking=False)
    assert restored.rlock.acquire(blocking=False)
    with restored.condition:
        restored.condition.notify_all()
    assert restored.event.is_set()
    assert restored.index["a"] is restored.items["a"]
    # and the defaultdict keeps its items and still makes an empty dict for a new key
    assert restored.aliases["fn"] == {"live": "1"}
    assert restored.aliases["other"] == {}


def test_every_version_of_an_s3_key_survives() -> None:
    # Given moto's S3 key store with two versions of one key (its items() shows only the newest)
    store = moto_patches.resolve_dotted("moto.s3.utils._VersionedKeyStore")()
    store["pipelines/app.yaml"] = "v1"
    store["pipelines/app.yaml"] = "v2"

    # When it is pickled and loaded
    restored = _round_trip(store)

    # Then both versions are there, newest last
    assert restored.getlist("pipelines/app.yaml") == ["v1", "v2"]
    assert restored["pipelines/app.yaml"] == "v2"


@pytest.fixture
def moto_state() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


def test_a_captured_running_execution_installs_aborted_with_its_history(moto_state: None) -> None:
    # Given an execution waiting in a Wait state, a KMS key and a DynamoDB item, captured in one snapshot
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    definition = {"StartAt": "Bake", "States": {"Bake": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    machine = sfn.create_state_machine(name="m", roleArn=role, definition=json.dumps(definition))["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="e", input="{}")["executionArn"]
    history = lambda: sfn.get_execution_history(executionArn=execution)["events"]  # noqa: E731
    wait_for(lambda: any(event["type"] == "WaitStateEntered" for event in history()), timeout=30)
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    blob = persistence.capture()

    # When moto is emptied and the snapshot installed, and the orphans reconciled
    moto_patches.resolve_dotted("moto.core.base_backend.BackendDict").reset()
    persistence.install(blob, Path("state.pickle"))
    emitted: list[str] = []
    persistence.set_status_change_emitter(lambda e: emitted.append(e.exec_arn))
    try:
        orphans = persistence.abort_orphaned_executions()
        for orphan in orphans:
            persistence.emit_status_change(orphan)
    finally:
        persistence.set_status_change_emitter(None)

    # Then the execution is ABORTED with the restart as its cause, its history kept and closed
    described = sfn.describe_execution(executionArn=execution)
    assert (described["status"], described["error"], described["cause"]) == ("ABORTED", "States.Aborted", RESTART_CAUSE)
    events = history()
    assert [event["type"] for event in events][-2:] == ["WaitStateEntered", "ExecutionAborted"]
    assert emitted == [execution]
    # and a stop or a task token for it is answered as for an ended execution
    sfn.stop_execution(executionArn=execution)
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.send_task_success(taskToken="gone", output="{}")
    # and the KMS key (an RSA private key inside) still signs
    assert kms.sign(KeyId=key, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]


def test_emit_status_change_is_safe_without_or_with_a_failing_emitter(caplog: pytest.LogCaptureFixture) -> None:
    # Given an execution-like record
    execution = type("Execution", (), {"exec_arn": "arn:aws:states:us-east-1:1:execution:m:e"})()

    # When no emitter is plugged in, Then nothing raises and the miss is logged by ARN
    with caplog.at_level(logging.WARNING):
        assert persistence.emit_status_change(execution) is False
    assert "arn:aws:states:us-east-1:1:execution:m:e" in caplog.text

    # When the emitter fails, Then the restart goes on
    def failing(_: Any) -> None:
        raise RuntimeError("events unavailable")

    persistence.set_status_change_emitter(failing)
    try:
        assert persistence.emit_status_change(execution) is False
    finally:
        persistence.set_status_change_emitter(None)


def _manifest(generation: int) -> SnapshotManifest:
    return SnapshotManifest(
        moto_version="5.2.5", generation=generation, changes=generation, taken_at="2026-01-01T00:00:00Z", size_bytes=3
    )


def test_a_failed_write_leaves_the_previous_snapshot_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a store holding a snapshot
    store = SnapshotStore(tmp_path)
    store.write(b"old", _manifest(1))

    # When the next write fails before it is on disk
    def disk_full(_: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.write(b"new", _manifest(2))

    # Then the previous snapshot and manifest are whole, and no temp file is left behind
    assert store.read() == b"old"
    manifest = store.manifest()
    assert manifest is not None
    assert manifest.generation == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["manifest.json", "state.pickle"]


def test_discard_removes_the_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    assert store.discard() is False
    store.write(b"old", _manifest(1))
    assert store.discard() is True
    assert store.read() is None
    assert store.manifest() is None


def _call(app: Any, method: str, headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[list[Any], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **(headers or {}),
    }
    sent: list[Any] = []
    chunks = app(environ, lambda status, response_headers, *_: sent.extend(response_headers))
    return sent, b"".join(chunks)


def _echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def test_changes_are_counted_and_numbered_reads_are_not() -> None:
    # Given a tracked app
    tracker = ChangeTracker()
    app = tracker.middleware(_echo_app)

    # When reads and writes of each protocol go through it
    get_headers, _ = _call(app, "GET")
    describe_headers, _ = _call(app, "POST", {"HTTP_X_AMZ_TARGET": "AWSStepFunctions.DescribeExecution"})
    put_headers, _ = _call(app, "POST", {"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem"})
    form = {"CONTENT_TYPE": "application/x-www-form-urlencoded"}
    list_headers, list_body = _call(app, "POST", form, b"Action=ListQueues&Version=2012-11-05")
    send_headers, _ = _call(app, "POST", form, b"Action=SendMessage&MessageBody=x")
    s3_put_headers, _ = _call(app, "PUT")

    # Then only the writes are counted, each response carrying its sequence number, and the body still reaches moto
    def change(headers: list[Any]) -> str | None:
        return dict(headers).get(CHANGE_HEADER)

    assert [change(h) for h in (get_headers, describe_headers, list_headers)] == [None, None, None]
    assert [change(h) for h in (put_headers, send_headers, s3_put_headers)] == ["1", "2", "3"]
    assert list_body == b"Action=ListQueues&Version=2012-11-05"
    assert tracker.sequence == 3
    assert tracker.changed.is_set()


def test_a_snapshot_is_written_only_when_something_changed(tmp_path: Path, moto_state: None) -> None:
    # Given a snapshotter over an empty store
    tracker = ChangeTracker()
    snapshotter = Snapshotter(SnapshotStore(tmp_path), tracker)

    # When a change is recorded and two snapshots are asked for
    tracker.record()
    first = snapshotter.snapshot()
    second = snapshotter.snapshot()

    # Then the first covers the change and the second is skipped
    assert first is not None
    assert (first.generation, first.changes) == (1, 1)
    assert second is None
    tracker.record()
    third = snapshotter.snapshot()
    assert third is not None
    assert (third.generation, third.changes) == (2, 2)


def test_the_restore_summary_says_what_came_back() -> None:
    summary = RestoreSummary(
        fresh=False,
        restored=True,
        counts={"functions": 3, "aliases": 1, "topics": 0},
        aborted_executions=["arn:e"],
    )
    assert summary.describe() == (
        f"restored 3 functions, 1 aliases; 1 running execution(s) ended ABORTED ({RESTART_CAUSE})"
    )
    assert "started empty (--fresh" in RestoreSummary(fresh=True, restored=False).describe()
    assert RestoreSummary(fresh=False, restored=False).describe() == "started empty (no saved state)"


def test_an_execution_ending_is_a_change_to_snapshot(tmp_path: Path, moto_state: None) -> None:
    # Given a running snapshotter, and an execution started in-process (no tracked request records it)
    tracker = ChangeTracker()
    snapshotter = Snapshotter(SnapshotStore(tmp_path), tracker, interval=0.01)
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    definition = {"StartAt": "Bake", "States": {"Bake": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    machine = sfn.create_state_machine(name="m", roleArn=role, definition=json.dumps(definition))["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="e", input="{}")["executionArn"]
    # (bare moto cannot stop an execution whose thread has not yet built its environment)
    history = lambda: sfn.get_execution_history(executionArn=execution)["events"]  # noqa: E731
    wait_for(lambda: any(event["type"] == "WaitStateEntered" for event in history()), timeout=30)
    snapshotter.start()
    try:
        # When the execution ends with no request to the tracked server
        sfn.stop_execution(executionArn=execution)

        # Then the snapshotter counts it as a change and writes a snapshot holding it
        wait_for(lambda: tracker.sequence > 0 and snapshotter.store.manifest() is not None, timeout=30)
        manifest = snapshotter.store.manifest()
        assert manifest is not None
        assert manifest.changes >= 1
    finally:
        snapshotter.stop()


def test_a_stream_shard_comes_back_without_its_delivered_records() -> None:
    # Given a table with a stream that holds three records
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="streamed",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        for key in ("a", "b", "c"):
            dynamodb.put_item(TableName="streamed", Item={"pk": {"S": key}})
        backend = moto_patches.resolve_dotted("moto.dynamodb.models.dynamodb_backends")["123456789012"]["us-east-1"]
        table = backend.get_table("streamed")
        first = table.stream_shard.starting_sequence_number
        assert len(table.stream_shard.items) == 3

        # When the table is snapshotted and restored
        restored = _round_trip(table)

    # Then its items are there, its shard is empty, and the next record gets a sequence number not used before
    assert len(restored.items) == 3
    assert restored.stream_shard.items == []
    assert restored.stream_shard.starting_sequence_number == first + 3
    assert restored.stream_shard.table is restored


def test_an_ended_execution_s_history_is_pickled_once_and_comes_back_whole(tmp_path: Path) -> None:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[arg-type]
        moto_patches.apply(moto_patches.Settings(endpoint_url="http://127.0.0.1:9", cache_dir=tmp_path / "cache"))
        try:
            # Given an execution that ran to its end (its history sealed)
            iam = boto3.client("iam", region_name="us-east-1")
            role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"n": 1}, "End": True}}}
            machine = sfn.create_state_machine(name="m", roleArn=role, definition=json.dumps(definition))
            arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")["executionArn"]
            wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED", timeout=30)
            wait_for(lambda: sfn.get_execution_history(executionArn=arn)["events"][-1]["type"] == "ExecutionSucceeded")
            history = sfn.get_execution_history(executionArn=arn)["events"]

            # When two snapshots are captured
            first, second = persistence.capture(), persistence.capture()

            # Then both hold the same pickled history, made once and kept for the execution's event manager
            (execution,) = persistence.executions()
            _, pickled = persistence._ENDED_HISTORIES[execution.exec_worker.env.event_manager]
            assert pickled in first
            assert pickled in second
            # and the snapshot brings the whole history back
            moto_patches.resolve_dotted("moto.core.base_backend.BackendDict").reset()
            persistence.install(second, Path("state.pickle"))
            assert sfn.get_execution_history(executionArn=arn)["events"] == history
        finally:
            moto_patches.restore()
