"""A deployment's status (``DeploymentRecord.status``): in progress, waiting, or how it ended."""

from enum import StrEnum


class Outcome(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    QUEUED = "QUEUED"
    """Waiting for an environment's lock held by another deployment (not terminal)."""
    SUPERSEDED = "SUPERSEDED"
    """A newer artifact arrived while this one waited for a lock; nothing was deployed."""
    ABORTED = "ABORTED"
    """Its execution was stopped (console, CLI, API) before it finished; the reconciler closed it."""
    TIMED_OUT = "TIMED_OUT"
    """Its execution ran past the state machine's timeout; the reconciler closed it."""
    SKIPPED_DUPLICATE = "SKIPPED_DUPLICATE"
    """A skipped execution's entry (``DeploymentRecord.skipped``); and the status of a deployment whose push is
    the same release (app version and content) as one live or in progress (``failure.duplicate_of`` names it)."""


UNFINISHED = frozenset({Outcome.IN_PROGRESS, Outcome.QUEUED})
"""The statuses of a deployment that may still change: its execution runs, or waits for a lock."""
ENDED = frozenset(Outcome) - UNFINISHED
"""The statuses that end a deployment."""
