"""The ledger table's stream records, as the domain reads them (``LedgerChange``: plain JSON-shaped images).

Lambda hands the stream's records with their images in DynamoDB's typed JSON (``{"S": ...}``, ``{"N": "1"}``,
``{"M": {...}}``); boto3's ``TypeDeserializer`` reads them (numbers become ``int``/``float`` as ``from_item``
makes them, string sets become sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from pydantic import ValidationError

from conveyor.adapters.dynamodb import from_item
from conveyor.domain.errors import LedgerError
from conveyor.domain.events import LedgerChange

_DESERIALIZER = TypeDeserializer()


def _image(typed: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not typed:
        return None
    return {name: from_item(_DESERIALIZER.deserialize(value)) for name, value in typed.items()}


def ledger_changes(event: Mapping[str, Any]) -> list[LedgerChange]:
    """The changes of a DynamoDB stream event (``{"Records": [...]}``), in the order the stream gave them.

    ``LedgerError`` names the record that is not a DynamoDB stream record (the batch fails, and is bisected
    down to it by the event source mapping, then kept on the publisher's on-failure queue).
    """
    changes = []
    for record in event.get("Records", []):
        stream = record.get("dynamodb") or {}
        try:
            changes.append(
                LedgerChange(
                    event_name=record.get("eventName"),
                    keys={k: str(v) for k, v in (_image(stream.get("Keys")) or {}).items()},
                    old=_image(stream.get("OldImage")),
                    new=_image(stream.get("NewImage")),
                )
            )
        except (ValidationError, TypeError, ValueError) as exc:
            raise LedgerError(f"ledger stream record {record.get('eventID')} is not a DynamoDB change: {exc}") from exc
    return changes
