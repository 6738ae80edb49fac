"""What every DynamoDB adapter shares, written once: item conversion, paging, conditional writes, errors.

The ledger (``dynamodb_ledger``) and the locks and target owners (``dynamodb_locks``) live in one table;
each adapter module says what its items mean, this one how they are read and written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from conveyor.adapters import aws
from conveyor.domain.errors import LedgerError


def to_item(value: Any) -> Any:
    """JSON-shaped data as DynamoDB accepts it (numbers as ``Decimal``)."""
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def from_item(value: Any) -> Any:
    """A stored item back as JSON-shaped data (whole numbers as ``int``, the rest as ``float``)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_item(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_item(v) for v in value]
    return value


def condition_failed(exc: ClientError) -> bool:
    return aws.error_code(exc) == "ConditionalCheckFailedException"


def update_if(table: Any, **update: Any) -> dict[str, Any] | None:
    """``update_item`` whose ``ConditionExpression`` may not hold: the response, or None when it did not."""
    try:
        response: dict[str, Any] = table.update_item(**update)
    except ClientError as exc:
        if condition_failed(exc):
            return None
        raise
    return response


def query(table: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a query matches, page after page."""
    while True:
        response = table.query(**kwargs)
        yield from response["Items"]
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def scan(table: Any) -> Iterator[dict[str, Any]]:
    """Every item of the table, page after page."""
    kwargs: dict[str, Any] = {}
    while True:
        response = table.scan(**kwargs)
        yield from response["Items"]
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


@contextmanager
def ledger_errors(operation: str) -> Iterator[None]:
    """Turn a DynamoDB or transport failure of ``operation`` (which names what failed) into ``LedgerError``."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise LedgerError(f"{operation} failed: {exc}") from exc
