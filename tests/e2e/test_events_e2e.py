"""Lifecycle events on the local cloud: the ledger's stream, the publisher, the bus and the inbox, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor_cli import operations
from conveyor_cli.sample import EXAMPLES
from conveyor_local.inbox import InboxEntry, InboxQueues, collect, journal
from conveyor_local.server import read_state

from .conftest import Stage

pytestmark = pytest.mark.e2e


def _inbox(stage: Stage) -> list[InboxEntry]:
    queues = InboxQueues.model_validate(read_state(stage.state_dir)["inbox"])
    collect(stage.cloud.client("sqs"), queues, stage.state_dir)
    return journal(stage.state_dir)


def _events_of(stage: Stage, deployment_id: str, *, until: int = 1, timeout: float = 90) -> list[dict[str, Any]]:
    """The lifecycle events published about ``deployment_id`` (details, in order), once ``until`` of them say it
    ended: the stream is delivered after the write, so the inbox is waited on, never assumed."""
    deadline = time.monotonic() + timeout
    while True:
        details = [
            entry.body["detail"]
            for entry in _inbox(stage)
            if entry.kind == "event" and entry.deployment_id == deployment_id and isinstance(entry.body, dict)
        ]
        if sum(d["kind"] == "deployment.ended" for d in details) >= until:
            return sorted(details, key=lambda d: d["occurred_at"])
        assert time.monotonic() < deadline, f"the inbox never said {deployment_id} ended: {details}"
        time.sleep(0.1)


def _steps(details: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(d["kind"], d.get("environment")) for d in details]


def test_a_good_and_a_rolled_back_deployment_publish_their_lifecycle_in_order(stage: Stage) -> None:
    # Given a good build and then a build whose health check fails
    good = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "68.0.0"))["deployment_id"])
    bad = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello-broken", "68.1.0"))["deployment_id"])
    assert (good.record.status.value, bad.record.status.value) == ("SUCCEEDED", "ROLLED_BACK")

    # Then the inbox holds the good one's lifecycle, in order, with its id
    published = _events_of(stage, good.record.deployment_id)
    assert _steps(published) == [
        ("deployment.started", None),
        ("traffic.shifted", "staging"),
        ("health.verdict", "staging"),
        ("environment.live", "staging"),
        ("traffic.shifted", "production"),
        ("health.verdict", "production"),
        ("environment.live", "production"),
        ("deployment.ended", None),
    ]
    assert {d["app"] for d in published} == {"hello"}
    assert {d["version"] for d in published} == {"68.0.0"}
    assert published[-1]["outcome"] == "SUCCEEDED"

    # And the rolled-back one's: the failed verdict, the rollback with the version restored, the outcome
    rolled_back = _events_of(stage, bad.record.deployment_id)
    assert _steps(rolled_back) == [
        ("deployment.started", None),
        ("traffic.shifted", "staging"),
        ("health.verdict", "staging"),
        ("deployment.rolled_back", "staging"),
        ("deployment.ended", None),
    ]
    assert rolled_back[2]["verdict"] == "fail"
    assert rolled_back[3]["restored_version"] == bad.before["staging"]["version"]
    assert rolled_back[-1]["outcome"] == "ROLLED_BACK"
    # And each event is on the bus as Conveyor's, with its detail type
    entries = [e for e in _inbox(stage) if e.kind == "event" and e.deployment_id == bad.record.deployment_id]
    assert {(e.body["source"], e.detail_type) for e in entries if isinstance(e.body, dict)} >= {
        ("conveyor", "Rolled Back"),
        ("conveyor", "Deployment Ended"),
    }

    # And `conveyor local inbox` shows both, events and the on-call notification with its filter attributes
    result = subprocess.run(
        [str(Path(sys.executable).parent / "conveyor"), "local", "inbox", "--app", "hello", "--json"],
        check=True,
        env=dict(os.environ) | {"CONVEYOR_STATE_DIR": str(stage.state_dir)},
        capture_output=True,
        text=True,
    )
    shown = json.loads(result.stdout)  # one document
    about_bad = [entry for entry in shown if entry["deployment_id"] == bad.record.deployment_id]
    assert [e["detail_type"] for e in about_bad if e["kind"] == "event"] == [
        "Deployment Started",
        "Traffic Shifted",
        "Health Verdict",
        "Rolled Back",
        "Deployment Ended",
    ]
    (note,) = [e for e in about_bad if e["kind"] == "notification"]
    assert {k: note["attributes"][k] for k in ("app", "environment", "outcome", "severity")} == {
        "app": "hello",
        "environment": "staging",
        "outcome": "ROLLED_BACK",
        "severity": "error",
    }
    assert {e["deployment_id"] for e in shown if e["kind"] == "event"} >= {good.record.deployment_id}


def _stream_records(stage: Stage, deployment_id: str) -> list[dict[str, Any]]:
    """The ledger stream's records of the deployment's META item, read back with GetRecords."""
    table = stage.cloud.client("dynamodb").describe_table(TableName=stage.cloud.outputs.ledger_table)["Table"]
    streams = stage.cloud.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=table["LatestStreamArn"])["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=table["LatestStreamArn"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not page["Records"]:
            break
        records += page["Records"]
        iterator = page.get("NextShardIterator")
    keys = {"pk": {"S": f"DEPLOYMENT#{deployment_id}"}, "sk": {"S": "META"}}
    return [r for r in records if r["dynamodb"]["Keys"] == keys]


def _as_lambda_event(records: list[dict[str, Any]], source_arn: str) -> str:
    def plain(value: Any) -> Any:
        return value.timestamp() if isinstance(value, datetime) else value

    return json.dumps({"Records": [r | {"eventSourceARN": source_arn} for r in records]}, default=plain)


def test_a_redelivered_stream_batch_publishes_the_same_ids(stage: Stage) -> None:
    # Given a deployment whose lifecycle was published
    deployed = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "68.2.0"))["deployment_id"])
    first = _events_of(stage, deployed.record.deployment_id)
    # When the stream hands its batch to the publisher again (as Lambda does after a failed invocation)
    records = _stream_records(stage, deployed.record.deployment_id)
    assert records, "the ledger's stream holds the deployment's changes"
    table = stage.cloud.client("dynamodb").describe_table(TableName=stage.cloud.outputs.ledger_table)["Table"]
    response = stage.cloud.client("lambda").invoke(
        FunctionName=read_state(stage.state_dir)["outputs"]["PublishFunctionName"],
        Payload=_as_lambda_event(records, table["LatestStreamArn"]),
    )
    assert "FunctionError" not in response, response["Payload"].read()
    # Then the events arrive a second time, with the same ids and nothing new
    again = _events_of(stage, deployed.record.deployment_id, until=2)
    assert len(again) == 2 * len(first)
    assert {d["id"] for d in again} == {d["id"] for d in first}
