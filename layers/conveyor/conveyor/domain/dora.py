"""DORA metrics from the deployment ledger.

- deployment frequency: successful deployments per day over the window;
- lead time for changes: commit time to live (median), where the manifest carried the commit;
- change failure rate: the share of finished deployments that failed after reaching a
  target (ROLLED_BACK or ROLLBACK_FAILED, or stopped/timed out after its traffic moved, which the
  reconciler restored) — refusals before anything deployed (FAILED at
  validation, duplicates) are not changes and do not count;
- time to restore: from a failed change to the app's next successful deployment (median).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from conveyor.domain.contracts import Outcome
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.records import DeploymentRecord

_FAILED_CHANGES = frozenset({Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED})
_STOPPED = frozenset({Outcome.ABORTED, Outcome.TIMED_OUT})


def failed_change(record: DeploymentRecord) -> bool:
    """A change that reached a target and had to be undone (a stop before any traffic moved is not one)."""
    if record.status in _STOPPED:
        return any(env.status is EnvironmentStatus.ROLLED_BACK for env in record.environments.values())
    return record.status in _FAILED_CHANGES


class DoraMetrics(BaseModel):
    model_config = ConfigDict(defer_build=True)

    window_days: float
    deployments: int
    succeeded: int
    failed_changes: int
    deployment_frequency_per_day: float
    lead_time_seconds_median: float | None
    change_failure_rate: float | None
    time_to_restore_seconds_median: float | None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def dora_metrics(records: Iterable[DeploymentRecord], *, since: datetime, until: datetime) -> DoraMetrics:
    window = [r for r in records if since <= r.created_at <= until]
    finished = sorted((r for r in window if r.finished_at is not None), key=lambda r: r.created_at)
    succeeded = [r for r in finished if r.status is Outcome.SUCCEEDED]
    failed = [r for r in finished if failed_change(r)]
    changes = len(succeeded) + len(failed)
    lead_times = [
        (r.finished_at - r.commit_time).total_seconds()
        for r in succeeded
        if r.finished_at is not None and r.commit_time is not None
    ]
    restores = []
    for failure in failed:
        recovery = next(
            (r for r in succeeded if r.app == failure.app and r.created_at > failure.created_at and r.finished_at),
            None,
        )
        if recovery is not None and recovery.finished_at is not None and failure.finished_at is not None:
            restores.append((recovery.finished_at - failure.finished_at).total_seconds())
    days = max((until - since).total_seconds() / 86400, 1 / 24)
    return DoraMetrics(
        window_days=round(days, 2),
        deployments=len(window),
        succeeded=len(succeeded),
        failed_changes=len(failed),
        deployment_frequency_per_day=round(len(succeeded) / days, 2),
        lead_time_seconds_median=_median(lead_times),
        change_failure_rate=round(len(failed) / changes, 3) if changes else None,
        time_to_restore_seconds_median=_median(restores),
    )
