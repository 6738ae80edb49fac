"""DynamoDB: single-item writes are atomic (as DynamoDB makes them), and the ledger can be taken down.

Seams (moto 5.2.5) and why:

``moto.dynamodb.models.DynamoDBBackend.{get_item,put_item,update_item,delete_item,transact_write_items,
query,scan,batch_get_item}``
    moto evaluates a condition expression and then applies the write in separate steps, with nothing
    to stop another request thread in between, so two conditional writes racing for one item could
    both succeed. DynamoDB makes each single-item write atomic, and Conveyor's exactly-once claims and
    environment locks rely on it: we serialize these calls on one lock (``DYNAMODB_LOCK``, also held
    by ``conveyor_local.persistence`` while it snapshots). Reads of many items are serialized with
    them: moto's UpdateItem of a new item stores it with only its key and then applies each SET in
    place, so a Query between saw a half-written item.

``moto.core.serialize.BaseJSONSerializer._serialize_type_structure(self, serialized, value, shape, key)``
    moto serializes every response by walking the botocore model, member by member; for DynamoDB that
    walk descends into each ``AttributeValue`` of every item returned, and a ledger record's nested
    maps made it most of a call's CPU. An ``AttributeValue`` moto returns is already in wire format
    (``{"S": ...}``, ``{"N": "1"}``, ``{"M": {...}}``, ...), which the walk copies unchanged: we copy
    it as is when every value in it is one of those JSON types, and leave anything else (binary
    ``B``/``BS``, which the walk base64-encodes) to moto.

``moto.dynamodb.responses.DynamoHandler.{get_item,put_item,update_item,delete_item,query,scan,
batch_get_item,transact_write_items}``
    fault injection for the ledger (``conveyor_local.moto_patches.service_faults``): a rule naming a
    ``table`` fails these calls with its error code.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from conveyor_local.moto_patches.registry import original, patches, relies_on
from conveyor_local.moto_patches.service_faults import service_faulty

DYNAMODB_BACKEND = "moto.dynamodb.models.DynamoDBBackend"
DYNAMODB_RESPONSE = "moto.dynamodb.responses.DynamoHandler"
ATOMIC_METHODS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    # reads of many items: a query or scan must not see an UpdateItem half-applied
    "query",
    "scan",
    "batch_get_item",
)
#: The DynamoDB calls a ledger fault fails (every one Conveyor makes).
FAULT_METHODS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_write_items",
)

DYNAMODB_LOCK = threading.RLock()


def atomic(name: str) -> Callable[..., Any]:
    def serialized(self: Any, *args: Any, **kwargs: Any) -> Any:
        with DYNAMODB_LOCK:
            return original(f"{DYNAMODB_BACKEND}.{name}")(self, *args, **kwargs)

    serialized.__name__ = name
    return serialized


ATTRIBUTE_VALUE_SHAPE = "AttributeValue"
JSON_STRUCTURE = "moto.core.serialize.BaseJSONSerializer._serialize_type_structure"
_WIRE_STRINGS = frozenset({"S", "N"})
_WIRE_BOOLEANS = frozenset({"BOOL", "NULL"})
_WIRE_STRING_SETS = frozenset({"SS", "NS"})


def in_wire_format(value: Any) -> bool:
    """True when ``value`` is an ``AttributeValue`` whose JSON is itself (no binary, nothing to convert)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((tag, inner),) = value.items()
    if tag in _WIRE_STRINGS:
        return isinstance(inner, str)
    if tag in _WIRE_BOOLEANS:
        return isinstance(inner, bool)
    if tag in _WIRE_STRING_SETS:
        return isinstance(inner, list) and all(isinstance(member, str) for member in inner)
    if tag == "L":
        return isinstance(inner, list) and all(in_wire_format(member) for member in inner)
    if tag == "M":
        return isinstance(inner, dict) and all(
            isinstance(name, str) and in_wire_format(member) for name, member in inner.items()
        )
    return False


def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
    """Replacement for ``BaseJSONSerializer._serialize_type_structure``: wire-format attribute values as is."""
    if key and getattr(shape, "name", None) == ATTRIBUTE_VALUE_SHAPE and in_wire_format(value):
        self._default_serialize(serialized, value, shape, key)
        return
    original(JSON_STRUCTURE)(self, serialized, value, shape, key)


def table_of(response: Any) -> str:
    """The table a DynamoDB request is about (the first one, for batch and transaction calls)."""
    body = response.body  # DynamoHandler has parsed it already; a raw string only if moto stops doing so
    if not isinstance(body, dict):
        try:
            body = json.loads(body or "{}")
        except (TypeError, ValueError):
            return ""
    if "TableName" in body:
        return str(body["TableName"])
    if body.get("RequestItems"):
        return str(next(iter(body["RequestItems"])))
    for item in body.get("TransactItems", []):
        for action in item.values():
            if isinstance(action, dict) and "TableName" in action:
                return str(action["TableName"])
    return ""


patches(JSON_STRUCTURE, ("self", "serialized", "value", "shape", "key"), serialize_structure)
relies_on("moto.core.serialize.BaseJSONSerializer._default_serialize", ("self", "serialized", "value", "shape", "key"))
for _name in ATOMIC_METHODS:
    patches(f"{DYNAMODB_BACKEND}.{_name}", ("self",), atomic(_name))
for _method in FAULT_METHODS:
    patches(f"{DYNAMODB_RESPONSE}.{_method}", ("self",), service_faulty(DYNAMODB_RESPONSE, _method, "table", table_of))
