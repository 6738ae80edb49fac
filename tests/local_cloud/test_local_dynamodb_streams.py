"""A table's stream reaches its mapped function as Lambda delivers it: after the write, filtered, in batches,
in order, a failing batch bisected and its poison record described on the on-failure queue."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from local_cloud_support import wait_for

Aws = Callable[[str], Any]

# Sends each batch's keys to the sink queue; a batch holding a "poison" key fails.
_SINK_FUNCTION = """
import json
import os

import boto3


def handler(event, context):
    keys = [record["dynamodb"]["Keys"]["pk"]["S"] for record in event["Records"]]
    if any(key.startswith("poison") for key in keys):
        raise ValueError("poison in " + ",".join(keys))
    boto3.client("sqs").send_message(QueueUrl=os.environ["SINK"], MessageBody=json.dumps(keys))
    return {"keys": keys}
"""


def _package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def _queue(aws: Aws, name: str) -> tuple[str, str]:
    url = aws("sqs").create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def _messages(aws: Aws, url: str) -> list[Any]:
    found = []
    while messages := aws("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(m["Body"]) for m in messages]
        for m in messages:
            aws("sqs").delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def _mapped_table(aws: Aws, **mapping: Any) -> dict[str, str]:
    """A table with a stream mapped to the sink function; its name, the sink and on-failure queue URLs."""
    table = f"streamed-{uuid.uuid4().hex[:8]}"
    created = aws("dynamodb").create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    sink, _ = _queue(aws, "sink")
    failed, failed_arn = _queue(aws, "failed")
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:*"}]}
    role = aws("iam").create_role(RoleName=f"{table}-role", AssumeRolePolicyDocument=json.dumps(policy))["Role"]
    aws("lambda").create_function(
        FunctionName=table,
        Runtime="python3.11",
        Role=role["Arn"],
        Handler="app.handler",
        Code={"ZipFile": _package(_SINK_FUNCTION)},
        Timeout=30,
        Environment={"Variables": {"SINK": sink}},
    )
    aws("lambda").create_event_source_mapping(
        FunctionName=table,
        EventSourceArn=created["LatestStreamArn"],
        StartingPosition="TRIM_HORIZON",
        DestinationConfig={"OnFailure": {"Destination": failed_arn}},
        **mapping,
    )
    return {"table": table, "sink": sink, "failed": failed, "stream": created["LatestStreamArn"]}


def _put(aws: Aws, table: str, *keys: str) -> None:
    for key in keys:
        aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": key}})


def test_records_arrive_filtered_in_order_and_in_batches_of_at_most_batch_size(aws: Aws) -> None:
    # Given a mapping of two records a batch that keeps only keys starting with "keep"
    pattern = {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "keep"}]}}}}
    mapped = _mapped_table(aws, BatchSize=2, FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]})
    # When five kept and two other items are written, one transaction holding three of them
    _put(aws, mapped["table"], "keep-1", "drop-1")
    aws("dynamodb").transact_write_items(
        TransactItems=[
            {"Put": {"TableName": mapped["table"], "Item": {"pk": {"S": key}}}}
            for key in ("keep-2", "keep-3", "keep-4")
        ]
    )
    _put(aws, mapped["table"], "drop-2", "keep-5")
    # Then the function saw the kept ones only, in the order written, never more than two at once
    batches: list[list[str]] = []
    wait_for(lambda: batches.extend(_messages(aws, mapped["sink"])) or sum(map(len, batches)) >= 5, timeout=60)
    assert [key for batch in batches for key in batch] == ["keep-1", "keep-2", "keep-3", "keep-4", "keep-5"]
    assert max(map(len, batches)) <= 2
    # And the stream still holds every record for GetRecords (moto cleared it once delivered)
    streams = aws("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=mapped["stream"])["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=mapped["stream"], ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == [
        "keep-1",
        "drop-1",
        "keep-2",
        "keep-3",
        "keep-4",
        "drop-2",
        "keep-5",
    ]


@pytest.mark.parametrize("bisect", [True, False], ids=["bisected", "whole"])
def test_a_failing_batch_is_retried_then_described_on_the_on_failure_queue(aws: Aws, bisect: bool) -> None:
    # Given a mapping that retries a failed batch once, bisecting it or not
    mapped = _mapped_table(aws, MaximumRetryAttempts=1, BisectBatchOnFunctionError=bisect)
    # When one transaction writes a poison record between two good ones (one batch of three)
    aws("dynamodb").transact_write_items(
        TransactItems=[
            {"Put": {"TableName": mapped["table"], "Item": {"pk": {"S": key}}}} for key in ("ok-1", "poison", "ok-2")
        ]
    )
    # Then the on-failure queue describes what could not be delivered
    (failure,) = wait_for(lambda: _messages(aws, mapped["failed"]), timeout=60)
    info = failure["DDBStreamBatchInfo"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["streamArn"] == mapped["stream"]
    delivered = [key for batch in _messages(aws, mapped["sink"]) for key in batch]
    if bisect:
        # bisected down to the poison record alone: the good ones were delivered
        assert (info["batchSize"], failure["requestContext"]["approximateInvokeCount"]) == (1, 2)
        assert delivered == ["ok-1", "ok-2"]
    else:
        assert info["batchSize"] == 3
        assert delivered == []
    # And later records flow again: the failed batch does not block the shard
    _put(aws, mapped["table"], "after")
    assert wait_for(lambda: _messages(aws, mapped["sink"]), timeout=60) == [["after"]]
