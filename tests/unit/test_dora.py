from datetime import UTC, datetime, timedelta

from conveyor.domain.contracts import Outcome
from conveyor.domain.dora import dora_metrics, failed_change
from conveyor.domain.records import DeploymentRecord

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(
    n: int, status: Outcome, *, app: str = "hello", hours: float, took: float = 60, commit_ago: float | None = None
):
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


def test_frequency_failure_rate_and_restore_time_come_from_finished_changes() -> None:
    # Given two successes, one rollback restored by the next success, a refusal and one still running
    records = [
        record(1, Outcome.SUCCEEDED, hours=0, commit_ago=3600),
        record(2, Outcome.ROLLED_BACK, hours=1),
        record(3, Outcome.SUCCEEDED, hours=2, commit_ago=600),
        record(4, Outcome.FAILED, hours=3),
        record(5, Outcome.IN_PROGRESS, hours=4),
    ]

    # When the metrics are computed over two days
    metrics = dora_metrics(records, since=T0, until=T0 + timedelta(days=2))

    # Then the refusal (FAILED before deploying) is not a change, and the rollback is
    assert metrics.deployments == 5
    assert metrics.succeeded == 2
    assert metrics.failed_changes == 1
    assert metrics.deployment_frequency_per_day == 1.0
    assert metrics.change_failure_rate == round(1 / 3, 3)
    # restore: rollback finished at 1h+60s, the next success finished at 2h+60s
    assert metrics.time_to_restore_seconds_median == 3600
    # lead time: commit to live, median of (3600+60, 600+60)
    assert metrics.lead_time_seconds_median == 2160


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
