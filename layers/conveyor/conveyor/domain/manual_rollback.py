"""A manual rollback: put an environment's alias back by hand (``conveyor rollback``), under its lock.

For the on-call when a release that passed its checks turns out bad later. It takes the target
function's lock like a deployment does (the same lock, keyed by the function's canonical ARN,
whatever app or spelling names it: so it never races a deployment; a held lock is refused with
who holds it), restores the alias to the version it served before the live deployment (or the
version asked for) at 100% with routing cleared, records the rollback on that deployment in the
ledger and which release the alias now serves (``ServedRelease``: what the lock's outdated check
reads), and releases the lock.
"""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, ConfigDict

from conveyor.domain.contracts import Outcome, ServedRelease
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import NothingToRollBackError, TargetLockedError
from conveyor.domain.pipeline import LambdaTarget
from conveyor.domain.ports import Ledger, LockTable, Targets
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.timing import utcnow

LEASE_SECONDS = 300


class ManualRollback(BaseModel):
    """What a manual rollback did."""

    model_config = ConfigDict(defer_build=True)

    app: str
    environment: str
    function_name: str
    alias: str
    restored_version: str
    rolled_back_from: str | None
    duration_ms: float
    operator: str
    deployment_id: str | None
    serves: str | None


def live_deployment(records: list[DeploymentRecord], environment: str, serving: str | None) -> DeploymentRecord | None:
    """The newest deployment that made ``serving`` live in ``environment``."""
    for record in records:  # newest first
        env = record.environments.get(environment)
        if env is not None and env.status is EnvironmentStatus.LIVE and env.version_after == serving:
            return record
    return None


def served_after_rollback(
    records: list[DeploymentRecord],
    live: DeploymentRecord | None,
    *,
    environment: str,
    function: str,
    alias: str,
    version: str,
    operator: str,
) -> ServedRelease | None:
    """The release Lambda ``version`` carries once the alias is back on it, from the ledger; None if unknown.

    The release the live deployment replaced, when that is the version restored; otherwise the newest
    deployment that made ``version`` live in ``environment``.
    """
    recorded_by = f"ManualRollback:{operator}"
    entry = live.environments.get(environment) if live else None
    before = entry.served_before if entry is not None else None
    if before and before.get("lambda_version") == version:
        return ServedRelease.model_validate(before | {"recorded_at": utcnow(), "recorded_by": recorded_by})
    for record in records:  # newest first
        env = record.environments.get(environment)
        if (
            env is not None
            and env.version_after == version
            and (env.status is EnvironmentStatus.LIVE or record.status is Outcome.SUCCEEDED)
            and record.package_sha256 is not None
        ):
            return ServedRelease(
                function_name=function,
                alias=alias,
                app=record.app,
                version=record.version,
                deployment_id=record.deployment_id,
                sha256=record.package_sha256,
                lambda_version=version,
                built_at=record.built_at or record.created_at,
                committed_at=record.commit_time,
                recorded_at=utcnow(),
                recorded_by=recorded_by,
            )
    return None


def manual_rollback(
    app: str,
    environment: str,
    to: str | None,
    *,
    target: LambdaTarget,
    lock: str,
    operator: str,
    ledger: Ledger,
    targets: Targets,
    locks: LockTable,
    managed_tag_key: str,
) -> ManualRollback:
    """Roll ``app``'s ``environment`` (whose ``target`` is locked under ``lock``) back to ``to`` or the version
    before the live deployment, on behalf of ``operator``."""
    function, alias = target.function_name, target.alias
    serving = targets.alias_version(function, alias)
    records = ledger.history(app=app, limit=200)
    live = live_deployment(records, environment, serving)
    entry = live.environments[environment] if live else None
    version = to or (entry.version_before if entry else None)
    if version is None:
        raise NothingToRollBackError(
            f"no earlier version of {function}:{alias} is recorded in the ledger; name one with --to"
        )
    holder = f"manual-rollback:{operator}:{uuid.uuid4()}"
    token = locks.try_acquire(
        lock,
        holder=holder,
        deployment_id=live.deployment_id if live else "-",
        app=app,
        environment=environment,
        lease_seconds=LEASE_SECONDS,
        now=time.time(),
    )
    if token is None:
        held = locks.get(lock)
        by = f"deployment {held.deployment_id} of {held.app}/{held.environment}" if held else "another deployment"
        raise TargetLockedError(
            f"{app}/{environment} ({lock}) is locked by {by}; "
            "let it finish (it rolls back by itself on a failed check) and try again"
        )
    try:
        targets.ensure_managed(function, managed_tag_key)
        started_at, started = utcnow(), time.perf_counter()
        targets.route_alias(function, alias, version, None)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        served = served_after_rollback(
            records, live, environment=environment, function=function, alias=alias, version=version, operator=operator
        )
        if served is not None:
            ledger.record_served(served)
        else:
            ledger.forget_served(function, alias)  # the restored version's release is not known: claim none
        result = ManualRollback(
            app=app,
            environment=environment,
            function_name=function,
            alias=alias,
            restored_version=version,
            rolled_back_from=serving,
            duration_ms=duration_ms,
            operator=operator,
            deployment_id=live.deployment_id if live else None,
            serves=f"{served.app} {served.version} (deployment {served.deployment_id})" if served else None,
        )
        if live is not None:
            ledger.record_event(
                StageEvent(
                    deployment_id=live.deployment_id,
                    stage="ManualRollback",
                    environment=environment,
                    status="succeeded",
                    started_at=started_at,
                    finished_at=utcnow(),
                    duration_ms=duration_ms,
                    detail=result.model_dump(mode="json"),
                )
            )
            ledger.update_environment(
                live.deployment_id,
                environment,
                {
                    "status": EnvironmentStatus.ROLLED_BACK,
                    "weight": 0,
                    "rollback": result.model_dump(mode="json") | {"reason": f"manual, by {operator}"},
                },
            )
    finally:
        locks.release(lock, holder)
    return result


__all__ = ["LEASE_SECONDS", "ManualRollback", "live_deployment", "manual_rollback", "served_after_rollback"]
