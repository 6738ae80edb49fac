"""Freeze windows and operator freezes (conveyor.domain.freeze): which freeze is on at an instant, until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import conveyor.domain.freeze as freeze_module
import pytest
from conveyor.domain.errors import PipelineInvalidError
from conveyor.domain.freeze import FREEZE_HORIZON, FreezeWindow, OperatorFreeze, active_freezes, frozen_until
from conveyor.domain.pipeline import PipelineSpec
from pydantic import ValidationError

from tests.fakes import pipeline_yaml


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def window(**fields: Any) -> FreezeWindow:
    return FreezeWindow.model_validate({"reason": "test", **fields})


WEEKEND = window(reason="weekend", recurring={"start": "fri 15:00", "end": "mon 08:00", "timezone": "Europe/Paris"})
NIGHTS = window(reason="nightly batch", recurring={"start": "22:00", "end": "06:00"})


def until(windows: list[FreezeWindow], moment: str, *, operator: list[OperatorFreeze] | None = None) -> datetime | None:
    return frozen_until(windows, operator or [], app="hello", environment="production", at=at(moment))


@pytest.mark.parametrize(
    ("moment", "frozen"),
    [
        ("2026-12-04T13:59:59+00:00", False),  # Friday 14:59:59 in Paris (UTC+1): a second before
        ("2026-12-04T14:00:00+00:00", True),  # Friday 15:00 Paris: the start is included
        ("2026-12-06T12:00:00+00:00", True),  # Sunday
        ("2026-12-07T06:59:59+00:00", True),  # Monday 07:59:59 Paris
        ("2026-12-07T07:00:00+00:00", False),  # Monday 08:00 Paris: the end is excluded
        ("2026-12-09T12:00:00+00:00", False),  # Wednesday
    ],
)
def test_a_weekly_window_is_half_open_in_its_time_zone(moment: str, frozen: bool) -> None:
    assert (WEEKEND.occurrence_at(at(moment)) is not None) is frozen


def test_a_daily_window_spans_midnight() -> None:
    # Given a nightly window 22:00 to 06:00 UTC
    # Then 23:00 and 05:59 are frozen until 06:00 the next morning, 06:00 and 21:59 are not
    assert until([NIGHTS], "2026-12-03T23:00:00+00:00") == at("2026-12-04T06:00:00+00:00")
    assert until([NIGHTS], "2026-12-04T05:59:00+00:00") == at("2026-12-04T06:00:00+00:00")
    assert until([NIGHTS], "2026-12-04T06:00:00+00:00") == at("2026-12-04T06:00:00+00:00")
    assert NIGHTS.occurrence_at(at("2026-12-04T21:59:00+00:00")) is None


def test_a_weekly_window_follows_daylight_saving_time() -> None:
    # Given the Paris weekend window, and the weekend clocks go forward (29 March 2026, 02:00 -> 03:00)
    occurrence = WEEKEND.occurrence_at(at("2026-03-28T12:00:00+00:00"))
    # Then it starts at 15:00 winter time (14:00 UTC) and ends at 08:00 summer time (06:00 UTC): an hour shorter
    assert occurrence is not None
    assert (occurrence.start, occurrence.end) == (at("2026-03-27T14:00:00+00:00"), at("2026-03-30T06:00:00+00:00"))
    assert occurrence.end - occurrence.start == timedelta(hours=64)


def test_a_wall_time_in_the_spring_forward_gap_is_read_with_the_offset_before_it() -> None:
    # Given a daily window from 02:30, a time that does not exist in Paris on 29 March 2026
    gap = window(recurring={"start": "02:30", "end": "04:00", "timezone": "Europe/Paris"})
    # Then that day it starts at 02:30+01:00 (01:30 UTC, which the clocks show as 03:30)
    occurrence = gap.occurrence_at(at("2026-03-29T01:45:00+00:00"))
    assert occurrence is not None
    assert occurrence.start == at("2026-03-29T01:30:00+00:00")
    assert occurrence.end == at("2026-03-29T02:00:00+00:00")


def test_a_one_off_window_ends_where_it_says() -> None:
    year_end = window(once={"start": "2026-12-20T00:00:00+01:00", "end": "2027-01-04T08:00:00+01:00"})
    assert until([year_end], "2026-12-19T22:59:59+00:00") == at("2026-12-19T22:59:59+00:00")
    assert until([year_end], "2026-12-19T23:00:00+00:00") == at("2027-01-04T07:00:00+00:00")


def test_overlapping_and_touching_windows_chain() -> None:
    # Given a one-off freeze from Friday 10:00 UTC to 15:00 Paris time, touching the weekend window, and the nights
    friday = window(once={"start": "2026-12-04T10:00:00Z", "end": "2026-12-04T14:00:00Z"})
    # Then a deployment on Friday at 11:00 UTC is frozen until the weekend ends, Monday 08:00 Paris
    assert until([friday, WEEKEND, NIGHTS], "2026-12-04T11:00:00+00:00") == at("2026-12-07T07:00:00+00:00")


def test_a_window_limited_to_an_environment_leaves_the_others_alone() -> None:
    production_only = window(
        once={"start": "2026-12-01T00:00:00Z", "end": "2026-12-31T00:00:00Z"}, environments=["production"]
    )
    moment = at("2026-12-03T12:00:00+00:00")
    assert active_freezes([production_only], [], app="hello", environment="staging", at=moment) == []
    assert len(active_freezes([production_only], [], app="hello", environment="production", at=moment)) == 1


def test_an_operator_freeze_without_until_has_no_known_end_and_names_who_froze() -> None:
    stop = OperatorFreeze(
        scope="*", reason="incident 42", by="arn:aws:iam::1:user/alice", at=at("2026-12-03T10:00:00Z")
    )
    assert until([], "2026-12-03T12:00:00+00:00", operator=[stop]) is None
    (active,) = active_freezes([], [stop], app="hello", environment="production", at=at("2026-12-03T12:00:00Z"))
    assert "every app frozen by arn:aws:iam::1:user/alice" in active.reason
    assert "incident 42" in active.reason


def test_an_operator_freeze_lifts_at_its_until_and_covers_only_its_app() -> None:
    stop = OperatorFreeze(
        scope="hello", reason="db migration", by="me", at=at("2026-12-03T10:00:00Z"), until=at("2026-12-03T13:00:00Z")
    )
    assert until([], "2026-12-03T12:00:00+00:00", operator=[stop]) == at("2026-12-03T13:00:00+00:00")
    assert active_freezes([], [stop], app="hello", environment="production", at=at("2026-12-03T13:00:00Z")) == []
    assert active_freezes([], [stop], app="other", environment="production", at=at("2026-12-03T12:00:00Z")) == []


def test_a_freeze_that_never_ends_is_reported_at_the_horizon() -> None:
    always = [
        window(recurring={"start": "00:00", "end": "12:00"}),
        window(recurring={"start": "12:00", "end": "00:00"}),
    ]
    moment = at("2026-12-03T12:00:00+00:00")
    assert until(always, "2026-12-03T12:00:00+00:00") == moment + FREEZE_HORIZON


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"recurring": {"start": "fri 15:00", "end": "08:00"}}, "both name a day"),
        ({"recurring": {"start": "15:00", "end": "15:00"}}, "never ends"),
        ({"recurring": {"start": "25:00", "end": "08:00"}}, "expected 'HH:MM'"),
        ({"recurring": {"start": "10:00", "end": "11:00", "timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"once": {"start": "2026-12-20T00:00:00", "end": "2026-12-21T00:00:00Z"}}, "timezone"),
        ({"once": {"start": "2026-12-21T00:00:00Z", "end": "2026-12-20T00:00:00Z"}}, "is not after start"),
        ({}, "exactly one"),
    ],
)
def test_a_window_that_cannot_be_read_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        window(**fields)


def test_the_spec_carries_freeze_windows_and_names_a_bad_one() -> None:
    spec = PipelineSpec.from_yaml(
        pipeline_yaml(freeze_windows=[{"reason": "weekend", "recurring": {"start": "sat 00:00", "end": "mon 00:00"}}]),
        "hello.yaml",
    )
    assert spec.policy.freeze_windows[0].reason == "weekend"
    assert (spec.on_freeze, spec.freeze_wait_seconds) == ("refuse", 3600)
    with pytest.raises(PipelineInvalidError, match="freeze_windows"):
        PipelineSpec.from_yaml(pipeline_yaml(freeze_windows=[{"reason": "x", "recurring": {"start": "sat"}}]), "h.yaml")
    # a window naming an environment the pipeline does not have would freeze nothing: refused, naming it
    typo = {"reason": "x", "recurring": {"start": "22:00", "end": "06:00"}, "environments": ["staging", "prod"]}
    with pytest.raises(
        PipelineInvalidError, match=r"freeze_windows\[0\]\.environments\[1\]: 'prod' is not an environment"
    ):
        PipelineSpec.from_yaml(pipeline_yaml(freeze_windows=[typo]), "h.yaml")
    with pytest.raises(PipelineInvalidError, match="freeze_wait_seconds"):
        PipelineSpec.from_yaml(pipeline_yaml(freeze_wait_seconds=12 * 3600), "h.yaml")


def test_a_python_without_a_zone_database_says_so_rather_than_blaming_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a runtime with no IANA time zone database (no system zoneinfo, no tzdata package)
    monkeypatch.setattr(freeze_module, "ZoneInfo", _no_zone)
    monkeypatch.setattr(freeze_module, "available_timezones", set)
    # Then a window in Europe/Paris is refused naming the missing database
    with pytest.raises(ValidationError, match="finds no IANA time zone database"):
        window(recurring={"start": "10:00", "end": "11:00", "timezone": "Europe/Paris"})


def _no_zone(name: str) -> ZoneInfo:
    raise ZoneInfoNotFoundError(f"No time zone found with key {name}")
