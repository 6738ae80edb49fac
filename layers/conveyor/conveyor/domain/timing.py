"""The clock and the stage record every stage writes: ``utcnow`` and ``timed_stage``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from conveyor.domain.errors import LedgerError, StatusMoveRefusedError
from conveyor.domain.ports import Ledger, StageWrites
from conveyor.domain.records import FAILED, StageEvent
from conveyor.observability import logger


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def timed_stage(
    ledger: Ledger,
    deployment_id: str,
    stage: str,
    environment: str | None = None,
    *,
    quiet: bool = False,
    writes: StageWrites | None = None,
) -> Iterator[dict[str, Any]]:
    """Record one stage in the ledger: its timing, status and the ``detail`` the body fills in.

    ``writes``: what the body records beside the event (the environment's entry, what an alias serves),
    written with it in one ledger write once the body completed. A stage that raises is recorded as
    failed with the error, its ``writes`` left out, then the error propagates. ``quiet``:
    a ledger that cannot take the record is logged, not raised (for a stage whose result matters
    more than its record, such as a health verdict on the way to a rollback; the reconciler fills
    in what is missing once the execution ends).
    """
    started = utcnow()
    detail: dict[str, Any] = {}
    status = "succeeded"
    try:
        yield detail
    except Exception as exc:
        status = FAILED
        detail["error"] = type(exc).__name__
        detail["reason"] = str(exc)
        writes = None
        raise
    finally:
        finished = utcnow()
        event = StageEvent(
            deployment_id=deployment_id,
            stage=stage,
            environment=environment,
            status=detail.pop("status", status),
            started_at=started,
            finished_at=finished,
            duration_ms=round((finished - started).total_seconds() * 1000, 1),
            detail=detail,
        )
        if quiet:
            record_quietly(ledger, event, writes)
        else:
            ledger.record_event(event, writes or None)


def record_quietly(ledger: Ledger, event: StageEvent, writes: StageWrites | None = None) -> bool:
    """Write a stage event (and its ``writes``); False (logged, not raised) when the ledger cannot take it."""
    try:
        ledger.record_event(event, writes or None)
    except (LedgerError, StatusMoveRefusedError) as exc:
        logger.error("could not record a stage event", extra={"stage": event.stage, "error": str(exc)})
        return False
    return True
