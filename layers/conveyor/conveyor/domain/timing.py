"""The clock and the stage record every stage writes: ``utcnow`` and ``timed_stage``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from conveyor.domain.errors import DeploymentNotOwnedError, LedgerError, StatusMoveRefusedError
from conveyor.domain.ports import Ledger, StageWrites
from conveyor.domain.records import FAILED, StageEvent
from conveyor.observability import logger


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimedStage:
    """Times one stage body and builds its event: the ``detail`` the body fills in, its status, and the error that
    ended it (which propagates). ``timed_stage`` writes the event; a stage that writes it with other writes, in one
    ledger call, takes ``event`` once the block exited."""

    def __init__(
        self, deployment_id: str, stage: str, environment: str | None = None, *, started_at: datetime | None = None
    ) -> None:
        self.deployment_id, self.stage, self.environment = deployment_id, stage, environment
        self.detail: dict[str, Any] = {}
        self.error: Exception | None = None
        self._since = started_at
        self._started = started_at or utcnow()
        self._event: StageEvent | None = None

    def __enter__(self) -> dict[str, Any]:
        self._started = self._since or utcnow()
        return self.detail

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        status = "succeeded"
        if isinstance(exc, Exception):
            status, self.error = FAILED, exc
            self.detail["error"] = type(exc).__name__
            self.detail["reason"] = str(exc)
        finished = utcnow()
        self._event = StageEvent(
            deployment_id=self.deployment_id,
            stage=self.stage,
            environment=self.environment,
            status=self.detail.pop("status", status),
            started_at=self._started,
            finished_at=finished,
            # (a start given by another clock, the state machine's, may read a little later than this one's)
            duration_ms=max(0.0, round((finished - self._started).total_seconds() * 1000, 1)),
            detail=self.detail,
        )

    @property
    def event(self) -> StageEvent:
        if self._event is None:
            raise RuntimeError(f"{self.stage}: its event is built once its block exited")
        return self._event


@contextmanager
def timed_stage(
    ledger: Ledger,
    deployment_id: str,
    stage: str,
    environment: str | None = None,
    *,
    quiet: bool = False,
    writes: StageWrites | None = None,
    started_at: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Record one stage in the ledger: its timing, status and the ``detail`` the body fills in.

    ``writes``: what the body records beside the event (the environment's entry, what an alias serves),
    written with it in one ledger write once the body completed. A stage that raises is recorded as
    failed with the error, its ``writes`` left out, then the error propagates; one that found its deployment no
    longer its own (``DeploymentNotOwnedError``) writes nothing into it. ``quiet``:
    a ledger that cannot take the record is logged, not raised (for a stage whose result matters
    more than its record, such as a health verdict on the way to a rollback; the reconciler fills
    in what is missing once the execution ends). ``started_at``: when the stage began, for one whose work ran
    before its body (a hook the state machine invoked and waited for); the body's own start otherwise.
    """
    timed = TimedStage(deployment_id, stage, environment, started_at=started_at)
    try:
        with timed as detail:
            yield detail
    finally:
        kept = None if timed.error is not None else writes
        if isinstance(timed.error, DeploymentNotOwnedError):
            pass  # the deployment is another execution's now (or closed): nothing of this stage is written into it
        elif quiet:
            record_quietly(ledger, timed.event, kept)
        else:
            ledger.record_event(timed.event, kept or None)


def record_quietly(ledger: Ledger, event: StageEvent, writes: StageWrites | None = None) -> bool:
    """Write a stage event (and its ``writes``); False (logged, not raised) when the ledger cannot take it."""
    try:
        ledger.record_event(event, writes or None)
    except (LedgerError, StatusMoveRefusedError) as exc:
        logger.error("could not record a stage event", extra={"stage": event.stage, "error": str(exc)})
        return False
    return True
