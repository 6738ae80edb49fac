"""DORA's four keys from the deployment ledger, per app and per environment, each with its performance tier.

- deployment frequency: deployments that went live per day over the window (per environment: that went
  live there), a release rolled back by hand later included: it was deployed;
- lead time for changes: commit time to live (median), where the manifest carried the commit (per
  environment: to the ShiftTraffic that gave it 100% of the alias there);
- change failure rate: the share of changes (deployments that reached a target and finished) that had to be
  undone: rolled back by the RollBack stage, restored by the reconciler after a stop or a timeout, or rolled
  back by hand (``conveyor rollback``, ``conveyor.domain.manual_rollback``) after going live. Refusals before
  anything deployed (FAILED at validation, duplicates) are not changes and do not count;
- time to restore (DORA's "failed deployment recovery time"): from the failure to the restore (median), per
  rolled-back environment. The failure is the first failed stage in that environment (a failed verdict, a
  crashed traffic step), the execution's stop for a reconciler restore, or, for a manual rollback, the moment
  the operator declared the live release failed (the rollback's start: the ledger knows no earlier sign). The
  restore is the rollback's completion (the RollBack stage, the reconciler's restore or the manual rollback),
  not the next good deployment.

Each key is graded with ``PERFORMANCE_LEVELS``, the table of the current DORA report.
"""

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.outcome import Outcome
from conveyor.domain.ports import Ledger
from conveyor.domain.records import DeploymentRecord, StageEvent

_FAILED_CHANGES = frozenset({Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED})
_STOPPED = frozenset({Outcome.ABORTED, Outcome.TIMED_OUT})
_RESTORES = ("RollBack", "ManualRollback")
"""The stages whose completion is a restore (the reconciler records none: its time is on the rollback entry)."""
DAY = 86_400.0
TIERS_SOURCE = "Accelerate State of DevOps Report 2024 (DORA)"


class Tier(StrEnum):
    ELITE = "elite"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Level:
    """One row of the report's table for one key: the tier, and the value it needs (``limit`` None: any).

    A dataclass, not a model: the table is built at import, and no model is built before it is used."""

    tier: Tier
    says: str
    """the report's own words for this tier"""
    op: Literal[">", ">=", "<", "<="] | None = None
    limit: float | None = None

    def holds(self, value: float) -> bool:
        if self.op is None or self.limit is None:
            return True
        return {
            ">": value > self.limit,
            ">=": value >= self.limit,
            "<": value < self.limit,
            "<=": value <= self.limit,
        }[self.op]


KEYS = ("deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore")
Key = Literal["deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"]

PERFORMANCE_LEVELS: Mapping[str, tuple[Level, ...]] = {
    "deployment_frequency": (
        Level(tier=Tier.ELITE, op=">", limit=1.0, says="on demand (multiple deploys per day)"),
        Level(tier=Tier.HIGH, op=">=", limit=1 / 7, says="between once per day and once per week"),
        Level(tier=Tier.MEDIUM, op=">=", limit=1 / 30, says="between once per week and once per month"),
        Level(tier=Tier.LOW, says="between once per month and once every six months"),
    ),
    "lead_time": (
        Level(tier=Tier.ELITE, op="<", limit=DAY, says="less than one day"),
        Level(tier=Tier.HIGH, op="<", limit=7 * DAY, says="between one day and one week"),
        Level(tier=Tier.MEDIUM, op="<", limit=30 * DAY, says="between one week and one month"),
        Level(tier=Tier.LOW, says="between one month and six months"),
    ),
    "change_failure_rate": (
        Level(tier=Tier.ELITE, op="<=", limit=0.05, says="5%"),
        Level(tier=Tier.HIGH, op="<=", limit=0.20, says="20%"),
        Level(tier=Tier.MEDIUM, op="<=", limit=0.10, says="10%"),
        Level(tier=Tier.LOW, says="40%"),
    ),
    "time_to_restore": (
        Level(tier=Tier.ELITE, op="<", limit=3600.0, says="less than one hour"),
        Level(tier=Tier.HIGH, op="<", limit=DAY, says="less than one day"),
        Level(tier=Tier.MEDIUM, op="<", limit=DAY, says="less than one day"),
        Level(tier=Tier.LOW, says="between one week and one month"),
    ),
}
"""The software delivery performance levels of the Accelerate State of DevOps Report 2024 (DORA, Google Cloud),
the last report that grades the four keys in tiers (the 2025 report, "State of AI-assisted Software
Development", keeps the keys and describes team profiles instead of tiers). Units: deployments per day,
seconds, a ratio, seconds.

A key takes the first tier, in the report's order elite, high, medium, low, whose value it meets. The report's
tiers are clusters of respondents, not nested thresholds: its medium cluster fails less often (10%) than its
high one (20%) and restores in the same "less than one day", so a change failure rate above 5% and at most 20%,
or a restore within a day, reads high, never medium.
"""


def tier_of(key: Key, value: float | None) -> Tier | None:
    """The report's tier for one key's value (None when there is no value to grade)."""
    if value is None:
        return None
    return next(level.tier for level in PERFORMANCE_LEVELS[key] if level.holds(value))


def rolled_back_environments(record: DeploymentRecord) -> list[str]:
    return [name for name, env in record.environments.items() if env.status is EnvironmentStatus.ROLLED_BACK]


def failed_change(record: DeploymentRecord) -> bool:
    """A change that reached a target and had to be undone: by RollBack, by the reconciler, or by hand after
    going live (a stop before any traffic moved is not one)."""
    return record.status in _FAILED_CHANGES or bool(rolled_back_environments(record))


def went_live(record: DeploymentRecord) -> bool:
    """A deployment that went live everywhere (one rolled back by hand afterwards included)."""
    return record.status is Outcome.SUCCEEDED


def went_live_in(entry: EnvironmentEntry, events: list[StageEvent]) -> bool:
    """The release went live in this environment (one rolled back there by hand afterwards included)."""
    if entry.status is EnvironmentStatus.LIVE:
        return True
    return entry.status is EnvironmentStatus.ROLLED_BACK and any(e.stage == "ManualRollback" for e in events)


def _events_in(record: DeploymentRecord, environment: str) -> list[StageEvent]:
    return sorted((e for e in record.events if e.environment == environment), key=lambda e: e.finished_at)


def live_at(record: DeploymentRecord, environment: str) -> datetime | None:
    """When the release took 100% of the environment's alias: its full ShiftTraffic, else the deployment's end."""
    for event in _events_in(record, environment):
        if event.stage == "ShiftTraffic" and not event.failed and event.detail.get("weight") == 100:
            return event.finished_at
    return record.finished_at


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def restore_span(record: DeploymentRecord, environment: str) -> tuple[datetime, datetime] | None:
    """(failure, restore) of one rolled-back environment of ``record``; None if the ledger cannot place them."""
    entry = record.environments[environment]
    rollback = entry.rollback or {}
    events = _events_in(record, environment)
    restore_event = next((e for e in reversed(events) if e.stage in _RESTORES and not e.failed), None)
    restored = restore_event.finished_at if restore_event else _when(rollback.get("restored_at")) or record.finished_at
    if restore_event is not None and restore_event.stage == "ManualRollback":
        failed: datetime | None = restore_event.started_at  # the operator declared the live release failed
    else:
        first_failure = next((e for e in events if e.failed and e.stage not in _RESTORES), None)
        failed = (
            _when(rollback.get("failed_at"))
            or (first_failure.finished_at if first_failure else None)
            or (restore_event.started_at if restore_event else None)
        )
    if failed is None or restored is None or restored < failed:
        return None
    return failed, restored


class DoraKeys(BaseModel):
    """The four keys over one set of deployments, and the report's tier of each."""

    model_config = ConfigDict(defer_build=True)

    deployments: int = Field(description="deployments created in the window, finished or not")
    succeeded: int = Field(description="deployments that went live")
    failed_changes: int
    deployment_frequency_per_day: float
    lead_time_seconds_median: float | None
    change_failure_rate: float | None
    time_to_restore_seconds_median: float | None
    tiers: dict[str, Tier | None] = Field(description="the DORA report's tier of each key (None: nothing to grade)")


class AppDora(DoraKeys):
    environments: dict[str, DoraKeys] = Field(default_factory=dict)


class DoraMetrics(DoraKeys):
    """Every app together, then each app, then each environment of each app."""

    window_days: float
    apps: dict[str, AppDora] = Field(default_factory=dict)
    source: str = Field(default=TIERS_SOURCE, description="where the tiers come from")


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None  # to the millisecond: restores take ms


class _Tally:
    """What one set of deployments contributes to the four keys."""

    def __init__(self) -> None:
        self.deployments = 0
        self.live = 0
        self.failed = 0
        self.changes = 0
        self.lead_times: list[float] = []
        self.restores: list[float] = []

    def keys(self, days: float) -> dict[str, object]:
        frequency = round(self.live / days, 2)
        lead = _median(self.lead_times)
        rate = round(self.failed / self.changes, 3) if self.changes else None
        restore = _median(self.restores)
        values: dict[Key, float | None] = {
            "deployment_frequency": frequency,
            "lead_time": lead,
            "change_failure_rate": rate,
            "time_to_restore": restore,
        }
        return {
            "deployments": self.deployments,
            "succeeded": self.live,
            "failed_changes": self.failed,
            "deployment_frequency_per_day": frequency,
            "lead_time_seconds_median": lead,
            "change_failure_rate": rate,
            "time_to_restore_seconds_median": restore,
            "tiers": {key: tier_of(key, value) for key, value in values.items()},
        }


def _tally_app(record: DeploymentRecord, tally: _Tally) -> None:
    tally.deployments += 1
    if record.finished_at is None:
        return
    failed, live = failed_change(record), went_live(record)
    # A change counts once: a release rolled back by hand after going live was deployed, and is a failed change;
    # one that went live in an earlier environment and stopped before the next (a gate, a freeze) reached a target.
    reached = any(went_live_in(entry, _events_in(record, name)) for name, entry in record.environments.items())
    tally.changes += failed or live or reached
    tally.failed += failed
    tally.live += live
    if live and record.commit_time is not None:
        tally.lead_times.append((record.finished_at - record.commit_time).total_seconds())
    for name in rolled_back_environments(record):
        span = restore_span(record, name)
        if span is not None:
            tally.restores.append((span[1] - span[0]).total_seconds())


def _tally_environment(record: DeploymentRecord, name: str, entry: EnvironmentEntry, tally: _Tally) -> None:
    tally.deployments += 1
    if record.finished_at is None:
        return
    failed, live = entry.status is EnvironmentStatus.ROLLED_BACK, went_live_in(entry, _events_in(record, name))
    tally.changes += failed or live
    tally.failed += failed
    tally.live += live
    if failed:
        span = restore_span(record, name)
        if span is not None:
            tally.restores.append((span[1] - span[0]).total_seconds())
    went_live_at = live_at(record, name) if live else None
    if went_live_at is not None and record.commit_time is not None:
        tally.lead_times.append((went_live_at - record.commit_time).total_seconds())


def dora_metrics(records: Iterable[DeploymentRecord], *, since: datetime, until: datetime) -> DoraMetrics:
    window = sorted((r for r in records if since <= r.created_at <= until), key=lambda r: r.created_at)
    days = max((until - since).total_seconds() / DAY, 1 / 24)
    overall = _Tally()
    apps: dict[str, _Tally] = defaultdict(_Tally)
    environments: dict[str, dict[str, _Tally]] = defaultdict(lambda: defaultdict(_Tally))
    for record in window:
        _tally_app(record, overall)
        _tally_app(record, apps[record.app])
        for name, entry in record.environments.items():
            if entry.status in (EnvironmentStatus.LIVE, EnvironmentStatus.ROLLED_BACK) or record.finished_at is None:
                _tally_environment(record, name, entry, environments[record.app][name])
    return DoraMetrics.model_validate(
        overall.keys(days)
        | {
            "window_days": round(days, 2),
            "apps": {
                app: tally.keys(days)
                | {"environments": {name: env.keys(days) for name, env in sorted(environments[app].items())}}
                for app, tally in sorted(apps.items())
            },
        }
    )


def measured(ledger: Ledger, *, app: str | None, since: datetime, until: datetime) -> DoraMetrics:
    """The four keys over the deployments (of ``app``) created between ``since`` and ``until``, read from the ledger
    with their stage events: the ledger's history lists records without them, and time to restore and each
    environment's lead time are read from the events (one read per deployment in the window)."""
    listed = ledger.history(app=app, limit=10_000)
    records = [ledger.get(r.deployment_id) or r for r in listed if since <= r.created_at <= until]
    return dora_metrics(records, since=since, until=until)


__all__ = [
    "KEYS",
    "PERFORMANCE_LEVELS",
    "AppDora",
    "DoraKeys",
    "DoraMetrics",
    "Level",
    "Tier",
    "dora_metrics",
    "failed_change",
    "measured",
    "restore_span",
    "tier_of",
]
