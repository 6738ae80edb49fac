"""One environment of a deployment as the ledger records it: its status, and how that status may move.

``EnvironmentEntry`` is the typed entry of ``DeploymentRecord.environments``. It reads every item written
so far (the same keys and values; keys it does not name are kept) and dumps only what was written, so an
item keeps its shape whichever version of Conveyor wrote or reads it. ``may_move`` is the one place that
says which status may follow which.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class EnvironmentStatus(StrEnum):
    """Where one environment of a deployment is (the values the ledger has always stored)."""

    PENDING = "PENDING"  # validated; the release has not reached this environment yet
    QUEUED = "QUEUED"  # waiting in the target's lock queue
    LOCKED = "LOCKED"  # holds the target's lock; nothing deployed yet
    SUPERSEDED = "SUPERSEDED"  # a newer release took its place in the queue: nothing deployed
    AWAITING_APPROVAL = "AWAITING_APPROVAL"  # a person must approve (before deploying, or a paused rollout)
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    APPROVAL_TIMED_OUT = "APPROVAL_TIMED_OUT"  # nobody decided in time: nothing deployed
    DEPLOYED = "DEPLOYED"  # new version published; the alias still serves the old one
    VERIFYING = "VERIFYING"  # new version checked at 0% of the alias's traffic (blue/green)
    SHIFTING = "SHIFTING"  # part of the alias's traffic goes to the new version
    LIVE = "LIVE"  # the alias serves the new version; the rollout of this environment is done
    ROLLED_BACK = "ROLLED_BACK"  # the alias is back on the version it served before
    NOT_DEPLOYED = "NOT_DEPLOYED"  # the deployment ended while it queued for, held or was approved for the lock


S = EnvironmentStatus
_MOVES: Mapping[EnvironmentStatus, frozenset[EnvironmentStatus]] = {
    # Where the release first reaches an environment: its approval gate, the lock's queue, the lock (or, when the
    # ledger missed a write the stage made quietly, anything after them).
    S.PENDING: frozenset(S),
    S.QUEUED: frozenset({S.LOCKED, S.SUPERSEDED, S.NOT_DEPLOYED}),
    S.LOCKED: frozenset({S.AWAITING_APPROVAL, S.DEPLOYED, S.SUPERSEDED, S.NOT_DEPLOYED}),
    # A paused rollout's decision moves it back to SHIFTING (promote next, or RollBack restores it).
    # QUEUED/LOCKED: approved by answering the task token outside Conveyor (SendTaskSuccess), so no APPROVED between.
    S.AWAITING_APPROVAL: frozenset(
        {S.APPROVED, S.REJECTED, S.QUEUED, S.LOCKED, S.SHIFTING, S.APPROVAL_TIMED_OUT, S.ROLLED_BACK, S.NOT_DEPLOYED}
    ),
    # The approval gate comes before the lock; a decision Step Functions did not take is put back to wait.
    S.APPROVED: frozenset(
        {
            S.QUEUED,
            S.LOCKED,
            S.SUPERSEDED,  # a newer release took its place, or was already live, when its turn for the lock came
            S.DEPLOYED,
            S.VERIFYING,
            S.SHIFTING,
            S.LIVE,
            S.AWAITING_APPROVAL,
            S.ROLLED_BACK,
            S.NOT_DEPLOYED,
        }
    ),
    S.REJECTED: frozenset({S.AWAITING_APPROVAL, S.ROLLED_BACK}),
    S.APPROVAL_TIMED_OUT: frozenset({S.ROLLED_BACK}),
    S.DEPLOYED: frozenset({S.VERIFYING, S.SHIFTING, S.LIVE, S.AWAITING_APPROVAL, S.ROLLED_BACK}),
    S.VERIFYING: frozenset({S.SHIFTING, S.LIVE, S.AWAITING_APPROVAL, S.ROLLED_BACK}),
    S.SHIFTING: frozenset({S.LIVE, S.AWAITING_APPROVAL, S.ROLLED_BACK}),
    S.LIVE: frozenset({S.ROLLED_BACK}),  # a manual rollback, or the reconciler after a later failure
    S.ROLLED_BACK: frozenset(),
    S.SUPERSEDED: frozenset(),
    S.NOT_DEPLOYED: frozenset(),
}
del S


def may_move(current: EnvironmentStatus | None, to: EnvironmentStatus) -> bool:
    """Whether an environment recorded as ``current`` may be recorded as ``to`` next.

    Writing the status it already has is always allowed (every stage may be retried). With no status
    recorded (``None``, an entry from before validation created them ``PENDING``), or ``PENDING``, any
    status may come: the ledger may have missed earlier ones (a stage records quietly when its result
    matters more than its record, and the reconciler fills in what is missing).
    """
    return current is None or to == current or to in _MOVES[current]


def may_precede(to: EnvironmentStatus) -> frozenset[EnvironmentStatus]:
    """The recorded statuses ``to`` may be written over (``may_move``'s table read backwards, for a ledger that
    checks the move in its conditional write)."""
    return frozenset(current for current in EnvironmentStatus if may_move(current, to))


class EnvironmentEntry(BaseModel):
    """``DeploymentRecord.environments[name]``: what the stages recorded about one environment."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    status: EnvironmentStatus | None = None
    function_name: str | None = None
    functions: list[str] | None = None  # a target of several functions: all of them, function_name first
    alias: str | None = None
    lock_target: str | None = None
    companion_locks: list[str] | None = None  # the companion functions' lock keys, held with lock_target
    version_before: str | None = None
    version_after: str | None = None
    weight: int | float | None = None
    waiting_for: str | None = None
    position: int | None = None
    lock: dict[str, Any] | None = None
    served_before: dict[str, Any] | None = None
    companions: list[dict[str, Any]] | None = None  # each companion function's release (Deploy), to restore it
    restore: dict[str, Any] | None = None  # a restore that failed for some functions: "restored", "failed",
    # "fence_token" (the lock's token it ran under), "set_anew" (why a later try left the target to its new holder)
    verdict: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    rollback: dict[str, Any] | None = None
    reconciled: bool | None = None

    @property
    def not_restored(self) -> list[str]:
        """The functions a restore failed for and nothing has restored since (the environment is not ROLLED_BACK)
        nor set anew (a later deployment or a manual rollback held the target after it failed)."""
        if self.status is EnvironmentStatus.ROLLED_BACK or (self.restore or {}).get("set_anew"):
            return []
        return list((self.restore or {}).get("failed") or {})

    def of_function(self, function: str) -> dict[str, Any]:
        """What the entry says about one function of its target: the entry itself for its first function, the
        companion's fields (Deploy records them) for another; empty when it does not name it."""
        if self.function_name == function or not self.companions:
            return self.model_dump() if self.function_name in (function, None) else {}
        return next((fields for fields in self.companions if fields.get("function_name") == function), {})

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the keys the ledger holds: an entry dumps to the item it was read from."""
        data: dict[str, Any] = handler(self)
        written = self.model_fields_set | set(self.model_extra or {})
        return {key: value for key, value in data.items() if key in written}


TRAFFIC_MAY_HAVE_MOVED = frozenset(
    {EnvironmentStatus.DEPLOYED, EnvironmentStatus.VERIFYING, EnvironmentStatus.SHIFTING}
)
"""Environment statuses of a rollout in progress: a version is published and its ShiftTraffic may have run
(or may still be running: Step Functions does not stop a Lambda invocation when it stops an execution)."""


def traffic_may_have_moved(entry: EnvironmentEntry) -> bool:
    """Whether the environment's rollout was under way: moving, or paused with traffic moved for a person's
    decision (``on_inconclusive: pause``), which waits as AWAITING_APPROVAL of kind ``decision``."""
    if entry.status in TRAFFIC_MAY_HAVE_MOVED:
        return True
    return entry.status is EnvironmentStatus.AWAITING_APPROVAL and (entry.approval or {}).get("kind") == "decision"
