"""DORA's four keys from the ledger: per app and environment, manual rollbacks as failures, restore to the restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conveyor.domain.dora import PERFORMANCE_LEVELS, Tier, dora_metrics, failed_change, measured, tier_of
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.manual_rollback import manual_rollback
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import LambdaTarget
from conveyor.domain.records import DeploymentRecord, StageEvent

from tests.fakes import FakeLedger, FakeLocks, FakeTargets

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(
    n: int, status: Outcome, *, app: str = "hello", hours: float, took: float = 60, commit_ago: float | None = None
) -> DeploymentRecord:
    created = T0 + timedelta(hours=hours)
    finished = None if status is Outcome.IN_PROGRESS else created + timedelta(seconds=took)
    return DeploymentRecord(
        deployment_id=f"d-{n}",
        app=app,
        version=f"1.{n}.0",
        status=status,
        created_at=created,
        updated_at=created,
        finished_at=finished,
        commit_time=created - timedelta(seconds=commit_ago) if commit_ago is not None else None,
    )


def event(
    deployment: str, stage: str, env: str, *, at: float, took: float = 1, status: str = "succeeded", **detail: Any
) -> StageEvent:
    """A stage event of ``deployment`` in ``env`` that started ``at`` seconds after T0."""
    started = T0 + timedelta(seconds=at)
    return StageEvent(
        deployment_id=deployment,
        stage=stage,
        environment=env,
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=took),
        duration_ms=took * 1000,
        detail=detail,
    )


def in_ledger(ledger: FakeLedger, rec: DeploymentRecord, environments: dict[str, dict[str, Any]]) -> None:
    """Put ``rec`` in ``ledger`` with its environments, keeping its own times."""
    ledger.start(rec)
    ledger.records[rec.deployment_id]["environments"] = environments


def window(ledger: FakeLedger) -> Any:
    return measured(ledger, app=None, since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))


def test_a_rolled_back_change_counts_against_the_rate_and_restores_when_rollback_completes() -> None:
    # Given a release whose canary failed its verdict at T0+100s, restored by RollBack at T0+130s,
    # and the next good deployment an hour later
    ledger = FakeLedger()
    in_ledger(ledger, record(1, Outcome.ROLLED_BACK, hours=0, took=200), {"production": {"status": "ROLLED_BACK"}})
    ledger.record_event(event("d-1", "ShiftTraffic", "production", at=10, weight=10))
    ledger.record_event(event("d-1", "EvaluateHealth", "production", at=90, took=10, status="failed"))
    ledger.record_event(event("d-1", "RollBack", "production", at=120, took=10))
    in_ledger(ledger, record(2, Outcome.SUCCEEDED, hours=1), {"production": {"status": "LIVE"}})

    # When the metrics are computed
    metrics = window(ledger)

    # Then time to restore runs from the failed verdict to the rollback's completion, not to the next success
    assert metrics.failed_changes == 1
    assert metrics.change_failure_rate == 0.5
    assert metrics.time_to_restore_seconds_median == 30
    assert metrics.apps["hello"].environments["production"].time_to_restore_seconds_median == 30


def test_a_manual_rollback_of_a_live_release_is_a_failed_change_restored_by_the_rollback() -> None:
    # Given a release that went live in staging, then rolled back by hand (conveyor rollback)
    ledger = FakeLedger()
    now = datetime.now(UTC)
    live = DeploymentRecord(
        deployment_id="d-live",
        app="hello",
        version="1.2.0",
        status=Outcome.SUCCEEDED,
        created_at=now - timedelta(hours=1),
        updated_at=now,
        finished_at=now - timedelta(minutes=50),
        commit_time=now - timedelta(hours=2),
    )
    in_ledger(ledger, live, {"staging": {"status": "LIVE", "version_before": "1", "version_after": "2", "weight": 100}})
    targets = FakeTargets()
    targets.add("hello-staging", alias="live", version="1")
    targets.functions["hello-staging"].versions["2"] = ("new", {})
    targets.route_alias("hello-staging", "live", "2", None)
    manual_rollback(
        "hello",
        "staging",
        None,
        target=LambdaTarget(kind="lambda", function_name="hello-staging", alias="live"),
        lock="arn:aws:lambda:us-east-1:123456789012:function:hello-staging",
        operator="alice",
        ledger=ledger,  # type: ignore[arg-type]
        targets=targets,
        locks=FakeLocks(),
        managed_tag_key="conveyor:managed",
    )

    # When the metrics are computed
    rolled_back = ledger.get("d-live")
    assert rolled_back is not None
    metrics = dora_metrics([rolled_back], since=now - timedelta(days=1), until=now + timedelta(hours=1))

    # Then it was deployed (frequency) and failed (rate), restored from the rollback's start to its end
    (manual,) = ledger.stage_events("ManualRollback")
    assert failed_change(rolled_back) is True
    assert (metrics.succeeded, metrics.failed_changes, metrics.change_failure_rate) == (1, 1, 1.0)
    assert metrics.time_to_restore_seconds_median == round((manual.finished_at - manual.started_at).total_seconds(), 3)
    assert metrics.apps["hello"].environments["staging"].change_failure_rate == 1.0


def test_a_reconciler_restore_runs_from_the_execution_s_end_to_the_restore() -> None:
    # Given an execution stopped at T0+50s mid-canary, restored by the reconciler at T0+65s
    ledger = FakeLedger()
    rollback = {
        "failed_at": (T0 + timedelta(seconds=50)).isoformat(),
        "restored_at": (T0 + timedelta(seconds=65)).isoformat(),
    }
    in_ledger(
        ledger,
        record(1, Outcome.ABORTED, hours=0, took=70),
        {"production": {"status": "ROLLED_BACK", "reconciled": True, "rollback": rollback}},
    )

    metrics = window(ledger)

    assert metrics.failed_changes == 1
    assert metrics.time_to_restore_seconds_median == 15


def test_keys_are_given_per_app_and_per_environment() -> None:
    # Given hello live in staging and production (full traffic in production at T0+600s), and goodbye rolled back
    ledger = FakeLedger()
    in_ledger(
        ledger,
        record(1, Outcome.SUCCEEDED, hours=0, took=900, commit_ago=3000),
        {"staging": {"status": "LIVE"}, "production": {"status": "LIVE"}},
    )
    ledger.record_event(event("d-1", "ShiftTraffic", "staging", at=99, weight=100))
    ledger.record_event(event("d-1", "ShiftTraffic", "production", at=300, weight=50))
    ledger.record_event(event("d-1", "ShiftTraffic", "production", at=599, weight=100))
    in_ledger(
        ledger,
        record(2, Outcome.ROLLED_BACK, app="goodbye", hours=0),
        {"staging": {"status": "LIVE"}, "production": {"status": "ROLLED_BACK"}},
    )

    metrics = window(ledger)

    hello, goodbye = metrics.apps["hello"], metrics.apps["goodbye"]
    # lead time per environment: commit to the traffic step that gave it 100%; for the app: commit to the end
    assert hello.environments["staging"].lead_time_seconds_median == 3100
    assert hello.environments["production"].lead_time_seconds_median == 3600
    assert hello.lead_time_seconds_median == 3900
    assert (hello.change_failure_rate, goodbye.change_failure_rate) == (0.0, 1.0)
    assert goodbye.environments["staging"].change_failure_rate == 0.0
    assert goodbye.environments["production"].change_failure_rate == 1.0
    assert metrics.change_failure_rate == 0.5


def test_a_release_live_in_staging_and_stopped_by_a_production_gate_is_a_change_that_did_not_fail() -> None:
    # Given hello 1.1 rolled back in staging, and 1.2 live in staging and then refused by a production freeze
    ledger = FakeLedger()
    in_ledger(ledger, record(1, Outcome.ROLLED_BACK, hours=0), {"staging": {"status": "ROLLED_BACK"}})
    in_ledger(
        ledger,
        record(2, Outcome.FAILED, hours=1),
        {"staging": {"status": "LIVE"}, "production": {"status": "NOT_DEPLOYED"}},
    )
    # Then the app made two changes, one of which failed (it reached a target: staging), as staging did
    hello = window(ledger).apps["hello"]
    assert hello.change_failure_rate == 0.5
    assert hello.environments["staging"].change_failure_rate == 0.5


def test_each_key_carries_the_tier_of_the_dora_report() -> None:
    # Given two successes a day apart, committed 2 hours before going live, and no failure, over two days
    ledger = FakeLedger()
    in_ledger(ledger, record(1, Outcome.SUCCEEDED, hours=0, took=0, commit_ago=7200), {})
    in_ledger(ledger, record(2, Outcome.SUCCEEDED, hours=24, took=0, commit_ago=7200), {})

    metrics = measured(ledger, app=None, since=T0, until=T0 + timedelta(days=2))

    assert metrics.tiers == {
        "deployment_frequency": Tier.HIGH,  # once a day: not "multiple per day"
        "lead_time": Tier.ELITE,
        "change_failure_rate": Tier.ELITE,
        "time_to_restore": None,  # nothing failed: nothing to grade
    }


@pytest.mark.parametrize(
    ("key", "value", "tier"),
    [
        ("deployment_frequency", 3.0, Tier.ELITE),
        ("deployment_frequency", 1.0, Tier.HIGH),
        ("deployment_frequency", 1 / 7, Tier.HIGH),
        ("deployment_frequency", 1 / 10, Tier.MEDIUM),
        ("deployment_frequency", 1 / 60, Tier.LOW),
        ("lead_time", 3600, Tier.ELITE),
        ("lead_time", 2 * 86400, Tier.HIGH),
        ("lead_time", 10 * 86400, Tier.MEDIUM),
        ("lead_time", 60 * 86400, Tier.LOW),
        ("change_failure_rate", 0.05, Tier.ELITE),
        ("change_failure_rate", 0.15, Tier.HIGH),
        ("change_failure_rate", 0.30, Tier.LOW),
        ("time_to_restore", 600, Tier.ELITE),
        ("time_to_restore", 3600, Tier.HIGH),
        ("time_to_restore", 3 * 86400, Tier.LOW),
    ],
)
def test_the_report_s_thresholds_grade_each_key(key: Any, value: float, tier: Tier) -> None:
    assert tier_of(key, value) is tier


def test_the_levels_table_names_every_key_with_a_catch_all_low_tier() -> None:
    assert set(PERFORMANCE_LEVELS) == {"deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"}
    for levels in PERFORMANCE_LEVELS.values():
        assert [level.tier for level in levels] == [Tier.ELITE, Tier.HIGH, Tier.MEDIUM, Tier.LOW]
        assert levels[-1].limit is None


def test_no_finished_change_gives_no_rates_rather_than_zero() -> None:
    metrics = dora_metrics([record(1, Outcome.FAILED, hours=0)], since=T0, until=T0 + timedelta(days=1))

    assert metrics.change_failure_rate is None
    assert metrics.lead_time_seconds_median is None
    assert metrics.time_to_restore_seconds_median is None


def test_records_outside_the_window_are_ignored() -> None:
    records = [record(1, Outcome.SUCCEEDED, hours=-48), record(2, Outcome.SUCCEEDED, hours=1)]

    metrics = dora_metrics(records, since=T0, until=T0 + timedelta(days=1))

    assert metrics.succeeded == 1


def test_a_stopped_deployment_counts_as_a_failed_change_only_if_its_traffic_was_restored() -> None:
    base = {"deployment_id": "d-1", "app": "a", "version": "1", "created_at": "2024-01-01T00:00:00Z"}
    base |= {"updated_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:01:00Z"}
    restored = DeploymentRecord.model_validate(
        base | {"status": "ABORTED", "environments": {"production": {"status": "ROLLED_BACK"}}}
    )
    waiting = DeploymentRecord.model_validate(
        base | {"status": "ABORTED", "environments": {"staging": {"status": "QUEUED"}}}
    )
    assert failed_change(restored) is True
    assert failed_change(waiting) is False
    assert EnvironmentStatus.ROLLED_BACK in {env.status for env in restored.environments.values()}


def test_conveyor_metrics_shows_each_scope_with_its_tiers() -> None:
    from rich.console import Console

    from conveyor_cli.metrics import print_metrics

    ledger = FakeLedger()
    live = record(1, Outcome.SUCCEEDED, hours=0, took=0, commit_ago=7200)
    in_ledger(ledger, live, {"production": {"status": "LIVE"}})
    console = Console(record=True, width=200, color_system=None)

    print_metrics(window(ledger), console)

    text = console.export_text()
    assert "hello/production" in text
    assert "2 h elite" in text  # lead time with its tier


def test_a_median_keeps_milliseconds_so_a_fast_restore_is_not_shown_as_zero() -> None:
    from conveyor.domain.dora import _median

    # Restores on a local cloud take tens of milliseconds: rounded to 0.1 s they read "0 ms"
    assert _median([0.0474, 0.08, 0.003]) == 0.047
