"""A DynamoDB query on the local cloud reads its partition, as DynamoDB does, without sorting the whole table.

moto sorted every item of the table for each query (``moto_patches.dynamodb``): the ledger's queries grew slower
with everything the cloud had done. The patch hands moto's own query a view of the table (the partition, or for an
index every item unsorted), so what it answers must stay moto's answer, page for page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from conveyor_local.moto_patches import dynamodb, registry
from tests.fakes.builders import LEDGER_TABLE_SHAPE

Query = Callable[..., dict[str, Any]]

QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "DEPLOYMENT#3"}}},
    {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "nobody"}}},
    {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :event)",
        "ExpressionAttributeValues": {":pk": {"S": "DEPLOYMENT#3"}, ":event": {"S": "EVENT#"}},
        "ScanIndexForward": False,
    },
    {
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":pk": {"S": "DEPLOYMENT#5"}, ":a": {"S": "EVENT#02"}, ":b": {"S": "EVENT#07"}},
    },
    {
        "KeyConditionExpression": "pk = :pk",
        "FilterExpression": "attribute_exists(app)",
        "ExpressionAttributeValues": {":pk": {"S": "DEPLOYMENT#7"}},
    },
    {
        "IndexName": "by-app",
        "KeyConditionExpression": "app = :app",
        "ExpressionAttributeValues": {":app": {"S": "app2"}},
    },
    {
        "IndexName": "by-app",
        "KeyConditionExpression": "app = :app",
        "ExpressionAttributeValues": {":app": {"S": "app1"}},
        "ScanIndexForward": False,
    },
]


@pytest.fixture(scope="module")
def ledger() -> Iterator[Any]:
    """A ledger-shaped table: 12 deployments, each a META item (indexed by app) and 10 events (read only)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="ledger", **LEDGER_TABLE_SHAPE)
        for n in range(12):
            pk = {"S": f"DEPLOYMENT#{n}"}
            # app2's last two deployments (8 and 11) share a creation time: the index orders them by their table key
            created = "2026-12-31" if n >= 8 and n % 3 == 2 else f"2026-12-{n:02d}"
            meta = {"pk": pk, "sk": {"S": "META"}, "app": {"S": f"app{n % 3}"}, "created_at": {"S": created}}
            client.put_item(TableName="ledger", Item=meta)
            for e in range(10):
                client.put_item(TableName="ledger", Item={"pk": pk, "sk": {"S": f"EVENT#{e:02d}"}, "n": {"N": str(e)}})
        yield client


def _pages(client: Any, request: dict[str, Any], limit: int | None) -> list[dict[str, Any]]:
    """Every page of ``request`` (``limit`` items a page), without the response metadata."""
    pages, kwargs = [], {"TableName": "ledger", **request, **({"Limit": limit} if limit else {})}
    while True:
        page = client.query(**kwargs)
        page.pop("ResponseMetadata")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.parametrize("limit", [None, 1, 3])
@pytest.mark.parametrize("request_", QUERIES, ids=lambda r: r.get("IndexName", r["KeyConditionExpression"]))
def test_a_query_answers_what_moto_answers_page_for_page(
    ledger: Any, request_: dict[str, Any], limit: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given moto's own answer
    table_class = registry.resolve_class("moto.dynamodb.models.table.Table")
    expected = _pages(ledger, request_, limit)

    # When the same query runs through the patch
    monkeypatch.setitem(registry.ORIGINALS, dynamodb.TABLE_QUERY, table_class.query)
    monkeypatch.setattr(table_class, "query", dynamodb.query_view)
    answered = _pages(ledger, request_, limit)

    # Then the items, their order, the counts and the pages are the same
    assert answered == expected


def test_no_query_sorts_the_whole_table(ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the patch, and every sort of the whole table (moto's all_items) counted
    table_class = registry.resolve_class("moto.dynamodb.models.table.Table")
    monkeypatch.setitem(registry.ORIGINALS, dynamodb.TABLE_QUERY, table_class.query)
    monkeypatch.setattr(table_class, "query", dynamodb.query_view)
    sorts: list[str] = []
    all_items = table_class.all_items
    monkeypatch.setattr(table_class, "all_items", lambda self: sorts.append(self.name) or all_items(self))

    # When a deployment's record is read, and then the app index
    record = _pages(ledger, QUERIES[0], None)
    history = _pages(ledger, QUERIES[-1], None)

    # Then each found its items (the record's 11, the app's 4 deployments) and neither sorted the whole table
    assert record[0]["Count"] == 11
    assert history[0]["Count"] == 4
    assert sorts == []
