"""A manual rollback (``conveyor rollback``) is the library's: under the target's lock, recorded, refused by name."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import NothingToRollBackError, TargetLockedError
from conveyor.domain.manual_rollback import manual_rollback
from conveyor.domain.pipeline import LambdaTarget
from conveyor.domain.records import LockState
from conveyor.domain.timing import utcnow

from tests.fakes import FakeLocks, FakeTargets, stage_event
from tests.unit.conftest import build_step, started_ledger

LOCK = "arn:aws:lambda:us-east-1:123456789012:function:hello-staging"
TARGET = LambdaTarget(kind="lambda", function_name="hello-staging", alias="live")


def _world() -> tuple[FakeTargets, FakeLocks, object]:
    # Given staging live on version 2, put there by a deployment that replaced version 1
    step = build_step()
    ledger = started_ledger(step)
    ledger.update_environment(
        "d-unit",
        "staging",
        {"status": EnvironmentStatus.LIVE, "version_before": "1", "version_after": "2", "weight": 100},
    )
    targets = FakeTargets()
    targets.add("hello-staging", alias="live", version="1")
    targets.functions["hello-staging"].versions["2"] = ("new", {})
    targets.route_alias("hello-staging", "live", "2", None)
    return targets, FakeLocks(), ledger


def _roll_back(
    targets: FakeTargets, locks: FakeLocks, ledger: object, to: str | None = None, *, to_release: str | None = None
) -> Any:
    return manual_rollback(
        "hello",
        "staging",
        to,
        target=TARGET,
        lock=LOCK,
        operator="alice",
        ledger=ledger,  # type: ignore[arg-type]
        targets=targets,
        locks=locks,
        managed_tag_key="conveyor:managed",
        to_release=to_release,
    )


def test_it_restores_the_version_before_the_live_deployment_and_says_so_on_it() -> None:
    targets, locks, ledger = _world()
    result = _roll_back(targets, locks, ledger)
    assert targets.functions["hello-staging"].aliases["live"] == ("1", {})
    assert (result.restored_version, result.rolled_back_from, result.deployment_id) == ("1", "2", "d-unit")
    entry = ledger.get("d-unit").environments["staging"]  # type: ignore[attr-defined]
    assert entry.status is EnvironmentStatus.ROLLED_BACK
    assert entry.rollback["reason"] == "manual, by alice"
    assert locks.get(LOCK) is None or locks.get(LOCK).holder is None  # released


@pytest.mark.parametrize("down_ran", [False, True])
def test_a_rollback_of_a_release_that_migrated_data_says_the_data_did_not_go_back(down_ran: bool) -> None:
    # Given the live release ran its migration in staging (and, in one case, its down-migration after it)
    targets, locks, ledger = _world()
    stages = ["Migrate", "MigrateDown"] if down_ran else ["Migrate"]
    for stage in stages:
        ledger.record_event(stage_event("d-unit", stage, hook="schema"))  # type: ignore[attr-defined]

    # When a person rolls staging back
    result = _roll_back(targets, locks, ledger)

    # Then the code goes back, and the person is told the data did not (unless a down-migration ran)
    assert targets.functions["hello-staging"].aliases["live"] == ("1", {})
    expected = (
        [] if down_ran else ["the migration 'schema' ran in staging and no down-migration did (run by hello 1.0.0)"]
    )
    assert [warning.split(":")[0] for warning in result.data_left_migrated] == expected


def test_a_held_lock_refuses_it_by_name_and_nothing_moves() -> None:
    targets, locks, ledger = _world()
    locks.try_acquire(
        LOCK,
        holder="exec-1",
        deployment_id="d-next",
        app="hello",
        environment="staging",
        lease_seconds=3600,
        now=time.time(),
    )
    with pytest.raises(TargetLockedError, match="locked by deployment d-next of hello/staging"):
        _roll_back(targets, locks, ledger)
    assert targets.functions["hello-staging"].aliases["live"] == ("2", {})


def test_a_lock_read_while_its_holder_lets_go_still_names_what_it_can() -> None:
    # Given a lock whose item was caught half-released (the holder still set, the rest gone)
    targets, locks, ledger = _world()
    locks.locks[LOCK] = LockState(holder="exec-1", expires_at=time.time() + 3600)
    with pytest.raises(TargetLockedError, match=r"locked by deployment exec-1 of \?/\?;"):
        _roll_back(targets, locks, ledger)


def test_a_split_left_by_a_failed_rollback_is_finished_back_to_what_that_deployment_replaced() -> None:
    # Given staging live on 2 (d-unit), then a deployment of version 3 whose rollback failed at 20%: the alias is
    # split 80% on 2, 20% on 3, and its entry still says SHIFTING
    targets, locks, ledger = _world()
    targets.functions["hello-staging"].versions["3"] = ("newer", {})
    targets.route_alias("hello-staging", "live", "2", {"3": 0.2})
    failed = ledger.get("d-unit").model_copy(  # type: ignore[attr-defined]
        update={"deployment_id": "d-failed", "version": "1.1.0", "created_at": utcnow(), "environments": {}}
    )
    ledger.start(failed)  # type: ignore[attr-defined]
    ledger.update_environment(  # type: ignore[attr-defined]
        "d-failed",
        "staging",
        {"status": EnvironmentStatus.SHIFTING, "version_before": "2", "version_after": "3", "weight": 20},
    )
    # When the operator rolls staging back
    result = _roll_back(targets, locks, ledger)
    # Then the split is cleared back to 2, what the failed deployment replaced (not 1, the release before 2)
    assert targets.functions["hello-staging"].aliases["live"] == ("2", {})
    assert (result.restored_version, result.rolled_back_from, result.deployment_id) == ("2", "3", "d-failed")
    # And the failed deployment's entry says so; the live deployment's is untouched
    assert ledger.get("d-failed").environments["staging"].status is EnvironmentStatus.ROLLED_BACK  # type: ignore[attr-defined]
    assert ledger.get("d-unit").environments["staging"].status is EnvironmentStatus.LIVE  # type: ignore[attr-defined]


def test_without_a_recorded_earlier_version_it_asks_for_one() -> None:
    targets, locks, ledger = _world()
    targets.route_alias("hello-staging", "live", "1", None)  # moved outside Conveyor: no live deployment serves 1
    with pytest.raises(NothingToRollBackError, match="name one with --to"):
        _roll_back(targets, locks, ledger)
    assert targets.functions["hello-staging"].aliases["live"] == ("1", {})


def test_a_rollback_to_the_version_already_served_is_refused_and_nothing_is_recorded() -> None:
    targets, locks, ledger = _world()
    with pytest.raises(
        NothingToRollBackError, match=r"already serves version 2 of hello-staging:live; .* --to APP_VERSION"
    ):
        _roll_back(targets, locks, ledger, to="2")
    assert ledger.get("d-unit").environments["staging"].status is EnvironmentStatus.LIVE  # type: ignore[attr-defined]
    assert locks.get(LOCK) is None or locks.get(LOCK).holder is None  # released


def test_a_rollback_to_the_version_an_alias_left_split_serves_first_clears_the_split() -> None:
    # Given the alias left split by a stop nobody restored: version 1 first, 10% still going to version 2
    targets, locks, ledger = _world()
    targets.route_alias("hello-staging", "live", "1", {"2": 0.1})
    # When the on-call rolls back to version 1, Then all of the traffic is on it again
    _roll_back(targets, locks, ledger, to="1")
    assert targets.functions["hello-staging"].aliases["live"] == ("1", {})


def test_a_rollback_from_a_version_no_deployment_made_live_is_recorded_on_the_release_it_restores() -> None:
    # Given the alias moved to version 1 outside Conveyor: no deployment of version 1 is live there
    targets, locks, ledger = _world()
    ledger.records["d-unit"]["package_sha256"] = "ab" * 32  # type: ignore[attr-defined]
    targets.route_alias("hello-staging", "live", "1", None)
    # When the on-call rolls back to version 2, which d-unit made live
    _roll_back(targets, locks, ledger, to="2")
    # Then who did it is in the ledger, on d-unit, and d-unit's entry is left as it is (it is live again)
    events = [e for e in ledger.get("d-unit").events if e.stage == "ManualRestore"]  # type: ignore[attr-defined]
    assert [(e.environment, e.detail["operator"], e.detail["restored_version"]) for e in events] == [
        ("staging", "alice", "2")
    ]
    assert ledger.get("d-unit").environments["staging"].status is EnvironmentStatus.LIVE  # type: ignore[attr-defined]


def _release(ledger: object, deployment_id: str, version: str, lambda_version: str, status: object) -> None:
    """A deployment of hello ``version`` that published ``lambda_version`` in staging and ended ``status``."""
    from datetime import timedelta

    from conveyor.domain.outcome import Outcome
    from conveyor.domain.records import DeploymentRecord
    from conveyor.domain.timing import utcnow

    created = utcnow() - timedelta(hours=int(lambda_version))
    ledger.start(  # type: ignore[attr-defined]
        DeploymentRecord(
            deployment_id=deployment_id,
            app="hello",
            version=version,
            status=status,  # type: ignore[arg-type]
            created_at=created,
            updated_at=created,
        )
    )
    env_status = EnvironmentStatus.LIVE if status is Outcome.SUCCEEDED else EnvironmentStatus.ROLLED_BACK
    ledger.update_environment(  # type: ignore[attr-defined]
        deployment_id, "staging", {"status": env_status, "version_after": lambda_version}
    )


def test_rollback_to_an_app_version_restores_the_lambda_version_that_carried_it() -> None:
    # Given 0.9.0 went live in staging as Lambda version 1, before the live deployment moved it to 2
    from conveyor.domain.outcome import Outcome

    targets, locks, ledger = _world()
    _release(ledger, "d-old", "0.9.0", "1", Outcome.SUCCEEDED)
    # When the on-call asks for that release by its app version
    result = _roll_back(targets, locks, ledger, to_release="0.9.0")
    # Then the alias is back on the Lambda version that carried it, and the rollback says when
    assert targets.functions["hello-staging"].aliases["live"] == ("1", {})
    assert result.restored_version == "1"
    assert result.rolled_back_at is not None
    assert ledger.get("d-unit").environments["staging"].rollback["rolled_back_at"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("named", ["app version", "lambda version"])
def test_a_rollback_to_an_earlier_release_warns_of_every_migration_it_takes_out_not_only_the_live_ones(
    named: str,
) -> None:
    # Given 0.9.0 live in staging as version 1, then 0.9.5 went live there and migrated the data (no down since),
    # then the live deployment (version 2)
    from datetime import timedelta

    from conveyor.domain.outcome import Outcome

    targets, locks, ledger = _world()
    _release(ledger, "d-old", "0.9.0", "1", Outcome.SUCCEEDED)  # an hour ago
    _release(ledger, "d-mid", "0.9.5", "0", Outcome.SUCCEEDED)
    mid = ledger.records["d-mid"]  # type: ignore[attr-defined]
    mid["created_at"] = mid["updated_at"] = utcnow() - timedelta(minutes=30)
    ledger.record_event(stage_event("d-mid", "Migrate", hook="schema"))  # type: ignore[attr-defined]

    # When the on-call rolls staging back to 0.9.0
    back = (
        _roll_back(targets, locks, ledger, to_release="0.9.0")
        if named == "app version"
        else _roll_back(targets, locks, ledger, "1")
    )

    # Then the warning names 0.9.5's migration, which the rollback takes out though 0.9.5 was not the live one
    assert [w.split(":")[0] for w in back.data_left_migrated] == [
        "the migration 'schema' ran in staging and no down-migration did (run by hello 0.9.5)"
    ]


def test_a_migration_several_releases_ran_is_warned_of_once_naming_the_newest() -> None:
    from conveyor.domain.manual_rollback import migrations_taken_out

    _, _, ledger = _world()
    for deployment in ("d-unit", "d-unit"):
        ledger.record_event(stage_event(deployment, "Migrate", hook="schema"))  # type: ignore[attr-defined]
    record = ledger.get("d-unit")  # type: ignore[attr-defined]
    warnings = migrations_taken_out([record, record.model_copy(update={"version": "0.1.0"})], "staging", ledger)  # type: ignore[arg-type]
    assert len(warnings) == 1
    assert "(run by hello 1.0.0)" in warnings[0]


def test_rollback_to_an_app_version_serves_that_release_even_when_a_later_one_shares_its_code() -> None:
    from conveyor.domain.outcome import Outcome

    # Given 0.9.0 and then 0.9.3, byte-identical, both live in staging on Lambda version 1 (0.9.3 reused it)
    targets, locks, ledger = _world()
    _release(ledger, "d-old", "0.9.0", "1", Outcome.SUCCEEDED)
    _release(ledger, "d-same", "0.9.3", "1", Outcome.SUCCEEDED)
    for deployment_id in ("d-old", "d-same"):
        ledger.records[deployment_id]["package_sha256"] = "ab" * 32  # type: ignore[attr-defined]
    # When the on-call rolls back to 0.9.0 by name
    result = _roll_back(targets, locks, ledger, to_release="0.9.0")
    # Then version 1 serves the release named, not the later one of the same code
    assert result.serves == "hello 0.9.0 (deployment d-old)"
    served = ledger.served("hello-staging", "live")  # type: ignore[attr-defined]
    assert (served.version, served.deployment_id) == ("0.9.0", "d-old")


def test_rollback_to_a_release_that_never_went_live_is_refused_by_name() -> None:
    from conveyor.domain.errors import ReleaseNotFoundError
    from conveyor.domain.outcome import Outcome

    targets, locks, ledger = _world()
    _release(ledger, "d-bad", "0.9.5", "3", Outcome.ROLLED_BACK)
    for release, message in (("0.9.5", "never went live in staging .*d-bad ROLLED_BACK"), ("7.0.0", "no deployment")):
        with pytest.raises(ReleaseNotFoundError, match=message):
            _roll_back(targets, locks, ledger, to_release=release)
    assert targets.functions["hello-staging"].aliases["live"] == ("2", {})
