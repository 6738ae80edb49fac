"""Lifecycle events on EventBridge: Conveyor's own bus (``EVENT_BUS_NAME``), ``Source: conveyor``.

``PutEvents`` takes at most 10 entries and answers per entry: a call can succeed while some of its entries
were refused (``FailedEntryCount``, throttling or an internal error). Those entries, and only those, are put
again with back-off; what is still refused after the last try is an ``EventPublishError`` naming each
event's id and EventBridge's error code, so the stream batch is retried (and, bisected, ends in the
publisher's on-failure queue) rather than dropped. A put that succeeded twice is harmless: ids are stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.adapters import aws
from conveyor.domain.errors import EventPublishError
from conveyor.domain.events import SOURCE, LifecycleEvent

MAX_ENTRIES_PER_PUT = 10
"""PutEvents' limit on entries per call."""

_TRIES = 4
_FIRST_PAUSE_SECONDS = 0.2


def entry(event: LifecycleEvent, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of ``event`` (``Time`` is when the ledger recorded the change)."""
    return {
        "Source": SOURCE,
        "DetailType": event.DETAIL_TYPE,
        "Detail": event.model_dump_json(),
        "Time": event.occurred_at,
        "EventBusName": bus_name,
        "Resources": [],
    }


class EventBridgeBus:
    """The ``EventBus`` port on an EventBridge bus."""

    def __init__(self, session: Session, bus_name: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._bus_name = bus_name
        self._events = aws.client(session, "events")
        self._sleep = sleep

    def put(self, events: Sequence[LifecycleEvent]) -> int:
        for start in range(0, len(events), MAX_ENTRIES_PER_PUT):
            self._put_batch(list(events[start : start + MAX_ENTRIES_PER_PUT]))
        return len(events)

    def _put_batch(self, batch: list[LifecycleEvent]) -> None:
        pending = batch
        refused: list[tuple[LifecycleEvent, str]] = []
        pause = _FIRST_PAUSE_SECONDS
        for attempt in range(_TRIES):
            if attempt:
                self._sleep(pause)
                pause *= 2
            try:
                response = self._events.put_events(Entries=[entry(event, self._bus_name) for event in pending])
            except (ClientError, BotoCoreError) as exc:
                raise EventPublishError(
                    f"events:PutEvents on bus {self._bus_name} failed for {len(pending)} events: {exc}"
                ) from exc
            results = response.get("Entries", [])
            refused = [
                (event, str(result.get("ErrorCode") or "unknown"))
                for event, result in zip(pending, results, strict=True)
                if "EventId" not in result or result.get("ErrorCode")
            ]
            if not refused:
                return
            pending = [event for event, _ in refused]
        named = ", ".join(f"{event.id} ({event.DETAIL_TYPE}: {code})" for event, code in refused)
        raise EventPublishError(
            f"events:PutEvents on bus {self._bus_name} refused {len(refused)} events after {_TRIES} tries: {named}"
        )
