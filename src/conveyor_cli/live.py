"""``conveyor live [APP]``: what each environment serves now, its weights, since when and by which deployment.

Read from the two sources of truth: the alias itself (which Lambda versions take what share of traffic) and the
ledger's ``ServedRelease`` record of that alias (which release that version carries, since when, moved there by
which deployment or operator). A record whose Lambda version is not the alias's any more is stale (the alias was
moved outside Conveyor) and is shown as such; a second version taking traffic is the rollout in progress, named
from the ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.domain import beanstalk as eb
from conveyor.domain.contracts import ServedRelease
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import ConveyorError
from conveyor.domain.pipeline import ElasticBeanstalkTarget
from conveyor.domain.records import DeploymentRecord
from pydantic import BaseModel

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud
from conveyor_cli.output import when

LIVE_COLUMNS = ("app", "environment", "target", "serves", "weights", "since", "by")
ROLLING = frozenset(
    {
        EnvironmentStatus.SHIFTING,
        EnvironmentStatus.VERIFYING,
        EnvironmentStatus.DEPLOYED,
        EnvironmentStatus.LIVE,
        EnvironmentStatus.AWAITING_APPROVAL,  # a rollout paused for a decision: its canary still takes traffic
    }
)


class Share(BaseModel):
    """One Lambda version's share of the alias's traffic, and the release it carries when known."""

    lambda_version: str
    percent: float
    release: str | None = None
    deployment_id: str | None = None


class LiveEnvironment(BaseModel):
    app: str
    environment: str
    function_name: str
    alias: str
    exists: bool
    lambda_version: str | None = None
    release: str | None = None
    """The app version the alias's main version carries (from the ledger), None when unknown."""
    deployment_id: str | None = None
    since: datetime | None = None
    recorded_by: str | None = None
    shares: list[Share] = []
    note: str | None = None
    beanstalk: bool = False
    """An Elastic Beanstalk target: ``function_name`` is its application, ``alias`` the environment serving
    production, ``lambda_version`` its application version label."""


def rolling_out(
    records: list[DeploymentRecord], environment: str, function: str, version: str
) -> DeploymentRecord | None:
    """The newest deployment that published Lambda ``version`` of ``function`` in ``environment`` and is moving
    traffic to it."""
    for record in records:  # newest first
        env = record.environments.get(environment)
        if env is not None and env.status in ROLLING and env.of_function(function).get("version_after") == version:
            return record
    return None


def live_environment(
    cloud: Cloud, app: str, environment: str, records: list[DeploymentRecord]
) -> list[LiveEnvironment]:
    """What each function of the environment's target serves (one for most targets)."""
    target, _ = operations.environment_lock(cloud, app, environment)
    return [
        live_function(cloud, app, environment, function, alias=target.alias, records=records)
        for function in target.function_names
    ]


def live_function(
    cloud: Cloud, app: str, environment: str, function: str, *, alias: str, records: list[DeploymentRecord]
) -> LiveEnvironment:
    state = operations.targets(cloud).alias_state(function, alias)
    base = LiveEnvironment(app=app, environment=environment, function_name=function, alias=alias, exists=False)
    if state is None:
        return base.model_copy(update={"note": "the alias does not exist yet: nothing deployed"})
    served = operations.ledger(cloud).served(function, alias)
    current = served if served is not None and served.lambda_version == state.version else None
    extra = sum(state.weights.values())
    shares = [
        Share(
            lambda_version=state.version,
            percent=round((1 - extra) * 100, 2),
            release=current.version if current else None,
            deployment_id=current.deployment_id if current else None,
        )
    ]
    for version, weight in state.weights.items():
        rollout = rolling_out(records, environment, function, version)
        shares.append(
            Share(
                lambda_version=version,
                percent=round(weight * 100, 2),
                release=rollout.version if rollout else None,
                deployment_id=rollout.deployment_id if rollout else None,
            )
        )
    return base.model_copy(
        update={
            "exists": True,
            "lambda_version": state.version,
            **_recorded(current),
            "shares": shares,
            "note": alias_note(served, state.version, records, environment=environment, function=function),
        }
    )


def alias_note(
    served: ServedRelease | None, version: str, records: list[DeploymentRecord], *, environment: str, function: str
) -> str | None:
    """Why the ledger names no release for the Lambda ``version`` the alias serves (None when it does)."""
    if served is not None and served.lambda_version == version:
        return None
    for record in records:  # newest first: a `conveyor rollback` to a version whose release the ledger never knew
        entry = record.environments.get(environment)
        rollback = (entry.rollback if entry is not None else None) or {}
        manual = bool(rollback.get("operator"))  # only a manual rollback's result names its operator
        # A target of several functions: the rollback restored each (its companions), under one operator.
        restored = {member.get("function_name"): member.get("restored_version") for member in _members(rollback)}
        if manual and function in restored and restored[function] == version:
            return (
                f"rolled back to version {version} by {rollback['operator']} with `conveyor rollback` "
                f"({rollback.get('rolled_back_at') or 'time not recorded'}); which release it is, is not recorded"
            )
    if served is not None:
        return f"moved outside Conveyor: the ledger last recorded version {served.lambda_version} ({served.version})"
    return "no release recorded for this alias: it was set outside Conveyor, or before Conveyor recorded releases"


def _members(rollback: dict[str, Any]) -> list[dict[str, Any]]:
    """A recorded rollback result and its companion functions' results."""
    companions = rollback.get("companions") or []
    return [rollback, *(c for c in companions if isinstance(c, dict))]


def _recorded(current: ServedRelease | None) -> dict[str, Any]:
    """What the ledger's record of the served release says: which release, by which deployment, since when."""
    return {
        "release": current.version if current else None,
        "deployment_id": current.deployment_id if current else None,
        "since": current.recorded_at if current else None,
        "recorded_by": current.recorded_by if current else None,
    }


def live_beanstalk(cloud: Cloud, app: str, environment: str, target: ElasticBeanstalkTarget) -> LiveEnvironment:
    """What production serves for an Elastic Beanstalk target (the environment holding its CNAME), and the release
    the ledger says that application version is."""
    base = LiveEnvironment(
        app=app,
        environment=environment,
        function_name=target.application,
        alias=target.environment,
        exists=False,
        beanstalk=True,
    )
    try:
        live = eb.live_environment(target, operations.beanstalk(cloud))
    except ConveyorError as exc:
        return base.model_copy(update={"note": str(exc)})
    served = operations.ledger(cloud).served(target.application, target.environment)
    current = served if served is not None and served.lambda_version == live.version_label else None
    note = None
    if current is None:
        note = "no release recorded for this application version: deployed outside Conveyor, or before it recorded"
    return base.model_copy(
        update={
            "exists": live.version_label is not None,
            "alias": live.name,
            "lambda_version": live.version_label,
            **_recorded(current),
            "note": note,
        }
    )


def live_environments(cloud: Cloud, app: str | None) -> list[LiveEnvironment]:
    """Every environment of ``app``'s pipeline (or of every registered pipeline), in pipeline order."""
    apps = [app] if app else operations.registered_apps(cloud)
    found = []
    for name in apps:
        try:
            spec = operations.show_pipeline(cloud, name)
        except CliError:
            if app:
                raise
            continue  # another app's spec that no longer parses: `pipeline show` says why
        records = operations.ledger(cloud).history(app=name, limit=50)
        for env in spec.environments:
            if isinstance(env.target, ElasticBeanstalkTarget):
                found.append(live_beanstalk(cloud, name, env.name, env.target))
            else:
                found += live_environment(cloud, name, env.name, records)
    return found


def _share(share: Share, entry: LiveEnvironment) -> str:
    """``20% v5 (1.4.2, d-new)``: a version the alias routes to, its release, and the deployment moving traffic
    to it (the alias's own version's deployment is in the row's last column)."""
    what = share.release or "unknown release"
    if share.deployment_id and share.deployment_id != entry.deployment_id:
        what = f"{what}, {share.deployment_id}"
    return f"{share.percent:g}% v{share.lambda_version} ({what})"


def live_row(entry: LiveEnvironment) -> tuple[str, ...]:
    label = f"label {entry.lambda_version}" if entry.beanstalk else f"v{entry.lambda_version}"
    serves = f"{entry.release or '?'} ({label})" if entry.exists else "nothing"
    by = entry.recorded_by or "-"
    if entry.deployment_id:
        by = f"{entry.deployment_id} ({by})"
    weights = ", ".join(_share(share, entry) for share in entry.shares) if entry.shares else "-"
    if entry.note:
        weights = f"{weights}; {entry.note}" if entry.shares else entry.note
    return (
        entry.app,
        entry.environment,
        f"{entry.function_name}/{entry.alias}" if entry.beanstalk else f"{entry.function_name}:{entry.alias}",
        serves,
        weights,
        when(entry.since),
        by,
    )
