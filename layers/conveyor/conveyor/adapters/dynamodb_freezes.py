"""Operator freezes on the ledger table (``DynamoFreezes``): ``pk=FREEZE``, ``sk=<app>`` or ``sk=*`` (every app).

One partition holds every freeze, so the gate reads them all with one query and ``conveyor freeze --list`` needs
no scan. There are few (one per frozen app at most): the partition stays small. Its items carry neither ``app``
nor ``created_at``, the by-app index's keys, so they never show up in a deployment history; nor is their ``sk``
``META``, so the ledger stream's publisher never turns them into lifecycle events.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from boto3.session import Session

from conveyor.adapters import aws
from conveyor.adapters.dynamodb import from_item, ledger_errors, query, to_item
from conveyor.domain.freeze import OperatorFreeze

_PK = "FREEZE"


def _freeze(item: dict[str, Any]) -> OperatorFreeze:
    data = from_item(item)
    return OperatorFreeze(
        scope=data["sk"],
        reason=data["reason"],
        by=data["frozen_by"],
        at=data["frozen_at"],
        until=data.get("until"),
    )


class DynamoFreezes:
    """``Freezes`` on the ledger table."""

    def __init__(self, session: Session, table_name: str) -> None:
        self._table = aws.resource(session, "dynamodb").Table(table_name)

    def all(self) -> list[OperatorFreeze]:
        with ledger_errors("reading the operator freezes"):
            items = list(query(self._table, KeyConditionExpression=Key("pk").eq(_PK), ConsistentRead=True))
        return [_freeze(item) for item in items]

    def put(self, freeze: OperatorFreeze) -> None:
        item: dict[str, Any] = {
            "pk": _PK,
            "sk": freeze.scope,
            "reason": freeze.reason,
            "frozen_by": freeze.by,
            "frozen_at": freeze.at.isoformat(),
        }
        if freeze.until is not None:
            item["until"] = freeze.until.isoformat()
        with ledger_errors(f"freezing {freeze.scope}"):
            self._table.put_item(Item=to_item(item))

    def remove(self, scope: str) -> OperatorFreeze | None:
        with ledger_errors(f"unfreezing {scope}"):
            old = self._table.delete_item(Key={"pk": _PK, "sk": scope}, ReturnValues="ALL_OLD").get("Attributes")
        return _freeze(old) if old else None
