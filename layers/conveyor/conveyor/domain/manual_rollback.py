"""A manual rollback: put an environment's alias back by hand (``conveyor rollback``), under its lock.

For the on-call when a release that passed its checks turns out bad later. It takes the target
function's lock like a deployment does (the same lock, keyed by the function's canonical ARN,
whatever app or spelling names it: so it never races a deployment; a held lock is refused with
who holds it), restores the alias to the version it served before the live deployment (or the
release asked for by its app version, or a Lambda version) at 100% with routing cleared, records
the rollback on that deployment in the ledger (by whom, when) and which release the alias now
serves (``ServedRelease``: what the lock's outdated check reads), and releases the lock.
"""

import time
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from conveyor.domain.closing import migration_warning, migrations_not_undone
from conveyor.domain.contracts import ServedRelease
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import NothingToRollBackError, ReleaseNotFoundError, TargetLockedError
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import LambdaTarget
from conveyor.domain.ports import AliasState, Ledger, LockTable, Targets
from conveyor.domain.records import DeploymentRecord, LockState, StageEvent
from conveyor.domain.timing import utcnow

LEASE_SECONDS = 300


class RestoredFunction(BaseModel):
    """One companion function of a manual rollback (the shape RollbackResult's companions have in the ledger)."""

    model_config = ConfigDict(defer_build=True)

    function_name: str
    restored_version: str
    rolled_back_from: str | None


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
    rolled_back_at: datetime | None = None
    companions: list[RestoredFunction] = Field(
        default_factory=list, description="a target of several functions: what each other function got back"
    )
    data_left_migrated: list[str] = Field(
        default_factory=list,
        description="a migration the rolled-back release ran there with no down-migration after it: the code went "
        "back, the data did not (a person runs the down-migration)",
    )


def live_deployment(records: list[DeploymentRecord], environment: str, serving: str | None) -> DeploymentRecord | None:
    """The newest deployment that made ``serving`` live in ``environment``."""
    for record in records:  # newest first
        env = record.environments.get(environment)
        if env is not None and env.status is EnvironmentStatus.LIVE and env.version_after == serving:
            return record
    return None


def split_by(records: list[DeploymentRecord], environment: str, state: AliasState) -> DeploymentRecord | None:
    """The newest deployment that left the alias split as ``state`` is: one that never went live in
    ``environment``, moved part of its traffic to its new version and replaced the version still serving the rest."""
    for record in records:  # newest first
        env = record.environments.get(environment)
        if (
            env is not None
            and env.status is not EnvironmentStatus.LIVE
            and env.version_after in state.weights
            and env.version_before == state.version
        ):
            return record
    return None


def went_live(record: DeploymentRecord, environment: str) -> bool:
    """Whether ``record``'s release served ``environment``: live there now, its deployment succeeded, or it was
    rolled back by hand later (only a live release is)."""
    env = record.environments.get(environment)
    if env is None or not env.version_after:
        return False
    manual = str((env.rollback or {}).get("reason", "")).startswith("manual")
    return (
        env.status is EnvironmentStatus.LIVE
        or record.status is Outcome.SUCCEEDED
        or (env.status is EnvironmentStatus.ROLLED_BACK and manual)
    )


def lambda_version_of(records: list[DeploymentRecord], environment: str, app: str, release: str) -> str:
    """The Lambda version that carried ``app`` ``release`` (an app version, as its manifest names it) in
    ``environment``: the one the newest deployment of it that went live there published."""
    return str(released_entry(records, environment, app, release).version_after)


def released_entry(records: list[DeploymentRecord], environment: str, app: str, release: str) -> EnvironmentEntry:
    """``environment``'s entry on the newest deployment of ``app`` ``release`` that went live there (its
    ``version_after``, and each companion function's, carried the release).

    A release that was deployed there but never went live (rolled back by its checks) is refused, naming that
    deployment: restoring a version its own checks failed is not a rollback to a known good state.
    """
    deployed = [r for r in records if r.version == release and r.environments.get(environment)]
    for record in deployed:  # newest first
        if went_live(record, environment):
            return record.environments[environment]
    if deployed:
        outcomes = ", ".join(f"{r.deployment_id} {r.status.value}" for r in deployed[:3])
        raise ReleaseNotFoundError(
            f"{app} {release} never went live in {environment} (deployments: {outcomes}); roll back to a release "
            "that served there (`conveyor history --app " + app + "`), or name a Lambda version with --lambda-version"
        )
    raise ReleaseNotFoundError(
        f"no deployment of {app} {release} reached {environment} in the ledger; see `conveyor history --app {app}`"
    )


def undone_by(
    records: list[DeploymentRecord],
    environment: str,
    live: DeploymentRecord | None,
    *,
    function: str,
    version: str,
    to_release: str | None,
) -> list[DeploymentRecord]:
    """The deployments whose release a rollback to Lambda ``version`` of ``function`` (app version ``to_release``)
    takes out of ``environment``: every one that went live there after the release that carried it (a roll
    forward takes none out); the live one when no release is known to have carried it."""

    def carried(record: DeploymentRecord) -> bool:
        entry = record.environments[environment]
        return (
            record.version == to_release if to_release else entry.of_function(function).get("version_after") == version
        )

    target = next((r for r in records if went_live(r, environment) and carried(r)), None)
    if target is None:
        return [live] if live is not None else []
    return [r for r in records if r.created_at > target.created_at and went_live(r, environment)]


def migrations_taken_out(undone: list[DeploymentRecord], environment: str, ledger: Ledger) -> list[str]:
    """One warning per migration the releases ``undone`` (newest first) ran in ``environment`` and nobody undid,
    naming the newest that ran it (each record read whole: a history listing carries no stage events)."""
    newest_run: dict[str, DeploymentRecord] = {}
    for taken_out in undone:
        full = ledger.get(taken_out.deployment_id) or taken_out
        for _, hook in migrations_not_undone(full, [environment]):
            newest_run.setdefault(hook, full)
    return [migration_warning(record, environment, hook) for hook, record in newest_run.items()]


def served_after_rollback(
    records: list[DeploymentRecord],
    live: DeploymentRecord | None,
    *,
    environment: str,
    function: str,
    alias: str,
    version: str,
    operator: str,
    release: str | None = None,
) -> ServedRelease | None:
    """The release Lambda ``version`` carries once the alias is back on it, from the ledger; None if unknown.

    The app version the operator named (``release``: several releases of the same code share a version); else
    the release the live deployment replaced, when that is the version restored; else the newest deployment
    that made ``version`` live in ``environment``.
    """
    recorded_by = f"ManualRollback:{operator}"
    entry = live.environments.get(environment) if live else None
    before = entry.of_function(function).get("served_before") if entry is not None else None
    if before and before.get("lambda_version") == version and release in (None, before.get("version")):
        return ServedRelease.model_validate(before | {"recorded_at": utcnow(), "recorded_by": recorded_by})
    named = [record for record in records if record.version == release]
    for record in [*named, *records]:  # the named release's deployments first, then newest first
        env = record.environments.get(environment)
        if (
            env is not None
            and env.of_function(function).get("version_after") == version
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


def _record(
    result: ManualRollback, ledger: Ledger, *, live: DeploymentRecord | None, served: ServedRelease | None
) -> None:
    """Who moved the alias, in the ledger: on the deployment rolled back (``ManualRollback``, its entry
    ROLLED_BACK), or, when no deployment of the version left is live there (the alias was moved outside Conveyor,
    or by an earlier rollback), on the deployment of the release restored (``ManualRestore``: not a rollback of
    that deployment, which DORA's time to restore and the report read ``ManualRollback`` as)."""
    audited = live.deployment_id if live is not None else served.deployment_id if served is not None else None
    if audited is not None:
        ledger.record_event(
            StageEvent(
                deployment_id=audited,
                stage="ManualRollback" if live is not None else "ManualRestore",
                environment=result.environment,
                status="succeeded",
                started_at=result.rolled_back_at,
                finished_at=utcnow(),
                duration_ms=result.duration_ms,
                detail=result.model_dump(mode="json"),
            )
        )
    if live is not None:
        ledger.update_environment(
            live.deployment_id,
            result.environment,
            {
                "status": EnvironmentStatus.ROLLED_BACK,
                "weight": 0,
                "rollback": result.model_dump(mode="json") | {"reason": f"manual, by {result.operator}"},
            },
        )


def _holder(held: LockState | None) -> str:
    """Who holds a lock, as far as its item says (one read as its holder lets go may have lost the rest)."""
    if held is None or held.holder is None:
        return "a deployment that released it as it was read"
    return f"deployment {held.deployment_id or held.holder} of {held.app or '?'}/{held.environment or '?'}"


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
    to_release: str | None = None,
) -> ManualRollback:
    """Roll ``app``'s ``environment`` (whose ``target`` is locked under ``lock``) back to Lambda version ``to``, the
    version that carried app version ``to_release`` there, or the version before the live deployment, on behalf
    of ``operator``."""
    function, alias = target.function_name, target.alias
    state = targets.alias_state(function, alias)
    serving = state.version if state is not None else None
    records = ledger.history(app=app, limit=200)
    # A split a deployment left when it did not finish (its own rollback failed, or it was stopped): rolling back
    # finishes that deployment's rollback, to what it replaced, and is recorded on it.
    splitting = (
        split_by(records, environment, state)
        if state is not None and state.weights and to is None and to_release is None
        else None
    )
    live = splitting or live_deployment(records, environment, serving)
    entry = live.environments[environment] if live else None
    if target.companions and to is not None:
        raise NothingToRollBackError(
            f"{app}/{environment} targets {len(target.function_names)} functions ({', '.join(target.function_names)}): "
            "a Lambda version names one function's code; roll back to an app version (--to APP_VERSION) or to what "
            "served before the live release"
        )
    source = released_entry(records, environment, app, to_release) if to_release is not None else entry
    field = "version_after" if to_release is not None else "version_before"
    versions = {name: to or (source and source.of_function(name).get(field)) for name in target.function_names}
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        raise NothingToRollBackError(
            f"no earlier version of {', '.join(f'{name}:{alias}' for name in missing)} is recorded in the ledger; "
            "name one with --to"
        )
    version = str(versions[function])
    # Read before anything moves: a ledger that refuses then leaves the traffic where it was.
    undone = undone_by(records, environment, live, function=function, version=version, to_release=to_release)
    left_migrated = migrations_taken_out(undone, environment, ledger)
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
        raise TargetLockedError(
            f"{app}/{environment} ({lock}) is locked by {_holder(locks.get(lock))}; "
            "let it finish (it rolls back by itself on a failed check) and try again"
        )
    try:
        for name in target.function_names:
            targets.ensure_managed(name, managed_tag_key)
        states = {name: targets.alias_state(name, alias) for name in target.function_names}
        was = {name: state.version if (state := states[name]) is not None else None for name in target.companions}
        if all(
            (state := states[name]) is not None and state.version == str(versions[name]) and not state.weights
            for name in target.function_names
        ):  # all of the traffic already on it: a split left by a stop is still cleared
            raise NothingToRollBackError(
                f"{app}/{environment} already serves version {version} of {function}:{alias}; nothing to roll back "
                "(a release of the same code reuses its version): name an earlier release with --to APP_VERSION "
                f"(`conveyor history --app {app}`)"
            )
        started_at, started = utcnow(), time.perf_counter()
        for name in target.function_names:
            targets.route_alias(name, alias, str(versions[name]), None)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        for name in target.function_names:
            restored = served_after_rollback(
                records,
                live,
                environment=environment,
                function=name,
                alias=alias,
                version=str(versions[name]),
                operator=operator,
                release=to_release,
            )
            if restored is not None:
                ledger.record_served(restored)
            else:
                ledger.forget_served(name, alias)  # the restored version's release is not known: claim none
            if name == function:
                served = restored
        result = ManualRollback(
            app=app,
            environment=environment,
            function_name=function,
            alias=alias,
            restored_version=version,
            rolled_back_from=splitting.environments[environment].version_after if splitting else serving,
            duration_ms=duration_ms,
            operator=operator,
            deployment_id=live.deployment_id if live else None,
            serves=f"{served.app} {served.version} (deployment {served.deployment_id})" if served else None,
            rolled_back_at=started_at,
            companions=[
                RestoredFunction(function_name=name, restored_version=str(versions[name]), rolled_back_from=was[name])
                for name in target.companions
            ],
            data_left_migrated=left_migrated,
        )
        _record(result, ledger, live=live, served=served)
    finally:
        locks.release(lock, holder)
    return result


__all__ = [
    "LEASE_SECONDS",
    "ManualRollback",
    "RestoredFunction",
    "lambda_version_of",
    "live_deployment",
    "manual_rollback",
    "served_after_rollback",
    "went_live",
]
