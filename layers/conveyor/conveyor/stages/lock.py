"""One deployment per (app, environment) at a time: AcquireLock, the fencing check, and release.

The lock (``conveyor.ledger.LockTable``) has a lease and a fencing token:

- ``acquire_lock`` (the ``AcquireLock`` state, before ``Deploy`` in every environment's iteration)
  joins the environment's queue, and takes the lock only when it is free (or its holder's lease
  ran out: the holder died) and this execution is first in line. Otherwise it answers
  ``waiting`` (the state machine waits and asks again, for at most the pipeline's
  ``lock_wait_seconds``) or ``superseded``: ``concurrency: supersede`` and a newer artifact
  joined the queue behind it, or (in any mode) the environment already serves a newer release
  by the time the lock is free: an older push never rolls a newer one back. Every acquisition
  increments the token.
- ``check_fence`` runs before every stage that changes a target (Deploy, ShiftTraffic, RollBack):
  it renews the lease only if this execution still holds the lock *with the same token*. A stale
  holder (its lease expired and another deployment took the lock) gets ``LockLostError`` and
  changes nothing.
- ``release_locks`` runs on every way out of the state machine (Finalize, NotifyFailure) and when
  a deployment moves on to its next environment; releasing a lock one does not hold is a no-op.

Time is passed in (``now``, epoch seconds) so the logic is tested with fakes, without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from conveyor.contracts import EnvironmentStep, LockGrant, Outcome
from conveyor.errors import LockLostError, LockWaitTimeoutError
from conveyor.ledger import Ledger, LockTable, Waiter
from conveyor.observability import MetricUnit, logger, metrics
from conveyor.pipeline import EnvironmentSpec
from conveyor.stages.deploy import described_release
from conveyor.stages.validate import version_key
from conveyor.targets import Targets

POLL_SECONDS = 5
"""How long the state machine waits between two AcquireLock attempts."""
WAITER_STALE_SECONDS = 300
"""A waiter that has not asked for this long is gone (its execution stopped): it loses its place."""
LEASE_MARGIN_SECONDS = 1800
"""Lease beyond the plan's own waits: time for the stages themselves, their retries and health re-checks."""


def lease_seconds(environment: EnvironmentSpec) -> int:
    """How long a holder may go without renewing: the traffic plan's waits plus a margin.

    A rollout that may pause for a person (``on_inconclusive: pause``) keeps its lock while it waits
    (traffic has moved), so the lease covers the longest such wait too.
    """
    pause = environment.approval.timeout_seconds if environment.health.on_inconclusive == "pause" else 0
    return sum(step.wait_seconds for step in environment.traffic_steps()) + pause + LEASE_MARGIN_SECONDS


def waiter_key(started_at: datetime, execution_arn: str) -> str:
    """Queue order: the execution's start time (FIFO by push), then its ARN to break ties."""
    return f"{started_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{execution_arn}"


def supersede(step: EnvironmentStep, *, ledger: Ledger, by: str, reason: str) -> None:
    """End the deployment as SUPERSEDED in ``step``'s environment: nothing deployed there, nobody paged."""
    deployment, environment = step.deployment, step.environment
    target = {"function_name": environment.target.function_name, "alias": environment.target.alias}
    ledger.update_environment(deployment.deployment_id, environment.name, {"status": "SUPERSEDED", **target})
    ledger.finish(
        deployment.deployment_id, Outcome.SUPERSEDED, {"error": "DeploymentSupersededError", "reason": reason}
    )
    logger.info("superseded", extra={"environment": environment.name, "by": by, "reason": reason})


def outdated_by(step: EnvironmentStep, targets: Targets) -> tuple[str, str] | None:
    """``(deployment_id, reason)`` when the environment already serves a newer release of the app.

    Deployments wait for an environment in push order, but a later push can reach the lock first
    (its stages ran faster); the earlier, older one must then not roll the environment back to
    itself. ``allow_downgrade`` lets it.
    """
    deployment, environment = step.deployment, step.environment
    function, alias = environment.target.function_name, environment.target.alias
    serving = None if deployment.policy.allow_downgrade else targets.alias_version(function, alias)
    release = (
        None if serving is None else described_release(targets.version_description(function, serving), deployment.app)
    )
    if release is None or version_key(release[0]) <= version_key(deployment.version):
        return None
    version, by = release
    return by, (
        f"outdated in {environment.name}: it already serves {deployment.app} {version} (deployment {by}), newer "
        f"than {deployment.version}, deployed while this deployment waited; nothing was changed. "
        "To put an older version back, use conveyor rollback (or allow_downgrade)"
    )


def acquire_lock(step: EnvironmentStep, *, locks: LockTable, ledger: Ledger, targets: Targets, now: float) -> LockGrant:
    deployment, environment = step.deployment, step.environment
    app, env, holder = deployment.app, environment.name, deployment.execution_arn
    lease = lease_seconds(environment)
    grant = {"app": app, "environment": env, "holder": holder, "lease_seconds": lease}

    current = locks.get(app, env)
    if (
        current is not None
        and current.holder == holder
        and locks.renew(app, env, holder=holder, token=current.token, lease_seconds=lease, now=now)
    ):
        # A retry or redrive of this state: this execution already holds the lock.
        release_earlier_environments(step, locks=locks)
        return LockGrant(status="acquired", token=current.token, **grant)

    target = {"function_name": environment.target.function_name, "alias": environment.target.alias}
    mine = Waiter(
        key=waiter_key(deployment.started_at, holder),
        holder=holder,
        deployment_id=deployment.deployment_id,
        version=deployment.version,
        first_seen=now,
        last_seen=now,
    )
    locks.enqueue(app, env, mine)
    queue = locks.waiters(app, env)
    me = next((w for w in queue if w.key == mine.key), mine)

    if me.superseded_by is not None:
        locks.remove_waiter(app, env, me.key)
        supersede(
            step,
            ledger=ledger,
            by=me.superseded_by,
            reason=f"superseded in {env} by the newer deployment {me.superseded_by} while waiting for the lock",
        )
        return LockGrant(status="superseded", waiting_for=me.superseded_by, **grant)

    if deployment.policy.concurrency == "supersede":
        for older in (w for w in queue if w.key < me.key and w.superseded_by is None):
            locks.supersede(app, env, older.key, by=deployment.deployment_id)
            logger.info("superseding", extra={"environment": env, "older": older.deployment_id})

    line: list[Waiter] = []
    for waiter in queue:
        if waiter.key == me.key:
            line.append(me)
        elif now - waiter.last_seen > WAITER_STALE_SECONDS:
            locks.remove_waiter(app, env, waiter.key)
        elif waiter.superseded_by is None and not (
            deployment.policy.concurrency == "supersede" and waiter.key < me.key
        ):
            line.append(waiter)
    position = next(i for i, w in enumerate(line) if w.key == me.key) + 1

    current = locks.get(app, env)
    if position == 1 and (current is None or current.free_at(now)):
        token = locks.try_acquire(
            app, env, holder=holder, deployment_id=deployment.deployment_id, lease_seconds=lease, now=now
        )
        if token is not None:
            locks.remove_waiter(app, env, me.key)
            outdated = outdated_by(step, targets)
            if outdated is not None:
                locks.release(app, env, holder)
                supersede(step, ledger=ledger, by=outdated[0], reason=outdated[1])
                return LockGrant(status="superseded", waiting_for=outdated[0], **grant)
            ledger.set_status(
                deployment.deployment_id,
                Outcome.IN_PROGRESS,
                owner=holder,
                expected=(Outcome.QUEUED, Outcome.IN_PROGRESS),
            )
            ledger.update_environment(
                deployment.deployment_id,
                env,
                {"status": "LOCKED", "lock": {"token": token, "lease_seconds": lease}, **target},
            )
            metrics.add_metric(name="LocksAcquired", unit=MetricUnit.Count, value=1)
            logger.info("lock acquired", extra={"environment": env, "token": token})
            release_earlier_environments(step, locks=locks)
            return LockGrant(status="acquired", token=token, **grant)
        current = locks.get(app, env)

    waited = now - me.first_seen
    holding = current.deployment_id if current is not None and not current.free_at(now) else None
    if waited > deployment.policy.lock_wait_seconds:
        locks.remove_waiter(app, env, me.key)
        raise LockWaitTimeoutError(
            f"waited {waited:.0f} s (limit {deployment.policy.lock_wait_seconds} s) for the lock on {app}/{env}, "
            f"held by deployment {holding or 'a deployment ahead in the queue'}; push again or raise the "
            "pipeline's lock_wait_seconds"
        )
    ahead = holding or line[0].deployment_id
    ledger.set_status(deployment.deployment_id, Outcome.QUEUED, owner=holder, expected=(Outcome.IN_PROGRESS,))
    ledger.update_environment(
        deployment.deployment_id, env, {"status": "QUEUED", "waiting_for": ahead, "position": position, **target}
    )
    metrics.add_metric(name="LockWaits", unit=MetricUnit.Count, value=1)
    return LockGrant(status="waiting", wait_seconds=POLL_SECONDS, position=position, waiting_for=ahead, **grant)


def check_fence(step: EnvironmentStep, *, locks: LockTable, now: float) -> None:
    """Raise ``LockLostError`` unless this execution still holds the environment's lock with its token."""
    grant, where = step.lock, f"{step.deployment.app}/{step.environment.name}"
    if grant is None or grant.status != "acquired" or grant.token is None:
        raise LockLostError(f"no lock held on {where}: a stage that changes a target needs AcquireLock's grant")
    if not locks.renew(
        grant.app,
        grant.environment,
        holder=grant.holder,
        token=grant.token,
        lease_seconds=grant.lease_seconds,
        now=now,
    ):
        current = locks.get(grant.app, grant.environment)
        other = (
            f"deployment {current.deployment_id} (token {current.token})" if current and current.holder else "no one"
        )
        raise LockLostError(
            f"the lock on {where} is now held by {other}; this execution's token {grant.token} is stale, "
            "so it changed nothing"
        )


def release_locks(
    app: str, environments: Iterable[str], *, holder: str, started_at: datetime | None, locks: LockTable
) -> list[str]:
    """Release this execution's locks (and leave the queues it waits in); the environments released."""
    released = []
    for env in environments:
        if started_at is not None:
            locks.remove_waiter(app, env, waiter_key(started_at, holder))
        if locks.release(app, env, holder):
            released.append(env)
    if released:
        logger.info("locks released", extra={"environments": released})
    return released


def release_earlier_environments(step: EnvironmentStep, *, locks: LockTable) -> list[str]:
    """Once the next environment's lock is held, the environments before it are free for the next deployment."""
    names = [env.name for env in step.deployment.environments]
    earlier = names[: names.index(step.environment.name)] if step.environment.name in names else []
    return release_locks(
        step.deployment.app, earlier, holder=step.deployment.execution_arn, started_at=None, locks=locks
    )
