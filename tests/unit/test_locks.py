"""One deployment per target function: the lock's queue, lease and fencing token, with fakes and a given clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conveyor.domain.contracts import EnvironmentStep, LockGrant, Release, ServedRelease
from conveyor.domain.errors import (
    ConfigurationError,
    LedgerError,
    LockLostError,
    LockWaitTimeoutError,
    TargetClaimedError,
)
from conveyor.domain.freeze import OperatorFreeze
from conveyor.domain.locks import release_locks
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import RolloutPolicy
from conveyor.domain.ports import IN_FLIGHT_GRACE, GateCheck
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow
from conveyor.stages.deploy import release_description
from conveyor.stages.gate import decide_gates
from conveyor.stages.lock import POLL_SECONDS, QUIET_SECONDS, acquire_lock, check_fence, lease_seconds

from tests.fakes import FakeAlarms, FakeExecutions, FakeFreezes, FakeLedger, FakeLocks, FakeTargetOwners, FakeTargets
from tests.unit.conftest import build_step

NOW = 1_700_000_000.0
STAGING = "arn:aws:lambda:us-east-1:123456789012:function:hello-staging"
PRODUCTION = "arn:aws:lambda:us-east-1:123456789012:function:hello-production"
TWO_ENVIRONMENTS: dict[str, Any] = {
    "schema_version": 1,
    "app": "hello",
    "environments": [
        {
            "name": name,
            "target": {"kind": "lambda", "function_name": f"hello-{name}", "alias": "live"},
            "health": {"synthetic": {"expect": {"status": "ok"}}},
        }
        for name in ("staging", "production")
    ],
}


def deployment_step(
    n: int, *, concurrency: str = "queue", lock_wait_seconds: int = 3600, index: int = 0, allow_downgrade: bool = False
) -> EnvironmentStep:
    """Deployment number ``n`` (started ``n`` minutes after the first) at environment ``index``."""
    step = build_step(TWO_ENVIRONMENTS, release=None)
    deployment = step.deployment.model_copy(
        update={
            "deployment_id": f"d-{n}",
            "version": f"1.0.{n}",
            "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:deployments:run-{n}",
            "started_at": datetime(2024, 5, 14, 9, 0, tzinfo=UTC) + timedelta(minutes=n),
            "policy": RolloutPolicy(
                concurrency=concurrency,  # type: ignore[arg-type]
                lock_wait_seconds=lock_wait_seconds,
                allow_downgrade=allow_downgrade,
            ),
        }
    )
    return step.model_copy(update={"deployment": deployment, "environment": deployment.environments[index]})


class World:
    """Several deployments sharing one fake lock table and ledger."""

    def __init__(self) -> None:
        self.locks = FakeLocks()
        self.ledger = FakeLedger()
        self.targets = FakeTargets()
        self.executions = FakeExecutions()
        self.owners = FakeTargetOwners()
        for name in ("staging", "production"):
            self.targets.add(f"hello-{name}", alias="live")

    def start(self, step: EnvironmentStep) -> EnvironmentStep:
        d = step.deployment
        record = {"deployment_id": d.deployment_id, "app": d.app, "version": d.version, "artifact": {}}
        self.ledger.start(
            DeploymentRecord(
                **record,
                status=Outcome.IN_PROGRESS,
                created_at=utcnow(),
                updated_at=utcnow(),
                execution_arn=d.execution_arn,
            )
        )
        return step

    def acquire(
        self, step: EnvironmentStep, now: float = NOW, gates: Callable[[], GateCheck] | None = None
    ) -> LockGrant:
        return acquire_lock(
            step,
            locks=self.locks,
            ledger=self.ledger,
            targets=self.targets,
            executions=self.executions,
            owners=self.owners,
            now=now,
            gates=gates,
        )

    def serve(self, step: EnvironmentStep) -> None:
        """What Deploy and ShiftTraffic leave behind: the alias on a version this deployment published,
        and the ledger saying it serves this deployment's release."""
        function = step.environment.target.function_name
        self.targets.put_code(function, f"sha-{step.deployment.version}")
        version = self.targets.publish_version(
            function, f"sha-{step.deployment.version}", release_description(step.deployment)
        )
        self.targets.route_alias(function, step.environment.target.alias, version, None)
        release = Release(
            environment=step.environment.name,
            function_name=function,
            alias=step.environment.target.alias,
            version_before=None,
            version_after=version,
            code_sha256=f"sha-{step.deployment.version}",
            reused=False,
        )
        self.ledger.record_served(ServedRelease.of(step.deployment, release, recorded_by="ShiftTraffic"))

    def status(self, step: EnvironmentStep) -> Outcome:
        record = self.ledger.get(step.deployment.deployment_id)
        assert record is not None
        return record.status


def holding(step: EnvironmentStep, grant: LockGrant) -> EnvironmentStep:
    return step.model_copy(update={"lock": grant})


def test_a_free_environment_is_locked_at_once_with_a_first_token() -> None:
    # Given a free environment
    world = World()
    one = world.start(deployment_step(1))

    # When a deployment asks for its lock
    grant = world.acquire(one)

    # Then it holds it with token 1 and a lease covering its plan
    assert (grant.status, grant.token) == ("acquired", 1)
    assert grant.lease_seconds == lease_seconds(one.environment, one.deployment.policy)
    assert world.locks.get(STAGING).holder == one.deployment.execution_arn  # type: ignore[union-attr]


def test_a_target_another_app_claimed_while_the_deployment_waited_is_refused_with_the_lock_given_back() -> None:
    # Given a deployment of hello validated for staging, which then waited (an approval, a queue) while hello's
    # pipeline let its function go and another app's pipeline claimed it
    world = World()
    one = world.start(deployment_step(1))
    assert world.owners.claim(STAGING, app="other", environment="prod") is None

    # When the deployment asks for its lock
    with pytest.raises(TargetClaimedError, match="now belongs to app 'other' \\(environment 'prod'\\)"):
        world.acquire(one)

    # Then nothing is taken: the lock is free for the owner's deployments, and the environment never LOCKED
    assert world.locks.get(STAGING).holder is None  # type: ignore[union-attr]
    record = world.ledger.get(one.deployment.deployment_id)
    assert record is not None
    assert "staging" not in record.environments


def test_a_target_still_the_apps_own_or_claimed_by_nobody_is_taken() -> None:
    world = World()
    one = world.start(deployment_step(1))
    assert world.owners.claim(STAGING, app=one.deployment.app, environment="staging") is None
    assert world.acquire(one).status == "acquired"

    two = world.start(deployment_step(2, index=1))
    assert world.acquire(two).status == "acquired"  # nobody claims hello-production: its own pipeline let it go


def test_asking_again_while_holding_is_idempotent() -> None:
    # Given a deployment holding the lock (AcquireLock retried or redriven)
    world = World()
    one = world.start(deployment_step(1))
    first = world.acquire(one)

    # When it asks again
    again = world.acquire(one, now=NOW + 10)

    # Then it keeps the same token: nothing else changed
    assert (again.status, again.token) == ("acquired", first.token)


def test_a_second_deployment_queues_and_is_visible_as_queued() -> None:
    # Given a deployment holding staging
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.acquire(one)

    # When a second one asks
    grant = world.acquire(two, now=NOW + 1)

    # Then it waits, first in line, and the ledger shows it QUEUED behind the holder
    assert (grant.status, grant.position, grant.waiting_for) == ("waiting", 1, "d-1")
    assert grant.wait_seconds == POLL_SECONDS
    assert world.status(two) is Outcome.QUEUED
    record = world.ledger.get("d-2")
    assert record is not None
    assert record.environments["staging"].status == "QUEUED"


def test_queue_is_first_in_first_out_after_release() -> None:
    # Given one holder and two waiters that arrived in order 2, 3
    world = World()
    one, two, three = (world.start(deployment_step(n)) for n in (1, 2, 3))
    world.acquire(one)
    world.acquire(three, now=NOW + 1)
    world.acquire(two, now=NOW + 2)

    # When the holder releases and the later waiter asks first
    release_locks([STAGING], holder=one.deployment.execution_arn, started_at=None, locks=world.locks)
    late = world.acquire(three, now=NOW + 3)
    early = world.acquire(two, now=NOW + 4)

    # Then the one that started first gets it, with a new token; the other keeps waiting
    assert late.status == "waiting"
    assert (early.status, early.token) == ("acquired", 2)
    assert world.status(two) is Outcome.IN_PROGRESS


def test_supersede_cancels_older_waiters_but_never_the_holder() -> None:
    # Given a holder and an older waiter, with concurrency: supersede
    world = World()
    one, two, three = (world.start(deployment_step(n, concurrency="supersede")) for n in (1, 2, 3))
    world.acquire(one)
    world.acquire(two, now=NOW + 1)

    # When a newer artifact joins the queue, and the older waiter asks again
    newer = world.acquire(three, now=NOW + 2)
    older = world.acquire(two, now=NOW + 3)

    # Then the older one is SUPERSEDED (recorded), the newer one is next, and the holder is untouched
    assert (newer.status, newer.position) == ("waiting", 1)
    assert (older.status, older.waiting_for) == ("superseded", "d-3")
    assert world.status(two) is Outcome.SUPERSEDED
    assert world.locks.get(STAGING).holder == one.deployment.execution_arn  # type: ignore[union-attr]


def test_an_expired_lease_lets_the_next_deployment_in_and_fences_the_stale_holder() -> None:
    # Given a holder that died (its lease ran out) and a waiter
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    stale = world.acquire(one)
    world.acquire(two, now=NOW + 1)
    later = NOW + stale.lease_seconds + 1

    # When the waiter asks after the lease ended
    taken = world.acquire(two, now=later)

    # Then it holds the lock with a higher token, and the old holder's stages are refused
    assert (taken.status, taken.token) == ("acquired", 2)
    with pytest.raises(LockLostError, match="token 1 is stale"):
        check_fence(holding(one, stale), locks=world.locks, now=later + 1)
    check_fence(holding(two, taken), locks=world.locks, now=later + 1)


def test_the_fence_renews_the_lease_of_the_holder() -> None:
    # Given a holder near the end of its lease
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    grant = world.acquire(one)
    almost = NOW + grant.lease_seconds - 1

    # When a mutating stage passes the fence, and another deployment asks just after the first lease
    check_fence(holding(one, grant), locks=world.locks, now=almost)
    other = world.acquire(two, now=NOW + grant.lease_seconds + 1)

    # Then the lease was extended: the lock is still held
    assert other.status == "waiting"


def test_a_stage_without_a_grant_is_refused() -> None:
    with pytest.raises(LockLostError, match="no lock held"):
        check_fence(deployment_step(1), locks=FakeLocks(), now=NOW)


def test_waiting_is_bounded_by_the_pipeline() -> None:
    # Given a holder and a waiter allowed to wait 60 s
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2, lock_wait_seconds=60))
    world.acquire(one)
    world.acquire(two, now=NOW)

    # When it is still waiting after 61 s (the holder keeps renewing)
    check_fence(holding(one, world.acquire(one)), locks=world.locks, now=NOW + 30)

    # Then AcquireLock fails with a reason naming the holder, and the waiter left the queue
    with pytest.raises(LockWaitTimeoutError, match="held by deployment d-1"):
        world.acquire(two, now=NOW + 61)
    assert world.locks.waiters(STAGING) == []


def test_a_waiter_that_stopped_asking_loses_its_place() -> None:
    # Given a waiter whose execution was stopped, and a newer one
    world = World()
    one, two, three = (world.start(deployment_step(n)) for n in (1, 2, 3))
    world.acquire(one)
    world.acquire(two, now=NOW)
    release_locks([STAGING], holder=one.deployment.execution_arn, started_at=None, locks=world.locks)

    # When only the newer one keeps asking, long after
    grant = world.acquire(three, now=NOW + 3600)

    # Then it is not blocked by the dead waiter
    assert grant.status == "acquired"


def test_release_only_frees_a_lock_the_caller_holds() -> None:
    # Given a lock held by deployment 1
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.acquire(one)

    # When deployment 2 releases (e.g. its NotifyFailure) and deployment 1 releases twice
    other = release_locks([STAGING], holder=two.deployment.execution_arn, started_at=None, locks=world.locks)
    mine = release_locks([STAGING], holder=one.deployment.execution_arn, started_at=None, locks=world.locks)
    again = release_locks([STAGING], holder=one.deployment.execution_arn, started_at=None, locks=world.locks)

    # Then only the holder's own release freed it, once
    assert (other, mine, again) == ([], [STAGING], [])


def test_taking_the_next_environment_releases_the_earlier_one() -> None:
    # Given a deployment holding staging
    world = World()
    one = world.start(deployment_step(1))
    world.acquire(one)

    # When it takes production
    world.acquire(deployment_step(1, index=1))

    # Then staging is free for the next deployment, production is held
    assert world.locks.get(STAGING).free_at(NOW)  # type: ignore[union-attr]
    assert not world.locks.get(PRODUCTION).free_at(NOW)  # type: ignore[union-attr]


def _gates(
    step: EnvironmentStep, *, freezes: FakeFreezes | None = None, alarms: FakeAlarms | None = None
) -> Callable[[], GateCheck]:
    return lambda: decide_gates(
        step, freezes=freezes or FakeFreezes(), alarms=alarms or FakeAlarms({}), now=datetime.now(UTC)
    )


def test_the_gates_are_asked_once_the_lock_is_held_and_recorded_with_it() -> None:
    # Given a deployment whose staging is not frozen
    world = World()
    one = world.start(deployment_step(1))

    # When it takes the lock, the gates in the same call
    grant = world.acquire(one, gates=_gates(one))

    # Then the grant carries the gate's answer, and the ledger both the LOCKED entry and the CheckGates event
    # (written together: tests/functional/test_adapters.py)
    assert grant.status == "acquired"
    assert grant.gate is not None
    assert grant.gate.decision == "open"
    record = world.ledger.get(one.deployment.deployment_id)
    assert record is not None
    assert record.environments["staging"].status == "LOCKED"
    (event,) = world.ledger.stage_events("CheckGates")
    assert (event.environment, event.status, event.detail["decision"]) == ("staging", "open", "open")


def test_a_deployment_waiting_at_the_next_environments_gate_has_released_the_earlier_one() -> None:
    # Given a deployment that went through staging, and production frozen with on_freeze: wait
    world = World()
    one = world.start(deployment_step(1))
    world.acquire(one)
    production = deployment_step(1, index=1)
    policy = production.deployment.policy.model_copy(update={"on_freeze": "wait"})
    production = production.model_copy(
        update={"deployment": production.deployment.model_copy(update={"policy": policy})}
    )
    frozen = FakeFreezes(OperatorFreeze(scope="hello", reason="db migration", by="alice", at=datetime.now(UTC)))

    # When it takes production's lock and the gate says wait
    grant = world.acquire(production, gates=_gates(production, freezes=frozen))

    # Then it keeps production (whoever queues behind would be frozen too) and staging is free for others
    assert grant.gate is not None
    assert (grant.status, grant.gate.decision) == ("acquired", "wait")
    assert world.locks.get(STAGING).free_at(NOW)  # type: ignore[union-attr]
    assert not world.locks.get(PRODUCTION).free_at(NOW)  # type: ignore[union-attr]


@pytest.mark.parametrize("failing", ["alarms unreadable", "wiring"])
def test_a_gate_that_cannot_be_asked_is_recorded_with_the_lock_then_raised(failing: str) -> None:
    # Given the alarms of staging cannot be read, or the gates' adapters cannot even be built
    world = World()
    step = deployment_step(1)
    health = step.environment.health.model_copy(update={"alarms": ["hello-errors"]})
    step = world.start(step.model_copy(update={"environment": step.environment.model_copy(update={"health": health})}))
    alarms = FakeAlarms({})
    alarms.error = RuntimeError("CloudWatch is unavailable")

    def unwired() -> GateCheck:
        raise ConfigurationError("CONVEYOR_LEDGER_TABLE is not set")

    gates, error = (
        (_gates(step, alarms=alarms), "CloudWatch is unavailable")
        if failing == "alarms unreadable"
        else (unwired, "CONVEYOR_LEDGER_TABLE is not set")
    )

    # When it takes the lock
    with pytest.raises(Exception, match=error) as raised:
        world.acquire(step, gates=gates)

    # Then the lock it holds is in the ledger (NotifyFailure and the reconciler release it from there), and the
    # gate's failure is recorded as a CheckGates event naming the error
    record = world.ledger.get(step.deployment.deployment_id)
    assert record is not None
    assert record.environments["staging"].status == "LOCKED"
    (event,) = world.ledger.stage_events("CheckGates")
    assert (event.environment, event.status, event.detail["error"]) == (
        "staging",
        "failed",
        type(raised.value).__name__,
    )


def test_an_older_push_that_gets_the_lock_after_a_newer_one_went_live_changes_nothing() -> None:
    # Given deployment 2 (1.0.2) reached staging's lock before deployment 1 (1.0.1, pushed first)
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.acquire(two)
    assert world.acquire(one, now=NOW + 1).status == "waiting"

    # When 1.0.2 went live in staging, moved on, and deployment 1 gets its turn
    world.serve(two)
    release_locks([STAGING], holder=two.deployment.execution_arn, started_at=None, locks=world.locks)
    grant = world.acquire(one, now=NOW + 5)

    # Then deployment 1 is SUPERSEDED as outdated: staging keeps 1.0.2, and the lock is free again
    assert (grant.status, grant.waiting_for) == ("superseded", "d-2")
    record = world.ledger.get("d-1")
    assert record is not None
    assert record.status is Outcome.SUPERSEDED
    assert record.failure is not None
    assert "outdated in staging" in record.failure["reason"]
    assert "hello 1.0.2 (deployment d-2)" in record.failure["reason"]
    assert record.environments["staging"].status == "SUPERSEDED"
    assert world.locks.get(STAGING).free_at(NOW + 5)  # type: ignore[union-attr]
    assert world.locks.waiters(STAGING) == []


@pytest.mark.parametrize(
    ("served", "outcome", "allow_downgrade"),
    [
        (None, None, False),
        (1, Outcome.SUCCEEDED, False),
        (2, Outcome.SUCCEEDED, True),
        (2, Outcome.ROLLED_BACK, False),
    ],
    ids=[
        "a version Conveyor did not publish",
        "an older release",
        "a newer one, downgrade allowed",
        "a newer one whose deployment rolled back later on",
    ],
)
def test_the_lock_is_taken_when_the_environment_serves(
    served: int | None, outcome: Outcome | None, allow_downgrade: bool
) -> None:
    # Given staging serving what ``served`` says (None: the alias's first, hand-made version)
    world = World()
    if served is not None and outcome is not None:
        world.serve(world.start(deployment_step(served)))
        world.ledger.finish(f"d-{served}", outcome)
    mine = world.start(deployment_step(3 if served == 1 else 1, allow_downgrade=allow_downgrade))

    # When a deployment asks for the free lock
    grant = world.acquire(mine)

    # Then it takes it
    assert grant.status == "acquired"
    assert world.status(mine) is Outcome.IN_PROGRESS


def stopped_at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_the_lock_of_a_stopped_execution_is_taken_over_at_once() -> None:
    # Given deployment 1 holding staging (a lease of half an hour), and deployment 2 waiting
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    taken = world.acquire(one)
    assert world.acquire(two, now=NOW + 1).status == "waiting"

    # When an operator stops deployment 1's execution from the console while it bakes (no stage running)
    world.executions.stop(one.deployment.execution_arn, stopped_at(NOW + 3))
    grant = world.acquire(two, now=NOW + 6)

    # Then deployment 2 takes the lock at its next ask, with a new token that fences the stopped one out
    assert (grant.status, grant.token) == ("acquired", (taken.token or 0) + 1)
    with pytest.raises(LockLostError):
        check_fence(holding(one, taken), locks=world.locks, now=NOW + 7)
    # and the ledger says how deployment 1 ended
    assert world.status(one) is Outcome.FAILED
    record = world.ledger.get("d-1")
    assert record is not None
    assert record.failure is not None
    assert record.failure["error"] == "ExecutionStopped"
    assert "ended ABORTED at " in record.failure["reason"]
    assert "while it held staging" in record.failure["reason"]
    assert "deployment d-2 took the lock over" in record.failure["reason"]
    assert record.finished_at is not None


def test_a_stage_still_running_when_its_execution_stopped_is_given_time_to_end() -> None:
    # Given deployment 1's execution stopped while its Deploy invocation was running (stopping does not stop it)
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.acquire(one)
    world.executions.stop(one.deployment.execution_arn, stopped_at(NOW + 3), in_flight=True)

    # When deployment 2 asks before and after Lambda's longest timeout has passed since the stop
    soon = world.acquire(two, now=NOW + 6)
    later = world.acquire(two, now=NOW + 3 + IN_FLIGHT_GRACE.total_seconds() + 1)

    # Then it waits first, and takes the lock over only once that invocation cannot be running any more
    assert (soon.status, later.status) == ("waiting", "acquired")


def test_an_execution_that_may_still_act_keeps_its_lock() -> None:
    # Given staging held by deployment 1, whose execution failed and is being redriven (PENDING_REDRIVE)
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.acquire(one)
    world.executions.statuses[one.deployment.execution_arn] = "PENDING_REDRIVE"

    # When deployment 2 asks
    grant = world.acquire(two, now=NOW + 6)

    # Then it waits: only an ended execution (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) is taken over
    assert grant.status == "waiting"
    assert world.status(one) is Outcome.IN_PROGRESS


def test_a_running_holder_keeps_its_lock_and_a_manual_rollback_is_never_asked_about() -> None:
    # Given staging held by a running execution, and production by an operator's manual rollback
    world = World()
    one = world.start(deployment_step(1))
    world.acquire(one)
    world.locks.try_acquire(
        PRODUCTION,
        holder="manual-rollback:alice:1",
        deployment_id="-",
        app="hello",
        environment="production",
        lease_seconds=300,
        now=NOW,
    )
    two, two_production = world.start(deployment_step(2)), deployment_step(2, index=1)

    # When others ask for those locks
    staging = world.acquire(two, now=NOW + 1)
    production = world.acquire(two_production, now=NOW + 1)

    # Then they wait; only the execution was asked whether it still runs
    assert (staging.status, production.status) == ("waiting", "waiting")
    assert set(world.executions.asked) == {one.deployment.execution_arn}
    assert world.status(one) is Outcome.IN_PROGRESS


def test_the_ledger_entry_of_a_deployment_re_run_since_is_left_to_its_new_execution() -> None:
    # Given deployment 1's execution stopped while holding staging, and a re-run that owns its entry now
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.acquire(one)
    world.executions.stop(one.deployment.execution_arn, stopped_at(NOW + 3))
    rerun = "arn:aws:states:us-east-1:123456789012:execution:deployments:rerun-1"
    world.ledger.records["d-1"]["execution_arn"] = rerun

    # When deployment 2 takes the lock over
    assert world.acquire(two, now=NOW + 6).status == "acquired"

    # Then deployment 1's entry is untouched: its re-run is still going
    assert world.status(one) is Outcome.IN_PROGRESS


def test_a_stopped_waiter_ahead_loses_its_place_once_quiet() -> None:
    # Given deployment 1 holding staging, 2 and 3 waiting behind it, and 2's execution stopped
    world = World()
    one, two, three = (world.start(deployment_step(n)) for n in (1, 2, 3))
    world.acquire(one)
    world.acquire(two, now=NOW + 1)
    world.acquire(three, now=NOW + 1)
    world.executions.stop(two.deployment.execution_arn, stopped_at(NOW + 1))

    # When 3 asks again before and after 2 has been quiet for QUIET_SECONDS
    soon = world.acquire(three, now=NOW + 2)
    later = world.acquire(three, now=NOW + 2 + QUIET_SECONDS)

    # Then it moves up from second to first in line (behind the holder)
    assert (soon.position, later.position) == (2, 1)
    assert [w.deployment_id for w in world.locks.waiters(STAGING)] == ["d-3"]


def test_a_retried_acquire_lock_still_refuses_to_replace_a_newer_release(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 1.0.2 live in staging, and 1.0.1's AcquireLock taking the lock then failing to read the ledger
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.acquire(two)
    world.serve(two)
    release_locks([STAGING], holder=two.deployment.execution_arn, started_at=None, locks=world.locks)
    read, failures = world.ledger.get, [LedgerError("throttled")]

    def flaky_get(deployment_id: str) -> DeploymentRecord | None:
        if failures:
            raise failures.pop()
        return read(deployment_id)

    monkeypatch.setattr(world.ledger, "get", flaky_get)
    with pytest.raises(LedgerError):
        world.acquire(one, now=NOW + 5)

    # When the state retries it (this execution already holds the lock)
    grant = world.acquire(one, now=NOW + 6)

    # Then it is still found outdated, and gives the lock back
    assert grant.status == "superseded"
    assert world.status(one) is Outcome.SUPERSEDED
    assert world.locks.get(STAGING).free_at(NOW + 6)  # type: ignore[union-attr]


def test_a_newer_release_whose_execution_stopped_does_not_count() -> None:
    # Given 1.0.2 serving staging, its deployment still IN_PROGRESS in the ledger but its execution stopped
    world = World()
    one, two = world.start(deployment_step(1)), world.start(deployment_step(2))
    world.serve(two)
    world.executions.stop(two.deployment.execution_arn, stopped_at(NOW))

    # When 1.0.1 takes staging's lock
    grant = world.acquire(one, now=NOW + 5)

    # Then it deploys: what a stopped deployment left behind is not a release to protect
    assert grant.status == "acquired"
