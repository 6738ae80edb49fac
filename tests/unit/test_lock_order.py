"""One lock per target, and the newest version wins whatever order pushes arrive in (fakes, a given clock).

"Newer" is the higher version, never the later arrival. The storm tests run every arrival order of
five versions, each with its own (seeded) interleaving of arrivals, polls and finishes, in both modes.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from conveyor.domain.contracts import EnvironmentStep, LockGrant
from conveyor.domain.locks import release_locks
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import LambdaTarget, RolloutPolicy
from conveyor.domain.records import Waiter
from conveyor.stages.lock import QUIET_SECONDS, newer_waiter

from tests.unit.test_locks import NOW, STAGING, World, deployment_step

VERSIONS = 5


def pushed(version: int, *, arrival: int, concurrency: str = "queue") -> EnvironmentStep:
    """Deployment of ``1.0.<version>``, whose execution started ``arrival`` seconds into the storm."""
    step = deployment_step(version, concurrency=concurrency)
    started = datetime(2024, 5, 14, 9, 0, tzinfo=UTC) + timedelta(seconds=arrival)
    return step.model_copy(update={"deployment": step.deployment.model_copy(update={"started_at": started})})


def spelled(step: EnvironmentStep, function_name: str) -> EnvironmentStep:
    """``step`` with its environment's target written as ``function_name`` (same function, another spelling)."""
    environment = step.environment.model_copy(
        update={"target": LambdaTarget(function_name=function_name, alias=step.environment.target.alias)}
    )
    return step.model_copy(update={"environment": environment})


def test_one_function_written_as_a_name_and_as_an_arn_is_one_lock() -> None:
    # Given a deployment holding hello-staging, its target written as a name
    world = World()
    one = world.start(deployment_step(1))
    two = world.start(spelled(deployment_step(2), STAGING))
    three = world.start(spelled(deployment_step(3), "123456789012:function:hello-staging"))
    world.acquire(one)

    # When deployments naming it by full and partial ARN ask
    by_arn, by_partial = world.acquire(two, now=NOW + 1), world.acquire(three, now=NOW + 2)

    # Then they wait in the same queue, behind the holder
    assert (by_arn.status, by_arn.waiting_for, by_arn.target) == ("waiting", "d-1", STAGING)
    assert (by_partial.status, by_partial.position) == ("waiting", 2)
    assert [w.deployment_id for w in world.locks.waiters(STAGING)] == ["d-2", "d-3"]


def test_the_lock_shows_which_app_and_environment_hold_it() -> None:
    world = World()
    world.acquire(world.start(deployment_step(1)))
    held = world.locks.get(STAGING)
    assert held is not None
    assert (held.app, held.environment, held.deployment_id) == ("hello", "staging", "d-1")


def test_a_lower_version_arriving_later_never_supersedes_a_higher_one() -> None:
    # Given 1.0.1 holding staging and 1.0.9 waiting (supersede mode)
    world = World()
    one = world.start(pushed(1, arrival=0, concurrency="supersede"))
    nine = world.start(pushed(9, arrival=1, concurrency="supersede"))
    five = world.start(pushed(5, arrival=2, concurrency="supersede"))
    world.acquire(one)
    world.acquire(nine, now=NOW + 1)

    # When 1.0.5 arrives after it, and 1.0.9 asks again
    lower = world.acquire(five, now=NOW + 2)
    higher = world.acquire(nine, now=NOW + 3)

    # Then 1.0.5 gives way (SUPERSEDED by 1.0.9), and 1.0.9 is still first in line
    assert (lower.status, lower.waiting_for) == ("superseded", "d-9")
    assert world.status(five) is Outcome.SUPERSEDED
    assert (higher.status, higher.position) == ("waiting", 1)
    assert [w.deployment_id for w in world.locks.waiters(STAGING)] == ["d-9"]


def test_a_higher_version_supersedes_lower_waiters_that_arrived_after_it() -> None:
    # Given a holder, and 1.0.3 waiting although it arrived after 1.0.8 (1.0.8 was not yet queued)
    world = World()
    one = world.start(pushed(1, arrival=0, concurrency="supersede"))
    eight = world.start(pushed(8, arrival=1, concurrency="supersede"))
    three = world.start(pushed(3, arrival=2, concurrency="supersede"))
    world.acquire(one)
    world.acquire(three, now=NOW + 1)

    # When 1.0.8 queues, and 1.0.3 asks again
    world.acquire(eight, now=NOW + 2)
    lower = world.acquire(three, now=NOW + 3)

    # Then 1.0.3 is SUPERSEDED by 1.0.8
    assert (lower.status, lower.waiting_for) == ("superseded", "d-8")


def test_in_queue_mode_waiters_take_turns_in_arrival_order_whatever_their_versions() -> None:
    world = World()
    one, nine, five = (world.start(pushed(n, arrival=i)) for i, n in enumerate((1, 9, 5)))
    world.acquire(one)
    world.acquire(nine, now=NOW + 1)

    assert world.acquire(five, now=NOW + 2).position == 2
    assert world.status(five) is Outcome.QUEUED


def _waiter(version: str, built_minute: int) -> Waiter:
    built = datetime(2024, 5, 14, 9, built_minute, tzinfo=UTC)
    return Waiter(
        key=f"{version}#x",
        holder="arn:x",
        deployment_id=f"d-{version}",
        app="hello",
        environment="staging",
        version=version,
        built_at=built,
        first_seen=0,
        last_seen=0,
    )


def test_newer_is_the_pipelines_version_order_never_text() -> None:
    semver = RolloutPolicy()
    assert newer_waiter(_waiter("1.0.10", 1), _waiter("1.0.9", 2), semver)
    assert not newer_waiter(_waiter("1.0.9", 2), _waiter("1.0.10", 1), semver)
    assert newer_waiter(_waiter("2.0.0", 1), _waiter("2.0.0-rc.1", 2), semver)
    # Commit-hash versions: the build time decides, whatever the text says
    build_time = RolloutPolicy(version_order="build_time")
    assert newer_waiter(_waiter("1a2b3c4", 5), _waiter("9f1c2e7", 4), build_time)
    assert not newer_waiter(_waiter("9f1c2e7", 4), _waiter("1a2b3c4", 5), build_time)


def storm(
    order: tuple[int, ...], concurrency: str, rng: random.Random
) -> tuple[World, dict[int, EnvironmentStep], int]:
    """Push ``order`` (versions, in arrival order) into one environment; arrivals, polls and finishes interleave
    as ``rng`` picks. Returns the world, the deployments and the version the alias ends on."""
    world = World()
    steps = {n: world.start(pushed(n, arrival=i, concurrency=concurrency)) for i, n in enumerate(order)}
    arriving, active, live, now = list(order), {}, 0, NOW

    def ask(n: int) -> None:
        grant: LockGrant = world.acquire(steps[n], now=now)
        if grant.status == "superseded":
            active.pop(n, None)
        else:
            active[n] = grant.status

    while arriving or active:
        now += 1
        moves = [("arrive", arriving[0])] if arriving else []
        moves += [("finish" if status == "acquired" else "poll", n) for n, status in active.items()]
        move, n = rng.choice(moves)
        if move == "arrive":
            ask(arriving.pop(0))
        elif move == "poll":
            ask(n)
        else:  # Deploy, ShiftTraffic and Finalize: the version goes live, the lock is released
            world.serve(steps[n])
            live = n
            world.ledger.finish(steps[n].deployment.deployment_id, Outcome.SUCCEEDED)
            release_locks(
                [STAGING],
                holder=steps[n].deployment.execution_arn,
                started_at=steps[n].deployment.started_at,
                locks=world.locks,
            )
            del active[n]
    return world, steps, live


@pytest.mark.parametrize("concurrency", ["queue", "supersede"])
def test_whatever_the_arrival_order_the_highest_version_ends_live_and_none_fails(concurrency: str) -> None:
    for seed, order in enumerate(itertools.permutations(range(1, VERSIONS + 1))):
        # Given VERSIONS versions pushed in this order, interleaved as this seed says
        world, steps, live = storm(order, concurrency, random.Random(seed))

        # Then the highest ends live; every other one went live and was replaced, or ended SUPERSEDED
        where = f"arrival order {order}, interleaving {seed}"
        assert live == VERSIONS, where
        outcomes = {n: world.status(step) for n, step in steps.items()}
        assert outcomes[VERSIONS] is Outcome.SUCCEEDED, where
        assert set(outcomes.values()) <= {Outcome.SUCCEEDED, Outcome.SUPERSEDED}, (where, outcomes)
        # and the lock is free with nobody left in its queue
        held = world.locks.get(STAGING)
        assert held is None or held.holder is None, where
        assert world.locks.waiters(STAGING) == [], where


def test_a_stopped_higher_version_waiting_does_not_make_a_lower_one_give_way() -> None:
    # Given 1.0.9 waiting for staging (supersede mode), then stopped from the console
    world = World()
    one = world.start(pushed(1, arrival=0, concurrency="supersede"))
    nine = world.start(pushed(9, arrival=1, concurrency="supersede"))
    five = world.start(pushed(5, arrival=2, concurrency="supersede"))
    world.acquire(one)
    world.acquire(nine, now=NOW + 1)
    world.executions.stop(nine.deployment.execution_arn, datetime.fromtimestamp(NOW + 2, UTC))

    # When 1.0.5 asks once 1.0.9 has been quiet a while
    grant = world.acquire(five, now=NOW + 2 + QUIET_SECONDS + 1)

    # Then 1.0.5 waits first in line: the stopped 1.0.9 is out of the queue
    assert (grant.status, grant.position) == ("waiting", 1)
    assert [w.deployment_id for w in world.locks.waiters(STAGING)] == ["d-5"]
