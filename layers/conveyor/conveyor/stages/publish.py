"""Publish: the ledger's stream, turned into Conveyor's lifecycle events on EventBridge (the outbox's relay).

Not a state of the state machine: Lambda's event source mapping on the ledger table's stream invokes it with a
batch of changes, in the order they were committed. A batch that raises is retried whole, then bisected, then
sent to the publisher's on-failure queue (``template.yaml``); since each event's id is derived from the change
it describes (``conveyor.domain.events``), a retried batch publishes the same ids again, never new ones.
"""

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from conveyor.domain.events import LedgerChange, lifecycle_events
from conveyor.observability import logger

if TYPE_CHECKING:  # the port is an annotation here: the publisher's cold start does not load every port
    from conveyor.domain.ports import EventBus


class Publication(BaseModel):
    """What one batch of ledger changes published."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    changes: int
    published: int
    ids: list[str]
    detail_types: dict[str, int]


def publish_changes(changes: Sequence[LedgerChange], *, bus: "EventBus") -> Publication:
    """Put the lifecycle events ``changes`` mean on ``bus``, in order; ``EventPublishError`` if it refused some."""
    events = lifecycle_events(changes)
    published = bus.put(events) if events else 0
    counts = Counter(event.DETAIL_TYPE for event in events)
    logger.info("lifecycle events published", extra={"changes": len(changes), "published": published})
    return Publication(
        changes=len(changes), published=published, ids=[event.id for event in events], detail_types=dict(counts)
    )
