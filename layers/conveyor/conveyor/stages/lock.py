"""One deployment per target function at a time: AcquireLock, the fencing check, and release.

The lock (``conveyor.domain.ports.LockTable``) is keyed by the target's canonical identity (its function
ARN, ``conveyor.target_identity``), not by app or environment: a function written as a name in one
place and as an ARN in another is one lock. It has a lease and a fencing token:

- ``acquire_lock`` (the ``AcquireLock`` state, before ``Deploy`` in every environment's iteration)
  joins the target's queue, and takes the lock only when it is free (or its holder's lease
  ran out, or its holder's execution stopped: aborted from the console, timed out; that
  deployment is then recorded FAILED, ``ExecutionStopped``) and this execution is first in
  line. Otherwise it answers ``waiting`` (the state machine waits and asks again, for at most
  the pipeline's ``lock_wait_seconds``) or ``superseded``.
- The newest version wins, whatever order pushes arrive in: "newer" is the higher version in the
  pipeline's version order (``is_newer``), never the later arrival. ``concurrency: supersede``: a
  waiter supersedes the waiters of lower versions, and ends SUPERSEDED itself while a higher
  version waits. ``queue``: waiters take turns in arrival order. In both, a deployment whose turn
  comes when the environment already serves a newer release ends SUPERSEDED as outdated
  (``outdated_by``): an older push never rolls a newer one back, and nothing ends FAILED for it.
  Every acquisition increments the token.
- ``check_fence`` runs before every stage that changes a target (Deploy, ShiftTraffic, RollBack):
  it renews the lease only if this execution still holds the lock *with the same token*. A stale
  holder (its lease expired and another deployment took the lock) gets ``LockLostError`` and
  changes nothing.
- ``release_locks`` runs on every way out of the state machine (Finalize, NotifyFailure) and when
  a deployment moves on to its next environment; releasing a lock one does not hold is a no-op.

Time is passed in (``now``, epoch seconds) so the logic is tested with fakes, without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cmp_to_key
from typing import Any

from conveyor.domain.beanstalk import serving_label
from conveyor.domain.contracts import EnvironmentStep, LockGrant, ServedRelease
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import ConfigurationError, LockLostError, LockWaitTimeoutError, TargetClaimedError
from conveyor.domain.locks import companion_lock_targets, lock_target, release_deployment_locks, waiter_key
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import ElasticBeanstalkTarget, EnvironmentSpec, RolloutPolicy
from conveyor.domain.ports import (
    AliasState,
    BeanstalkEnvironments,
    Ended,
    Executions,
    GateCheck,
    Ledger,
    LockTable,
    TargetOwners,
    Targets,
)
from conveyor.domain.records import LockState, Waiter
from conveyor.domain.timing import TimedStage, utcnow
from conveyor.domain.versions import compare, is_newer
from conveyor.observability import MetricUnit, logger, metrics

POLL_SECONDS = 5
"""How long the state machine waits between two AcquireLock attempts."""
WAITER_STALE_SECONDS = 300
"""A waiter that has not asked for this long is gone (its execution stopped): it loses its place."""
QUIET_SECONDS = 3 * POLL_SECONDS
"""A waiter ahead that has not asked for this long may have been stopped: its execution is asked."""
LEASE_MARGIN_SECONDS = 1800
"""Lease beyond the plan's own waits: time for the stages themselves, their retries and health re-checks."""


def lease_seconds(environment: EnvironmentSpec, policy: RolloutPolicy) -> int:
    """How long a holder may go without renewing: the traffic plan's waits plus a margin.

    A rollout that may pause for a person (``on_inconclusive: pause``) keeps its lock while it waits
    (traffic has moved), and one that waits out a freeze (``on_freeze: wait``) keeps it at CheckGates, so
    the lease covers the longest such waits too.
    """
    pause = environment.approval.timeout_seconds if environment.health.on_inconclusive == "pause" else 0
    frozen = policy.freeze_wait_seconds if policy.on_freeze == "wait" else 0
    plan = sum(step.wait_seconds for step in environment.traffic_steps())
    return plan + pause + frozen + LEASE_MARGIN_SECONDS


def newer_waiter(candidate: Waiter, than: Waiter, policy: RolloutPolicy) -> bool:
    """Whether ``candidate`` carries a newer release than ``than`` in the pipeline's version order.

    The one question every lock rule asks about versions (the arrival order never answers it).
    """
    return is_newer(candidate.built_version, than.built_version, policy.version_order)


def supersede(step: EnvironmentStep, *, ledger: Ledger, by: str, reason: str) -> None:
    """End the deployment as SUPERSEDED in ``step``'s environment: nothing deployed there, nobody paged."""
    deployment, environment = step.deployment, step.environment
    ledger.update_environment(
        deployment.deployment_id, environment.name, {"status": EnvironmentStatus.SUPERSEDED, **target_fields(step)}
    )
    ledger.finish(
        deployment.deployment_id, Outcome.SUPERSEDED, {"error": "DeploymentSupersededError", "reason": reason}
    )
    logger.info("superseded", extra={"environment": environment.name, "by": by, "reason": reason})


def outdated_by(
    step: EnvironmentStep,
    serving: str | None,
    served: ServedRelease | None,
    *,
    ledger: Ledger,
    executions: Executions,
) -> tuple[str, str] | None:
    """``(deployment_id, reason)`` when the environment already serves a newer release of the app.

    Deployments wait for an environment in push order, but a later push can reach the lock first
    (its stages ran faster); the earlier, older one must then not roll the environment back to
    itself. A newer release left behind by a deployment that failed or was stopped later on (rolled
    back in the next environment) does not count, and ``allow_downgrade`` lets any older one through.
    """
    deployment, environment = step.deployment, step.environment
    if (
        serving is None
        or deployment.policy.allow_downgrade
        or served is None
        or not served.serves(serving)  # the alias was moved outside Conveyor since: nothing known to protect
        or served.app != deployment.app
        or not is_newer(served.built_version, deployment.built_version, deployment.policy.version_order)
    ):
        return None
    version, by = served.version, served.deployment_id
    newer = ledger.get(by)
    if newer is not None and (
        newer.status not in (Outcome.SUCCEEDED, Outcome.IN_PROGRESS, Outcome.QUEUED)
        or (
            newer.status is not Outcome.SUCCEEDED
            and newer.execution_arn is not None
            and executions.ended(newer.execution_arn) is not None
        )
    ):
        return None  # it failed, or stopped, later on: what it left here is not a release to protect
    return by, (
        f"outdated in {environment.name}: it already serves {deployment.app} {version} (deployment {by}), newer "
        f"than {deployment.version}, deployed while this deployment waited; nothing was changed. "
        "To put an older version back, use conveyor rollback (or allow_downgrade)"
    )


def acquire_lock(
    step: EnvironmentStep,
    *,
    locks: LockTable,
    ledger: Ledger,
    targets: Targets,
    executions: Executions,
    owners: TargetOwners,
    now: float,
    beanstalk: BeanstalkEnvironments | None = None,
    gates: Callable[[], GateCheck] | None = None,
) -> LockGrant:
    """Take the environment's lock, or answer how to wait for it (see the module's docstring). ``owners``: the
    target must still be this app's environment's once the lock is held (an approval or a queue may have waited
    hours while the pipelines changed). ``gates``: asked once
    the lock is held, before anything moves; their event is written with the lock's record (one ledger write), their
    answer is the grant's ``gate``, and an error asking them is raised once both are recorded."""
    deployment, environment = step.deployment, step.environment
    app, env, holder = deployment.app, environment.name, deployment.execution_arn
    target = lock_target(deployment, environment)
    lease = lease_seconds(environment, deployment.policy)
    grant = {"app": app, "environment": env, "target": target, "holder": holder, "lease_seconds": lease}

    mine = Waiter(
        key=waiter_key(deployment.started_at, holder),
        holder=holder,
        deployment_id=deployment.deployment_id,
        app=app,
        environment=env,
        version=deployment.version,
        built_at=deployment.manifest.created_at,
        committed_at=deployment.manifest.commit_time,
        first_seen=now,
        last_seen=now,
    )

    def finish(token: int, waiter: Waiter, *, queued: bool = True) -> LockGrant:
        """Finish taking the lock as ``waiter``, which leaves the queue unless it still waits (``taken``)."""
        answer = taken(
            step,
            token,
            grant,
            waiter,
            locks=locks,
            ledger=ledger,
            targets=targets,
            executions=executions,
            owners=owners,
            beanstalk=beanstalk,
            now=now,
            gates=gates,
        )
        if queued and answer.status != "waiting":  # waiting: one of the target's other functions is held elsewhere
            locks.remove_waiter(target, waiter.key)
        return answer

    current, queue = locks.read(target)
    if (
        current is not None
        and current.holder == holder
        and locks.renew(target, holder=holder, token=current.token, lease_seconds=lease, now=now)
    ):
        # A retry or redrive of this state: this execution already holds the lock (and finishes taking it, leaving
        # the queue if the attempt before failed after taking it from there).
        return finish(current.token, mine)
    if (current is None or current.free_at(now)) and not queue:
        # Nobody holds it and nobody waits: take it without queueing (the write is conditioned on it being free,
        # so of two arriving at once one takes it and the other queues below).
        token = locks.try_acquire(
            target,
            holder=holder,
            deployment_id=deployment.deployment_id,
            app=app,
            environment=env,
            lease_seconds=lease,
            now=now,
        )
        if token is not None:
            return finish(token, mine, queued=False)

    locks.enqueue(target, mine)
    queue = locks.waiters(target)
    me = next((w for w in queue if w.key == mine.key), mine)

    live = waiting_line(step, queue, me, target=target, locks=locks, executions=executions, now=now)
    superseded_by = me.superseded_by
    if superseded_by is None and deployment.policy.concurrency == "supersede":
        superseded_by = supersede_lower(step, live, me, target=target, locks=locks)
    if superseded_by is not None:
        locks.remove_waiter(target, me.key)
        supersede(
            step,
            ledger=ledger,
            by=superseded_by,
            reason=f"superseded in {env} by deployment {superseded_by}, a newer version, while waiting for the lock",
        )
        return LockGrant(status="superseded", waiting_for=superseded_by, **grant)

    line = turn_order(step, live, me)
    position = next(i for i, w in enumerate(line) if w.key == me.key) + 1

    current = locks.get(target)
    dead = None  # the hold of an execution that ended without releasing it
    if position == 1 and current is not None and current.holder is not None and not current.free_at(now):
        ended = ended_holder(current.holder, executions, now)
        dead = (current, ended) if ended is not None else None
    if position == 1 and (current is None or current.free_at(now) or dead is not None):
        token = locks.try_acquire(
            target,
            holder=holder,
            deployment_id=deployment.deployment_id,
            app=app,
            environment=env,
            lease_seconds=lease,
            now=now,
            stale=dead[0] if dead is not None else None,
        )
        if token is not None:
            if dead is not None:
                took_over(step, *dead, ledger=ledger)
            return finish(token, me)
        current = locks.get(target)

    waited = now - me.first_seen
    holding = current.deployment_id if current is not None and not current.free_at(now) else None
    if waited > deployment.policy.lock_wait_seconds:
        locks.remove_waiter(target, me.key)
        raise LockWaitTimeoutError(
            f"waited {waited:.0f} s (limit {deployment.policy.lock_wait_seconds} s) for the lock on {app}/{env} "
            f"({target}), held by {held_by(current, now) or 'a deployment ahead in the queue'}; push again or "
            "raise the pipeline's lock_wait_seconds"
        )
    return wait_in_line(step, grant, position=position, ahead=holding or line[0].deployment_id, ledger=ledger)


def wait_in_line(
    step: EnvironmentStep, grant: dict[str, Any], *, position: int, ahead: str, ledger: Ledger
) -> LockGrant:
    """Say in the ledger that the deployment waits (QUEUED, behind ``ahead``) and answer ``waiting``."""
    # QUEUED is expected too: each poll of a waiting deployment writes its place again, in one write.
    ledger.set_status_with_entry(
        step.deployment.deployment_id,
        Outcome.QUEUED,
        owner=grant["holder"],
        expected=(Outcome.IN_PROGRESS, Outcome.QUEUED),
        environment=step.environment.name,
        entry={"status": EnvironmentStatus.QUEUED, "waiting_for": ahead, "position": position, **target_fields(step)},
    )
    metrics.add_metric(name="LockWaits", unit=MetricUnit.Count, value=1)
    return LockGrant(status="waiting", wait_seconds=POLL_SECONDS, position=position, waiting_for=ahead, **grant)


def supersede_lower(
    step: EnvironmentStep, live: list[Waiter], me: Waiter, *, target: str, locks: LockTable
) -> str | None:
    """``concurrency: supersede``: the deployment of a higher version waiting here (``me`` gives way), or None
    after marking every waiter of a lower version superseded by ``me``. Arrival order plays no part."""
    policy, mine = step.deployment.policy, step.deployment.deployment_id
    others = [w for w in live if w.key != me.key]
    higher = [w for w in others if newer_waiter(w, me, policy)]
    if higher:

        def order(a: Waiter, b: Waiter) -> int:
            return compare(a.built_version, b.built_version, policy.version_order)

        return max(higher, key=cmp_to_key(order)).deployment_id
    for lower in (w for w in others if newer_waiter(me, w, policy)):
        locks.supersede(target, lower.key, by=mine)
        logger.info("superseding", extra={"target": target, "lower": lower.deployment_id, "version": lower.version})
    return None


def held_by(current: LockState | None, now: float) -> str | None:
    """Who holds a lock, for a person: the deployment and its app/environment (another app's, possibly)."""
    if current is None or current.free_at(now):
        return None
    return f"deployment {current.deployment_id} of {current.app or '?'}/{current.environment or '?'}"


def target_fields(step: EnvironmentStep) -> dict[str, Any]:
    fields = {**step.environment.target.ledger_fields(), "lock_target": lock_target(step.deployment, step.environment)}
    if companions := companion_lock_targets(step.deployment, step.environment):
        fields["companion_locks"] = companions
    return fields


def _serving(
    step: EnvironmentStep, targets: Targets, ledger: Ledger, beanstalk: BeanstalkEnvironments | None
) -> tuple[AliasState | None, str | None, ServedRelease | None]:
    """What the target serves now (read under the lock): the alias (Lambda) or production's application version
    label (Elastic Beanstalk), and the release the ledger says that is."""
    target = step.environment.target
    if isinstance(target, ElasticBeanstalkTarget):
        if beanstalk is None:
            raise ConfigurationError("AcquireLock: an elasticbeanstalk target needs the Elastic Beanstalk adapter")
        label = serving_label(target, beanstalk)
        served = None if label is None else ledger.served(target.application, target.environment)
        return None, label, served
    alias = targets.alias_state(target.function_name, target.alias)
    serving = None if alias is None else alias.version
    return alias, serving, None if serving is None else ledger.served(target.function_name, target.alias)


def taken(
    step: EnvironmentStep,
    token: int,
    grant: dict[str, Any],
    waiter: Waiter,
    *,
    locks: LockTable,
    ledger: Ledger,
    targets: Targets,
    executions: Executions,
    owners: TargetOwners,
    beanstalk: BeanstalkEnvironments | None = None,
    now: float,
    gates: Callable[[], GateCheck] | None = None,
) -> LockGrant:
    """Finish taking a lock (idempotent: a retried AcquireLock that already holds it comes here too).

    An outdated deployment gives the lock back and ends SUPERSEDED. One whose target's other functions are
    not all free (``hold_companions``) gives it back too and waits in line as ``waiter``, within the pipeline's
    ``lock_wait_seconds``. Otherwise the deployment is IN_PROGRESS again, the environment LOCKED, and the
    environments before it are released.
    """
    deployment, env = step.deployment, step.environment.name
    # The alias is read once, here, under the lock: Deploy takes the version to go back to from it, and the first
    # ShiftTraffic moves the alias only if it is still in the state this revision names.
    alias, serving, served = _serving(step, targets, ledger, beanstalk)
    outdated = outdated_by(step, serving, served, ledger=ledger, executions=executions)
    if outdated is not None:
        locks.release(grant["target"], deployment.execution_arn)
        supersede(step, ledger=ledger, by=outdated[0], reason=outdated[1])
        return LockGrant(status="superseded", waiting_for=outdated[0], **grant)
    companions, blocked = hold_companions(step, grant, locks=locks, executions=executions, now=now)
    if blocked is not None:
        # One of the target's other functions is another deployment's (one whose spec named it alone, or first):
        # give this lock back and wait for it in line, so no two deployments ever move one function.
        locks.release(grant["target"], deployment.execution_arn)
        locks.enqueue(grant["target"], waiter)
        waited = now - waiter.first_seen
        if waited > deployment.policy.lock_wait_seconds:
            locks.remove_waiter(grant["target"], waiter.key)
            raise LockWaitTimeoutError(
                f"waited {waited:.0f} s (limit {deployment.policy.lock_wait_seconds} s) for deployment {blocked}, "
                f"which holds one of the functions of {deployment.app}/{env}; push again or raise the pipeline's "
                "lock_wait_seconds"
            )
        return wait_in_line(step, grant, position=1, ahead=blocked, ledger=ledger)
    try:
        require_still_owned(step, owners)
    except Exception:  # refused, or the owners could not be read: nothing recorded the lock, so it is given back
        for key in (grant["target"], *companions):
            locks.release(key, deployment.execution_arn)
        raise
    # The gates are asked under the lock, right before anything moves; what they decided is written with the lock.
    check = _ask(gates, step) if gates is not None else None
    ledger.set_status_with_entry(
        deployment.deployment_id,
        Outcome.IN_PROGRESS,
        owner=deployment.execution_arn,
        expected=(Outcome.QUEUED, Outcome.IN_PROGRESS),
        environment=env,
        entry={
            "status": EnvironmentStatus.LOCKED,
            "lock": {"token": token, "lease_seconds": grant["lease_seconds"]},
            **target_fields(step),
        },
        event=check.event if check is not None else None,
    )
    metrics.add_metric(name="LocksAcquired", unit=MetricUnit.Count, value=1)
    logger.info("lock acquired", extra={"environment": env, "token": token})
    release_earlier_environments(step, locks=locks)
    if check is not None and check.error is not None:
        raise check.error
    return LockGrant(
        status="acquired",
        token=token,
        alias_version=serving,
        alias_revision=None if alias is None else alias.revision_id,
        served=served,
        alias_read=True,
        companion_tokens=companions,
        gate=check.result if check is not None else None,
        **grant,
    )


def require_still_owned(step: EnvironmentStep, owners: TargetOwners) -> None:
    """``TargetClaimedError`` when a function (or Elastic Beanstalk environment) of the target now belongs to
    another app or environment: ValidateArtifact claimed it for this one, but an approval or a lock queue may have
    waited long enough for its pipeline to let it go and another's to claim it. One read (``owners``) of every
    member; one that nobody claims any more is still this deployment's to move (its own pipeline let it go)."""
    deployment, environment = step.deployment, step.environment
    members = [lock_target(deployment, environment), *companion_lock_targets(deployment, environment)]
    held = owners.owners(members)
    for member in members:
        claim = held.get(member)
        if claim is not None and (claim.app, claim.environment) != (deployment.app, environment.name):
            raise TargetClaimedError(
                f"{member} now belongs to app {claim.app!r} (environment {claim.environment!r}), claimed while "
                f"deployment {deployment.deployment_id} of {deployment.app!r} waited to deploy to it in "
                f"{environment.name!r}: nothing was deployed. Push again once the pipelines agree on who owns it"
            )


def _ask(gates: Callable[[], GateCheck], step: EnvironmentStep) -> GateCheck:
    """The gates' answer (``decide_gates`` puts an error asking them in it). One whose wiring failed before they
    could be asked (an adapter or setting) is a failed ``CheckGates`` too: written with the lock, then raised."""
    timed = TimedStage(step.deployment.deployment_id, "CheckGates", step.environment.name)
    try:
        with timed:
            return gates()
    except Exception:
        return GateCheck(event=timed.event, result=None, error=timed.error)


def hold_companions(
    step: EnvironmentStep, grant: dict[str, Any], *, locks: LockTable, executions: Executions, now: float
) -> tuple[dict[str, int], str | None]:
    """Take the lock of each companion function of the target (``companion_lock_targets``) with the target's:
    their tokens by key, or (nothing kept) the deployment holding one of them."""
    holder, lease = grant["holder"], grant["lease_seconds"]
    tokens: dict[str, int] = {}
    for key in companion_lock_targets(step.deployment, step.environment):
        current = locks.get(key)
        if (
            current is not None
            and current.holder == holder
            and current.token is not None
            and locks.renew(key, holder=holder, token=current.token, lease_seconds=lease, now=now)
        ):
            tokens[key] = current.token  # a retry of this state: already held
            continue
        dead = None
        if current is not None and current.holder is not None and not current.free_at(now):
            dead = current if ended_holder(current.holder, executions, now) is not None else None
        token = locks.try_acquire(
            key,
            holder=holder,
            deployment_id=step.deployment.deployment_id,
            app=grant["app"],
            environment=grant["environment"],
            lease_seconds=lease,
            now=now,
            stale=dead,
        )
        if token is None:
            for held in tokens:
                locks.release(held, holder)
            blocked = locks.get(key)
            return {}, blocked.deployment_id if blocked is not None and blocked.deployment_id else key
        tokens[key] = token
    return tokens, None


def waiting_line(
    step: EnvironmentStep,
    queue: list[Waiter],
    me: Waiter,
    *,
    target: str,
    locks: LockTable,
    executions: Executions,
    now: float,
) -> list[Waiter]:
    """The waiters still waiting, in arrival order (``me`` included): not superseded, not gone.

    A waiter is gone (and removed) when it has not asked for ``WAITER_STALE_SECONDS``, or when it has
    been quiet for ``QUIET_SECONDS`` and its execution has stopped (an operator stopped it). That
    costs a call, so only for the waiters that decide ``me``'s fate: those ahead of it and, with
    ``concurrency: supersede``, higher versions (a stopped one must not make ``me`` give way).
    """
    policy = step.deployment.policy
    supersedes = policy.concurrency == "supersede"
    line: list[Waiter] = []
    for waiter in queue:
        quiet = now - waiter.last_seen
        decides = waiter.key < me.key or (supersedes and newer_waiter(waiter, me, policy))
        if waiter.key == me.key:
            line.append(me)
        elif quiet > WAITER_STALE_SECONDS or (
            decides and quiet > QUIET_SECONDS and executions.ended(waiter.holder) is not None
        ):
            locks.remove_waiter(target, waiter.key)
        elif waiter.superseded_by is None:
            line.append(waiter)
    return line


def turn_order(step: EnvironmentStep, live: list[Waiter], me: Waiter) -> list[Waiter]:
    """Who goes first: arrival order, without (``concurrency: supersede``) the lower versions ``me`` superseded."""
    policy = step.deployment.policy
    if policy.concurrency != "supersede":
        return live
    return [w for w in live if not newer_waiter(me, w, policy)]


def ended_holder(holder: str, executions: Executions, now: float) -> Ended | None:
    """How ``holder``'s Step Functions execution ended, once none of its work can still run; else None.

    Only executions are asked (a manual rollback holds a lock under another kind of name), and only
    ended ones count (SUCCEEDED, FAILED, TIMED_OUT, ABORTED; not PENDING_REDRIVE). A stage invocation
    that was running when the execution stopped is given time to end (``Ended.quiet_at``).
    """
    if not holder.startswith("arn:") or ":execution:" not in holder:
        return None
    ended = executions.ended(holder)
    return ended if ended is not None and ended.quiet_at.timestamp() <= now else None


def took_over(step: EnvironmentStep, dead: LockState, ended: Ended, *, ledger: Ledger) -> None:
    """Say in the ledger, in one write, that the stopped holder's deployment ended, and who took its lock."""
    env, by = step.environment.name, step.deployment.deployment_id
    reason = (
        f"its execution {dead.holder} ended {ended.status} at {ended.stopped_at.isoformat()} while it held {env}, "
        f"without finishing; deployment {by} took the lock over (and sets {env}'s traffic anew)"
    )
    if dead.deployment_id is not None and dead.holder is not None:
        ledger.set_status(
            dead.deployment_id,
            Outcome.FAILED,
            owner=dead.holder,
            expected=(Outcome.IN_PROGRESS, Outcome.QUEUED),
            fields={
                "failure": {"error": "ExecutionStopped", "reason": reason, "environment": env},
                "finished_at": utcnow().isoformat(),
            },
        )
    metrics.add_metric(name="LocksTakenOver", unit=MetricUnit.Count, value=1)
    logger.warning("took over the lock of a stopped execution", extra={"environment": env, "holder": dead.holder})


def check_fence(step: EnvironmentStep, *, locks: LockTable, now: float) -> None:
    """Raise ``LockLostError`` unless this execution still holds the environment's lock with its token."""
    grant, where = step.lock, f"{step.deployment.app}/{step.environment.name}"
    if grant is None or grant.status != "acquired" or grant.token is None:
        raise LockLostError(f"no lock held on {where}: a stage that changes a target needs AcquireLock's grant")
    if not locks.renew(
        grant.target,
        holder=grant.holder,
        token=grant.token,
        lease_seconds=grant.lease_seconds,
        now=now,
    ):
        current = locks.get(grant.target)
        other = (
            f"deployment {current.deployment_id} of {current.app}/{current.environment} (token {current.token})"
            if current and current.holder
            else "no one"
        )
        raise LockLostError(
            f"the lock on {where} ({grant.target}) is now held by {other}; this execution's token {grant.token} is "
            "stale, so it changed nothing"
        )
    for key, token in grant.companion_tokens.items():
        if not locks.renew(key, holder=grant.holder, token=token, lease_seconds=grant.lease_seconds, now=now):
            raise LockLostError(
                f"the lock on {key}, one of {where}'s functions, is no longer this execution's (token {token}), so "
                "it changed nothing"
            )


def release_earlier_environments(step: EnvironmentStep, *, locks: LockTable) -> list[str]:
    """Once the next environment's lock is held, the environments before it are free for the next deployment."""
    names = [env.name for env in step.deployment.environments]
    earlier = names[: names.index(step.environment.name)] if step.environment.name in names else []
    return release_deployment_locks(step.deployment, earlier, started_at=None, locks=locks)
