"""DynamoDB items leave the local cloud exactly as moto's own serializer writes them, with less work."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.serialize import BaseJSONSerializer

from conveyor_local.moto_patches import dynamodb, registry

ITEM: dict[str, Any] = {
    "pk": {"S": "DEPLOYMENT#1"},
    "count": {"N": "3"},
    "live": {"BOOL": True},
    "nothing": {"NULL": True},
    "tags": {"SS": ["a", "b"]},
    "sizes": {"NS": ["1", "2.5"]},
    "blob": {"B": b"\x00\x01"},
    "environments": {
        "M": {
            "staging": {"M": {"status": {"S": "LIVE"}, "steps": {"L": [{"N": "10"}, {"M": {"at": {"S": "now"}}}]}}},
            "production": {"M": {"status": {"S": "SHIFTING"}, "raw": {"BS": [b"\x02"]}}},
        }
    },
}


def _round_trip() -> dict[str, Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="ledger",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName="ledger", Item=ITEM)
        got = client.get_item(TableName="ledger", Key={"pk": ITEM["pk"]})["Item"]
        updated = client.update_item(
            TableName="ledger",
            Key={"pk": ITEM["pk"]},
            UpdateExpression="SET environments.staging.#status = :s",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":s": {"S": "DONE"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return {"get": got, "update": updated}


def test_items_serialize_as_moto_serializes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given what moto's own serializer returns for an item of every attribute type, binary included
    moto_own = BaseJSONSerializer._serialize_type_structure
    expected = _round_trip()

    # When the wire-format fast path serializes it instead
    walked: list[str] = []

    def counted(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        walked.append(shape.name)
        moto_own(self, serialized, value, shape, key)

    monkeypatch.setitem(registry.ORIGINALS, dynamodb.JSON_STRUCTURE, counted)
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_structure", dynamodb.serialize_structure)
    actual = _round_trip()

    # Then the client reads the same item, and only the binary values took moto's walk
    assert actual == expected
    # (per item returned, by GetItem and by UpdateItem: "blob", "environments", "production" and its "raw")
    assert walked.count("AttributeValue") == 2 * 4


def test_wire_format_is_recognised_exactly() -> None:
    assert dynamodb.in_wire_format({"M": {"a": {"L": [{"S": "x"}, {"NULL": True}]}}})
    assert not dynamodb.in_wire_format({"B": b"\x00"})
    assert not dynamodb.in_wire_format({"M": {"a": {"BS": [b"\x00"]}}})
    assert not dynamodb.in_wire_format({"S": "x", "N": "1"})
    assert not dynamodb.in_wire_format({"N": 1})
