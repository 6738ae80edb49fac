"""Environment locks a deployment holds, as the ledger and the deployment name them, and their release.

Shared by AcquireLock (which takes them), Finalize and NotifyFailure (which release them on the way out)
and the reconciler (which releases what an ended execution left behind).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from conveyor.domain.contracts import Deployment
from conveyor.domain.ownership import resolve_members, resolve_target
from conveyor.domain.pipeline import ElasticBeanstalkTarget, EnvironmentSpec, LambdaTarget
from conveyor.domain.ports import LockTable
from conveyor.domain.records import DeploymentRecord
from conveyor.observability import logger


def lock_target(deployment: Deployment, environment: EnvironmentSpec) -> str:
    """The canonical identity (function or Elastic Beanstalk environment ARN) of ``environment``'s target: the
    key of its lock."""
    field = f"pipeline {deployment.app}: environment {environment.name}: target"
    return resolve_target(environment.target, deployment.home, field=field).arn


def companion_lock_targets(deployment: Deployment, environment: EnvironmentSpec) -> list[str]:
    """The lock keys of the other members of ``environment``'s target (the companion functions of
    ``LambdaTarget.functions``, or a blue/green pair's idle Elastic Beanstalk environment), each held with the
    target's own lock: whatever spec another deployment carries, nobody moves one of them meanwhile."""
    target = environment.target
    if isinstance(target, LambdaTarget) and not target.companions:
        return []
    if isinstance(target, ElasticBeanstalkTarget) and target.idle_environment is None:
        return []
    field = f"pipeline {deployment.app}: environment {environment.name}: target"
    return [member.arn for member in resolve_members(environment, deployment.home, field=field)[1:]]


def deployment_targets(deployment: Deployment, names: Iterable[str]) -> list[str]:
    """The lock keys of the deployment's environments called ``names`` (their companion functions' too)."""
    wanted = set(names)
    return [
        key
        for env in deployment.environments
        if env.name in wanted
        for key in (lock_target(deployment, env), *companion_lock_targets(deployment, env))
    ]


def recorded_targets(record: DeploymentRecord) -> list[str]:
    """The lock keys AcquireLock recorded on the deployment's environments (for a stage without the spec)."""
    return [
        str(key)
        for env in record.environments.values()
        if env.lock_target
        for key in (env.lock_target, *(env.companion_locks or []))
    ]


def waiter_key(started_at: datetime, execution_arn: str) -> str:
    """Queue order: the execution's start time (FIFO by push), then its ARN to break ties."""
    return f"{started_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{execution_arn}"


def release_locks(targets: Iterable[str], *, holder: str, started_at: datetime | None, locks: LockTable) -> list[str]:
    """Release this execution's locks on ``targets`` (and leave their queues); the targets released."""
    released = []
    for target in dict.fromkeys(targets):
        if started_at is not None:
            locks.remove_waiter(target, waiter_key(started_at, holder))
        if locks.release(target, holder):
            released.append(target)
    if released:
        logger.info("locks released", extra={"targets": released})
    return released


def release_deployment_locks(
    deployment: Deployment, environments: Iterable[str], *, started_at: datetime | None, locks: LockTable
) -> list[str]:
    """Release the deployment's locks on the targets of its ``environments`` (named as in its pipeline)."""
    return release_locks(
        deployment_targets(deployment, environments),
        holder=deployment.execution_arn,
        started_at=started_at,
        locks=locks,
    )


def release_recorded_locks(
    record: DeploymentRecord, *, holder: str, started_at: datetime | None, locks: LockTable
) -> list[str]:
    """Release ``holder``'s locks on every target the ledger says the deployment queued for or locked."""
    return release_locks(recorded_targets(record), holder=holder, started_at=started_at, locks=locks)
