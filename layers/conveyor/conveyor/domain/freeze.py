"""Freezes: when a release may not start moving, and until when.

Two sources, one rule:

- **freeze windows** in the pipeline spec (``freeze_windows``), each with a ``reason`` and optionally limited to
  named ``environments``: ``recurring`` (a daily or weekly span of wall-clock time in an IANA ``timezone``,
  UTC by default) or ``once`` (two instants with their UTC offsets);
- **operator freezes** (``conveyor freeze APP|--all``): an emergency stop stored in the ledger table, with who
  froze (the caller's AWS identity), why, and optionally ``until`` when it lifts by itself.

A window is half-open: frozen from ``start`` (included) to ``end`` (excluded), so back-to-back windows leave no
gap and a deployment arriving exactly at ``end`` goes on. Wall-clock times follow the zone's daylight saving
changes: ``fri 18:00`` Europe/Paris is 17:00 UTC in winter and 16:00 UTC in summer, and a window spanning the
change is an hour shorter or longer. A wall time that does not exist that day (inside the spring-forward gap)
is read with the offset before the change (``02:30`` is then ``03:30``); one that occurs twice is its first
occurrence. Overlapping or touching windows chain: ``frozen_until`` is the first instant no window covers.

Pure: no I/O, time passed in. The gate stage (``conveyor.stages.gate``) decides what a freeze means for a
deployment (wait or refuse, ``on_freeze``); ``pipeline.py`` carries the spec fields.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

FreezeReason = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
MAX_FREEZE_WINDOWS = 20
"""Windows per pipeline: every one travels in the execution's state with the spec."""
FREEZE_HORIZON = timedelta(days=400)
"""How far ``frozen_until`` looks ahead: a freeze still on by then is reported as ending there (never reached:
no deployment waits longer than ``freeze_wait_seconds``)."""
ALL_APPS = "*"
"""The scope of ``conveyor freeze --all``: every app."""

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WALL_TIME = re.compile(r"^(?:(?P<day>mon|tue|wed|thu|fri|sat|sun) )?(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        if not available_timezones():  # (scanned only on this error path)
            raise ValueError(
                f"time zone {name!r}: this Python finds no IANA time zone database (system zoneinfo or the tzdata "
                "package); use UTC or install tzdata"
            ) from exc
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris, or UTC)") from exc


def _parse_wall(value: str) -> tuple[int | None, time]:
    match = _WALL_TIME.match(value)
    if match is None:
        raise ValueError(f"{value!r}: expected 'HH:MM' (every day) or 'DAY HH:MM' with DAY one of {', '.join(_DAYS)}")
    day = match["day"]
    return (_DAYS.index(day) if day else None), time(int(match["hour"]), int(match["minute"]))


class Occurrence(BaseModel):
    """One occurrence of a window: frozen from ``start`` (included) to ``end`` (excluded), both UTC."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    start: datetime
    end: datetime

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


class RecurringSpan(_Spec):
    """Every day (``start: "22:00"``, ``end: "06:00"``) or every week (``start: "fri 15:00"``, ``end: "mon 08:00"``),
    in ``timezone``'s wall-clock time. An ``end`` at or before ``start`` ends the next day (daily) or the next
    week (weekly); both name a day, or neither."""

    start: str = Field(description="'HH:MM' (daily) or 'DAY HH:MM' (weekly; DAY: mon..sun), wall-clock time")
    end: str = Field(description="same form as start; at or before start: the next day (or week)")
    timezone: str = Field(default="UTC", description="IANA time zone of start and end (daylight saving followed)")

    @field_validator("start", "end")
    @classmethod
    def _wall_time(cls, value: str) -> str:
        _parse_wall(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @model_validator(mode="after")
    def _same_form(self) -> "RecurringSpan":
        (start_day, start_time), (end_day, end_time) = _parse_wall(self.start), _parse_wall(self.end)
        if (start_day is None) != (end_day is None):
            raise ValueError("start and end must both name a day (weekly) or neither (daily)")
        if (start_day, start_time) == (end_day, end_time):
            raise ValueError(f"start and end are both {self.start!r}: a window that never ends is an operator freeze")
        return self

    def occurrence_at(self, at: datetime) -> Occurrence | None:
        """The occurrence covering ``at`` (aware), if any."""
        zone = _zone(self.timezone)
        (start_day, start_time), (end_day, end_time) = _parse_wall(self.start), _parse_wall(self.end)
        local_day = at.astimezone(zone).date()
        if start_day is None or end_day is None:
            span_days = 0 if end_time > start_time else 1
            candidates = [local_day - timedelta(days=1), local_day]
        else:
            span_days = (end_day - start_day) % 7
            if span_days == 0 and end_time <= start_time:
                span_days = 7
            latest = local_day - timedelta(days=(local_day.weekday() - start_day) % 7)
            candidates = [latest - timedelta(days=7), latest]
        for day in candidates:
            occurrence = Occurrence(
                start=_instant(day, start_time, zone), end=_instant(day + timedelta(days=span_days), end_time, zone)
            )
            if occurrence.covers(at):
                return occurrence
        return None


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``wall`` on ``day`` in ``zone`` (fold 0: a repeated time's first occurrence, a missing
    one read with the offset before the change)."""
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


class OneOffSpan(_Spec):
    """From ``start`` to ``end``: ISO 8601 instants with their offset (``2026-12-20T00:00:00+01:00``, ``...Z``)."""

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> "OneOffSpan":
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        return self

    def occurrence_at(self, at: datetime) -> Occurrence | None:
        occurrence = Occurrence(start=self.start.astimezone(UTC), end=self.end.astimezone(UTC))
        return occurrence if occurrence.covers(at) else None


class FreezeWindow(_Spec):
    """A time when no deployment starts in the named environments (all of them when none are named)."""

    reason: FreezeReason = Field(description="shown in the ledger and the notification of a deployment it stops")
    recurring: RecurringSpan | None = Field(default=None, description="a daily or weekly window (exactly one of these)")
    once: OneOffSpan | None = Field(default=None, description="a one-off window between two instants")
    environments: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]] = Field(
        default_factory=list, max_length=10, description="the environments it freezes; empty: every environment"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> "FreezeWindow":
        if (self.recurring is None) == (self.once is None):
            raise ValueError("a freeze window is either recurring or once: give exactly one of them")
        return self

    def applies_to(self, environment: str) -> bool:
        return not self.environments or environment in self.environments

    def occurrence_at(self, at: datetime) -> Occurrence | None:
        span = self.recurring if self.recurring is not None else self.once
        assert span is not None  # _one_shape
        return span.occurrence_at(at)

    def describe(self) -> str:
        if self.recurring is not None:
            return f"{self.recurring.start} to {self.recurring.end} {self.recurring.timezone}"
        assert self.once is not None
        return f"{self.once.start.isoformat()} to {self.once.end.isoformat()}"


class OperatorFreeze(BaseModel):
    """``conveyor freeze``: an emergency stop of one app (``scope`` = the app) or of all (``scope`` = ``*``)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    scope: str = Field(description=f"the app frozen, or {ALL_APPS!r} for every app")
    reason: FreezeReason
    by: str = Field(description="the AWS identity (STS caller ARN) that froze")
    at: datetime
    until: datetime | None = Field(default=None, description="when it lifts by itself; None: until `unfreeze`")

    def active(self, at: datetime) -> bool:
        return self.until is None or at < self.until

    def covers(self, app: str) -> bool:
        return self.scope in (ALL_APPS, app)

    def describe(self) -> str:
        what = "every app" if self.scope == ALL_APPS else f"app {self.scope}"
        lifts = f"until {self.until.isoformat()}" if self.until else "until `conveyor unfreeze`"
        return f"{what} frozen by {self.by} at {self.at.isoformat()} ({lifts}): {self.reason}"


class ActiveFreeze(BaseModel):
    """Why an environment is frozen now, and until when (None: until an operator lifts it)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["window", "operator"]
    reason: str = Field(description="what a person reads: which window or who froze, and why")
    until: datetime | None


def active_freezes(
    windows: list[FreezeWindow], operator: list[OperatorFreeze], *, app: str, environment: str, at: datetime
) -> list[ActiveFreeze]:
    """Every freeze in force for ``app``'s ``environment`` at ``at``; operator freezes first."""
    found = [
        ActiveFreeze(kind="operator", reason=f.describe(), until=f.until)
        for f in operator
        if f.covers(app) and f.active(at)
    ]
    for window in windows:
        if not window.applies_to(environment):
            continue
        occurrence = window.occurrence_at(at)
        if occurrence is not None:
            found.append(
                ActiveFreeze(
                    kind="window",
                    reason=f"freeze window {window.describe()} ({window.reason})",
                    until=occurrence.end,
                )
            )
    return found


def frozen_until(
    windows: list[FreezeWindow], operator: list[OperatorFreeze], *, app: str, environment: str, at: datetime
) -> datetime | None:
    """The first instant from ``at`` on that no freeze covers (``at`` itself when none does); None while an
    operator freeze without ``until`` is on (only ``unfreeze`` ends it). Overlapping and touching windows chain;
    a freeze still on after ``FREEZE_HORIZON`` is reported as ending there."""
    moment, horizon = at, at + FREEZE_HORIZON
    while moment < horizon:
        now_on = active_freezes(windows, operator, app=app, environment=environment, at=moment)
        if not now_on:
            return moment
        ends = [freeze.until for freeze in now_on]
        if any(end is None for end in ends):
            return None
        moment = max(end for end in ends if end is not None)
    return horizon
