"""DynamoDB reads see whole items on the local cloud, as on AWS, even while an UpdateItem creates one.

moto's UpdateItem of a new item first stores it with only its key, then applies each SET in place;
a Query or Scan in between saw a half-written item (Conveyor's ledger then read a deployment record
without ``created_at``). The local cloud serializes reads with the single-item writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

ATTRIBUTES = 40
ROUNDS = 60


def test_a_query_never_sees_an_item_half_created_by_update_item(aws: Callable[[str], Any]) -> None:
    # Given a table, and a reader querying each key while a writer creates its item with one UpdateItem
    dynamodb = aws("dynamodb")
    table = dynamodb.list_tables()["TableNames"][0]
    names = {f"#a{i}": f"a{i}" for i in range(ATTRIBUTES)}
    values = {f":v{i}": {"S": "x" * 200} for i in range(ATTRIBUTES)}
    assignments = ", ".join(f"#a{i} = :v{i}" for i in range(ATTRIBUTES))
    seen_sizes: list[int] = []

    for round_number in range(ROUNDS):
        key = f"half-written-{round_number}"
        written = threading.Event()

        def write(key: str = key, written: threading.Event = written) -> None:
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": key}},
                UpdateExpression=f"SET {assignments}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            written.set()

        writer = threading.Thread(target=write)
        writer.start()
        # When the reader queries until the item is there (and once more after the write returned)
        while True:
            done = written.is_set()
            items = dynamodb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": key}},
            )["Items"]
            if items or done:
                break
        writer.join()
        seen_sizes.extend(len(item) for item in items)

    # Then every item it saw had every attribute
    assert seen_sizes
    assert set(seen_sizes) == {ATTRIBUTES + 1}
