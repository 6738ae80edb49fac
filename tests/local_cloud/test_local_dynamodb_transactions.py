"""TransactWriteItems on the local cloud: all or nothing, as DynamoDB, without copying the tables it names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from conveyor_local import moto_patches

TABLE = "ledger"


@pytest.fixture
def dynamodb(tmp_path: Path) -> Iterator[Any]:
    """A table with a stream of old and new images (as the ledger's) on moto as the local cloud runs it."""
    with mock_aws():
        moto_patches.apply(moto_patches.Settings(endpoint_url="http://127.0.0.1:9", cache_dir=tmp_path / "cache"))
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            client.put_item(TableName=TABLE, Item={"pk": {"S": "d"}, "sk": {"S": "META"}, "n": {"N": "1"}})
            yield client
        finally:
            moto_patches.restore()


def _backend_table() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]


def _event(sk: str) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "d"}, "sk": {"S": sk}}}}


def _bump(condition_n: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": "d"}, "sk": {"S": "META"}},
            "UpdateExpression": "SET n = n + :one",
            "ConditionExpression": "n = :n",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":n": {"N": condition_n}},
        }
    }


def _items(dynamodb: Any) -> dict[str, dict[str, Any]]:
    return {item["sk"]["S"]: item for item in dynamodb.scan(TableName=TABLE)["Items"]}


def test_a_cancelled_transaction_writes_nothing_and_leaves_the_table_in_place(dynamodb: Any) -> None:
    # Given the table as moto holds it and the length of its stream
    table = _backend_table()
    streamed = len(table.stream_shard.items)

    # When a transaction puts a new event and then fails the condition of its update
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(TransactItems=[_event("EVENT#1"), _bump(condition_n="7")])

    # Then DynamoDB's answer names the failed condition, and nothing of the transaction was written
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert set(_items(dynamodb)) == {"META"}
    assert _items(dynamodb)["META"]["n"] == {"N": "1"}
    # and the stream took no record of it, and the table (its stream's poller with it) is the one it was
    assert len(table.stream_shard.items) == streamed
    assert _backend_table() is table


def test_a_transaction_whose_conditions_hold_writes_every_item(dynamodb: Any) -> None:
    # Given the table's stream so far
    table = _backend_table()
    streamed = len(table.stream_shard.items)

    # When a transaction puts an event and bumps the counter its condition expects
    dynamodb.transact_write_items(TransactItems=[_event("EVENT#2"), _bump(condition_n="1")])

    # Then both writes happened, each a record on the stream
    assert set(_items(dynamodb)) == {"META", "EVENT#2"}
    assert _items(dynamodb)["META"]["n"] == {"N": "2"}
    assert len(table.stream_shard.items) == streamed + 2
