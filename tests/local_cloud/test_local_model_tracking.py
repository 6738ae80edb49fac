"""The local cloud keeps no moto model it no longer holds (moto's BaseModel tracks every instance ever made)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from conveyor_local import moto_patches


def _write_50_times(dynamodb: Any) -> None:
    """One item of a table with a stream of old and new images (as the ledger's), written 50 times: moto
    copies the item and makes a stream record on each write."""
    dynamodb.create_table(
        TableName="tracked",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for n in range(50):
        dynamodb.update_item(
            TableName="tracked",
            Key={"pk": {"S": "one"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": str(n)}},
        )


def test_writes_leave_no_tracked_copies_behind_on_the_local_cloud(tmp_path: Path) -> None:
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import StreamRecord

    with mock_aws():
        # Given moto as the local cloud runs it, and an instance moto tracked before the patches went in
        Item.instances_tracked.append(object())
        moto_patches.apply(moto_patches.Settings(endpoint_url="http://127.0.0.1:9", cache_dir=tmp_path / "cache"))
        try:
            # When an item of a streamed table is written 50 times
            dynamodb = boto3.client("dynamodb", region_name="us-east-1")
            _write_50_times(dynamodb)

            # Then moto tracks none of the item's copies or stream records (nor what it tracked before);
            # what the table holds is all that is kept
            assert (Item.instances_tracked, StreamRecord.instances_tracked) == ([], [])
            item = dynamodb.get_item(TableName="tracked", Key={"pk": {"S": "one"}})["Item"]
            assert item["n"] == {"N": "49"}
        finally:
            moto_patches.restore()

    # and moto's own behaviour is back once the patches are undone
    with mock_aws():
        _write_50_times(boto3.client("dynamodb", region_name="us-east-1"))
        assert len(StreamRecord.instances_tracked) >= 50
