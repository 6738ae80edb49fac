"""What the CLI and the notifications print reads as prose: no Python reprs, no ``- -``, durations a person reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conveyor.domain.dora import DoraMetrics
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.notices import render_failure
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.timing import utcnow
from rich.console import Console

from conveyor_cli.metrics import print_metrics
from conveyor_cli.output import human_duration
from conveyor_cli.status import describe_event, history_row, render

NOW = utcnow()


def event(stage: str, detail: dict[str, object], status: str = "succeeded") -> StageEvent:
    return StageEvent(
        deployment_id="d-1",
        stage=stage,
        status=status,
        started_at=NOW,
        finished_at=NOW,
        duration_ms=1.0,
        detail=detail,
    )


def record(**fields: object) -> DeploymentRecord:
    values: dict[str, object] = {
        "deployment_id": "d-1",
        "app": "hello",
        "version": "1.4.2",
        "status": Outcome.SUCCEEDED,
        "created_at": NOW - timedelta(minutes=5),
        "updated_at": NOW,
        "finished_at": NOW,
    }
    return DeploymentRecord.model_validate(values | fields)


@pytest.mark.parametrize(
    ("stage", "detail", "expected"),
    [
        (
            "ValidateArtifact",
            {"package_sha256": "ab" * 32, "environments": ["staging", "production"]},
            "staging, production",
        ),
        (
            "Finalize",
            {"versions": {"staging": {"before": "3", "after": "4"}, "production": {"before": None, "after": "4"}}},
            "staging v3 -> v4, production none -> v4",
        ),
        (
            "RollBack",
            {
                "function_name": "orders-api",
                "restored_version": "2",
                "rolled_back_from": "3",
                "companions": [{"function_name": "orders-worker", "restored_version": "2", "rolled_back_from": "3"}],
            },
            "restored orders-api 2 (from 3), orders-worker 2 (from 3)",
        ),
    ],
)
def test_the_timeline_shows_no_python_reprs(stage: str, detail: dict[str, object], expected: str) -> None:
    line = describe_event(event(stage, detail))
    assert expected in line
    for repr_mark in ("[", "]", "{", "}", "'", "None"):
        assert repr_mark not in line


def test_a_whole_status_reads_without_reprs() -> None:
    shown = render(
        record(
            events=[
                event("ValidateArtifact", {"package_sha256": "ab" * 32, "environments": ["staging"]}),
                event("Finalize", {"versions": {"staging": {"before": "1", "after": "2"}}}),
            ]
        )
    )
    assert "['" not in shown
    assert "{'" not in shown
    assert "in 5 min" in shown  # the duration, as a person reads it


def test_a_subject_names_a_push_whose_key_names_no_app() -> None:
    # Given a push outside the layout (no app or version in its key): the ledger records them as "-"
    unknown = record(
        app="-", version="-", status=Outcome.FAILED, artifact={"bucket": "b", "key": "artifacts/hello.zip"}
    )
    # When its failure is told
    subject, body = render_failure(unknown, Outcome.FAILED, "ValidateArtifact", None, "bad key")
    # Then the subject names the push, never "- -"
    assert subject == "[Conveyor] push artifacts/hello.zip validation: FAILED"
    assert " - - " not in subject + body
    assert "of push artifacts/hello.zip: FAILED" in body


def test_a_subject_without_a_key_names_the_deployment() -> None:
    unknown = record(app="-", version="-", status=Outcome.FAILED)
    subject, _ = render_failure(unknown, Outcome.FAILED, "ValidateArtifact", None, "no key")
    assert subject == "[Conveyor] deployment d-1 validation: FAILED"


def test_metrics_read_in_human_durations_and_percent() -> None:
    keys = {
        "deployments": 4,
        "succeeded": 3,
        "failed_changes": 1,
        "deployment_frequency_per_day": 0.5,
        "lead_time_seconds_median": 7260.0,
        "change_failure_rate": 0.25,
        "time_to_restore_seconds_median": None,
        "tiers": {},
    }
    console = Console(record=True, width=200)
    print_metrics(DoraMetrics.model_validate({**keys, "window_days": 30.0}), console)
    text = console.export_text()
    assert "2 h 1 min" in text
    assert "25% (1)" in text
    assert "0.5/day" in text


def test_metrics_piped_are_printed_whole(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # pytest-xdist's workers set 80; a CI log has none
    # Given an app whose name and environment make a row wider than 80 columns
    keys = {
        "deployments": 2,
        "succeeded": 1,
        "deployment_frequency_per_day": 0.5,
        "lead_time_seconds_median": 7260.0,
        "failed_changes": 1,
        "change_failure_rate": 0.25,
        "time_to_restore_seconds_median": 47.0,
        "tiers": {},
    }
    app = "a-service-with-a-rather-long-name"
    metrics = {**keys, "window_days": 30.0, "apps": {app: {**keys, "environments": {"production-eu": keys}}}}

    # When the table is printed to a pipe (a CI log), Then no cell is cut or folded
    print_metrics(DoraMetrics.model_validate(metrics))
    out = capsys.readouterr().out
    assert f"  {app}/production-eu" in out
    assert "time to restore" in out
    # And it is plain text, as every read command's table is when piped: no box drawing
    assert not set(out) & set("┏━┃│─┡┗┛┓╇┼")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.25, "250 ms"), (4.25, "4.2 s"), (200, "3 min 20 s"), (3600, "1 h"), (93_600, "1 d 2 h")],
)
def test_human_durations(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_history_shows_when_it_started_and_a_manual_rollback_after_it() -> None:
    rolled = record(
        environments={
            "production": EnvironmentEntry(
                status=EnvironmentStatus.ROLLED_BACK,
                rollback={
                    "reason": "manual, by alice",
                    "operator": "alice",
                    "restored_version": "3",
                    "rolled_back_at": "2026-12-03T10:00:00+00:00",
                },
            )
        }
    )
    row = history_row(rolled)
    assert row[3] == "SUCCEEDED"
    assert row[4] == (NOW - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%SZ")
    assert row[5] == "5 min"
    assert row[6] == "production rolled back by hand by alice at 2026-12-03 10:00:00Z (to version 3)"


def test_a_first_deployment_reads_none_before_not_a_python_none() -> None:
    first = record(
        environments={
            "staging": EnvironmentEntry(
                status=EnvironmentStatus.LIVE, function_name="hello-staging", alias="live", version_after="1"
            ),
            "production": EnvironmentEntry(),
        }
    )
    shown = render(first)
    assert "alias before: none  after: 1  (LIVE)" in shown
    assert "(not reached)" in shown
    assert "None" not in shown


def test_an_environment_mid_shift_shows_each_version_with_its_share() -> None:
    shifting = record(
        environments={
            "staging": EnvironmentEntry(
                status=EnvironmentStatus.SHIFTING,
                function_name="hello-staging",
                alias="live",
                version_before="12",
                version_after="13",
                weight=10,
            ),
            "production": EnvironmentEntry(
                status=EnvironmentStatus.SHIFTING,
                function_name="hello-prod",
                alias="live",
                version_before="4",
                version_after="5",
                weight=100,
            ),
        }
    )
    shown = render(shifting)
    assert "alias before: 12  after: 13 at 10% (12 at 90%)  (SHIFTING)" in shown
    assert "alias before: 4  after: 5  (SHIFTING)" in shown
