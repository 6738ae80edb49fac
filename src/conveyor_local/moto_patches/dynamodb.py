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

``moto.dynamodb.models.DynamoDBBackend.transact_write_items(self, transact_items)`` and the ``copy`` module
``moto.dynamodb.models`` uses
    to undo a transaction that fails, moto deep-copies every table it names, whole, once per action (a
    ledger transaction names its table two or three times), stream records and mapped functions included,
    and on failure puts the copies in the tables' place: each of the ledger's transactions cost more than
    the last (0.3 s for one copy of the e2e suite's ledger, under the lock every DynamoDB call waits on),
    and a failed one left the stream's poller watching a table that was no longer there. We back up only
    the items the transaction names (and how long each table's stream was) and run moto's own
    transaction with a table's "copy" being the table itself; when it fails, those items are put back and
    the stream records it made are taken off, as DynamoDB, which writes nothing of a cancelled transaction.

``moto.core.serialize.BaseJSONSerializer._serialize_type_structure(self, serialized, value, shape, key)``
    moto serializes every response by walking the botocore model, member by member; for DynamoDB that
    walk descends into each ``AttributeValue`` of every item returned, and a ledger record's nested
    maps made it most of a call's CPU. An ``AttributeValue`` moto returns is already in wire format
    (``{"S": ...}``, ``{"N": "1"}``, ``{"M": {...}}``, ...), which the walk copies unchanged: we copy
    it as is when every value in it is one of those JSON types, and leave anything else (binary
    ``B``/``BS``, which the walk base64-encodes) to moto.

``moto.dynamodb.models.table.Table.query(self, hash_key, ...)``
    every query sorted every item of the table first (``all_items()``): a query of the table's own key then kept
    the one partition it reads, and a query of an index kept the items of its key and sorted them again by their
    full key. So each of the ledger's queries (a deployment's record, the lock's waiters, the freezes, the app's
    history) cost more the more the cloud had done: 15 ms at a thousand items and 58 ms at five thousand, under
    the lock every DynamoDB call waits on. DynamoDB reads the partition. We give moto's own query a view of the
    table whose ``all_items`` is that partition (a query of the table's key), or every item unsorted (a query of an
    index: moto still looks at each, as it did, but sorts only what it keeps, by a key that orders them fully).
    The items, their order and the pages are moto's.

``moto.dynamodb.responses.DynamoHandler.{get_item,put_item,update_item,delete_item,query,scan,
batch_get_item,transact_write_items}``
    fault injection for the ledger (``conveyor_local.moto_patches.service_faults``): a rule naming a
    ``table`` fails these calls with its error code.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor_local.moto_patches.registry import original, patches, relies_on, resolve_class
from conveyor_local.moto_patches.service_faults import service_faulty

DYNAMODB_BACKEND = "moto.dynamodb.models.DynamoDBBackend"
DYNAMODB_RESPONSE = "moto.dynamodb.responses.DynamoHandler"
TABLE = "moto.dynamodb.models.table.Table"
DYNAMO_TYPE = "moto.dynamodb.models.dynamo_type.DynamoType"
MODELS_COPY = "moto.dynamodb.models.copy"
ATOMIC_METHODS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
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


# ------------------------------------------------------------------------------ transactions

_TRANSACTION = threading.local()


class TransactionCopy:
    """Stands in for the ``copy`` module in ``moto.dynamodb.models``: within ``transact_write_items`` on this
    thread a table's copy is the table itself (the items the transaction names are backed up instead); every
    other copy is ``copy``'s."""

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if getattr(_TRANSACTION, "active", False) and isinstance(value, resolve_class(TABLE)):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


@dataclass
class ItemBackup:
    """The items a transaction names, as they were before it, and where each table's stream ended."""

    items: dict[tuple[int, Any, Any], tuple[Any, Any, Any, Any]] = field(default_factory=dict)
    streams: dict[int, tuple[Any, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, backend: Any, transact_items: list[dict[str, Any]]) -> ItemBackup:
        backup = cls()
        dynamo_type = resolve_class(DYNAMO_TYPE)
        for action in transact_items:
            for op in action.values():
                table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
                key = (op.get("Key") or op.get("Item") or {}) if table is not None else {}
                if table is None or table.hash_key_attr not in key:
                    continue  # moto refuses it before it writes anything
                if table.range_key_attr is not None and table.range_key_attr not in key:
                    continue
                hash_key = dynamo_type(key[table.hash_key_attr])
                range_key = dynamo_type(key[table.range_key_attr]) if table.range_key_attr else None
                slot = (id(table), hash_key, range_key)
                if slot not in backup.items:
                    current = table.get_item(hash_key, range_key)
                    backup.items[slot] = (table, hash_key, range_key, copy.deepcopy(current))
                shard = table.stream_shard
                if shard is not None and id(table) not in backup.streams:
                    backup.streams[id(table)] = (shard, len(shard.items))
        return backup

    def restore(self) -> None:
        """Put every item back as it was and take the stream records written since off each stream."""
        for table, hash_key, range_key, item in self.items.values():
            if range_key is None:
                holder, slot = table.items, hash_key
            else:
                holder, slot = table.items[hash_key], range_key
            if item is None:
                holder.pop(slot, None)
            else:
                holder[slot] = item
        for shard, length in self.streams.values():
            del shard.items[length:]


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
    """Replacement for ``DynamoDBBackend.transact_write_items``: moto's, atomic, backing up the named items only."""
    with DYNAMODB_LOCK:
        backup = ItemBackup.of(self, transact_items)
        _TRANSACTION.active = True
        try:
            return original(f"{DYNAMODB_BACKEND}.transact_write_items")(self, transact_items)
        except BaseException:
            backup.restore()
            raise
        finally:
            _TRANSACTION.active = False


# ------------------------------------------------------------------------------ queries without a sort of the table

TABLE_QUERY = f"{TABLE}.query"


class QueryView:
    """A table as moto's query sees it: ``all_items`` is the partition the query reads (``hash_key``), or every
    item unsorted (``hash_key`` None: a query of an index, which orders what it keeps by a key of its own);
    everything else is the table's."""

    def __init__(self, table: Any, hash_key: Any | None) -> None:
        self._table = table
        self._hash_key = hash_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        table = self._table
        if self._hash_key is None:
            partitions = list(table.items.values())
        else:
            partition = table.items.get(self._hash_key)
            partitions = [] if partition is None else [partition]
        if table.range_key_attr is None:
            return partitions
        return [item for partition in partitions for item in partition.values()]


def query_view(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """Replacement for ``Table.query``: moto's query on a ``QueryView`` (no sort of the whole table)."""
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name:
        view = QueryView(self, None)
    elif hash_key is not None:
        view = QueryView(self, hash_key)
    else:
        view = self
    return original(TABLE_QUERY)(view, hash_key, *args, **kwargs)


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
patches(f"{DYNAMODB_BACKEND}.transact_write_items", ("self", "transact_items"), transact_write_items)
patches(MODELS_COPY, None, TransactionCopy())
# (after hash_key, index_name is the 7th positional argument: ``args[6]`` in ``query_view``)
_QUERY_PARAMETERS = (
    *("self", "hash_key", "range_comparison", "range_objs", "limit", "exclusive_start_key"),
    *("scan_index_forward", "projection_expressions", "index_name"),
)
patches(TABLE_QUERY, _QUERY_PARAMETERS, query_view)
relies_on(f"{TABLE}.all_items", ("self",))
relies_on(f"{TABLE}.get_item", ("self", "hash_key", "range_key"))
relies_on(DYNAMO_TYPE, ("type_as_dict",))
for _method in FAULT_METHODS:
    patches(f"{DYNAMODB_RESPONSE}.{_method}", ("self",), service_faulty(DYNAMODB_RESPONSE, _method, "table", table_of))
