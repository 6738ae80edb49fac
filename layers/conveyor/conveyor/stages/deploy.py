"""Deploy: put the release's code on an environment's target and publish a version.

Idempotent: when the target's ``$LATEST`` already holds the release's code and configuration nothing
is uploaded, and PublishVersion answers with the version Lambda published for it, so a re-run or
redrive never publishes a second version of the same code. What the alias served before (its version,
revision and the release the ledger says it is) comes from AcquireLock, which read it under the lock
(one GetAlias and one ledger read per environment, not one per stage). The stage's event and the
environment's entry are one ledger write.

A target of several functions (``target.functions``) gets the same package on each function, which keeps its
own handler; each publishes its own version, and the first function's ``Release`` carries the others as
``companions`` (the ledger entry too), so every later stage moves, judges and restores all of them.
"""

from __future__ import annotations

from typing import Any

from conveyor.domain import beanstalk as eb
from conveyor.domain.contracts import Deployment, EnvironmentStep, Release, ServedRelease
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import ConfigurationError
from conveyor.domain.manifest import base64_digest
from conveyor.domain.pipeline import ElasticBeanstalkTarget
from conveyor.domain.ports import BeanstalkEnvironments, FunctionState, Ledger, StageWrites, Targets
from conveyor.domain.records import FAILED
from conveyor.domain.timing import timed_stage
from conveyor.observability import MetricUnit, logger, metrics


def release_description(deployment: Deployment) -> str:
    """The description of a version Conveyor publishes: which app version and deployment first published it.

    Informative only, never read back: a version is immutable and is reused for byte-identical code and
    configuration, so it may carry other releases later. Which release an alias serves is in the ledger
    (``ServedRelease``).
    """
    return f"conveyor {deployment.app} {deployment.version} {deployment.deployment_id}"


def _alias_before(
    step: EnvironmentStep, function: str, targets: Targets, ledger: Ledger
) -> tuple[str | None, str | None, ServedRelease | None]:
    """The version ``function``'s alias served before this deployment, the revision naming that state, and the
    release the ledger says it served: AcquireLock read all three under the lock for the target's first function;
    a companion function's are read here (under the same lock)."""
    grant, target = step.lock, step.environment.target
    assert not isinstance(target, ElasticBeanstalkTarget)
    if function == target.function_name and grant is not None and grant.status == "acquired" and grant.alias_read:
        return grant.alias_version, grant.alias_revision, grant.served
    # A companion, or a grant from before grants carried what the alias served: read it now.
    alias = targets.alias_state(function, target.alias)
    served = ledger.served(function, target.alias)
    return (None, None, served) if alias is None else (alias.version, alias.revision_id, served)


def _replaced_by_the_release(
    step: EnvironmentStep, function: str, version_after: str, served: ServedRelease, ledger: Ledger
) -> tuple[str, ServedRelease | None] | None:
    """What the deployment that took ``function``'s alias to this release (``served``: this deployment's earlier
    attempt, or an earlier push of the same release) replaced there, from its newest Deploy event that moved this
    environment to ``version_after``; None if there is none."""
    record = ledger.get(served.deployment_id)
    for event in reversed(record.events if record is not None else []):
        if event.stage != "Deploy" or event.environment != step.environment.name or event.status == FAILED:
            continue
        for member in [event.detail, *event.detail.get("companions", [])]:
            before = member.get("version_before")
            if (
                member.get("function_name") == function
                and member.get("version_after") == version_after
                and (before and before != version_after)
            ):
                served_before = member.get("served_before")
                return str(before), ServedRelease.model_validate(served_before) if served_before else None
    return None


def _deploy_function(
    step: EnvironmentStep, function: str, latest: FunctionState, *, targets: Targets, ledger: Ledger
) -> Release:
    """Put the release's package and configuration on ``function``'s ``$LATEST`` (unless it holds them) and
    publish its version.

    The version before is what the alias served before this release: when the alias already serves this very
    release (the ledger says so: this deployment's earlier attempt, or an earlier push of the same version and
    content, took it there), that is what was replaced then. The rollout then moves no traffic (the alias stays
    on the release: ``already_serving``) and only a failed check restores the version before, never the version
    being judged."""
    deployment, environment = step.deployment, step.environment
    assert not isinstance(environment.target, ElasticBeanstalkTarget)
    config = deployment.manifest.function_config
    version_before, alias_revision, served = _alias_before(step, function, targets, ledger)
    code_sha256 = base64_digest(deployment.package.sha256)
    reused = latest.holds(code_sha256, config)
    if not reused:
        targets.update_code(function, deployment.package, config, latest)
    version_after = targets.publish_version(function, code_sha256, release_description(deployment))
    served_before = served if served is not None and served.serves(version_before) else None
    already_serving = version_before == version_after
    if (
        already_serving
        and served_before is not None
        and (served_before.version, served_before.sha256) == (deployment.version, deployment.package.sha256)
        and (earlier := _replaced_by_the_release(step, function, version_after, served_before, ledger)) is not None
    ):
        version_before, served_before = earlier
    return Release(
        environment=environment.name,
        function_name=function,
        alias=environment.target.alias,
        version_before=version_before,
        version_after=version_after,
        code_sha256=code_sha256,
        reused=reused,
        served_before=served_before,
        alias_revision=alias_revision,
        already_serving=already_serving,
    )


def _entry_fields(release: Release) -> dict[str, Any]:
    """What the environment's ledger entry says about one function's release (the reconciler restores from it)."""
    return {
        "function_name": release.function_name,
        "alias": release.alias,
        "version_before": release.version_before,
        "version_after": release.version_after,
        "served_before": release.served_before.model_dump(mode="json") if release.served_before else None,
    }


def deploy(
    step: EnvironmentStep,
    *,
    targets: Targets,
    ledger: Ledger,
    managed_tag_key: str,
    beanstalk: BeanstalkEnvironments | None = None,
) -> Release:
    """Publish the release's version on every function of the environment's target (the first function's
    release carries the others as ``companions``)."""
    if isinstance(step.environment.target, ElasticBeanstalkTarget):
        if beanstalk is None:
            raise ConfigurationError("Deploy: an elasticbeanstalk target needs the Elastic Beanstalk adapter")
        return deploy_beanstalk(step, beanstalk=beanstalk, ledger=ledger, managed_tag_key=managed_tag_key)
    deployment, environment = step.deployment, step.environment
    assert not isinstance(environment.target, ElasticBeanstalkTarget)
    writes = StageWrites()
    with timed_stage(ledger, deployment.deployment_id, "Deploy", environment.name, writes=writes) as detail:
        # Every function is checked (exists, managed) before any code changes: none is half-released for that.
        latest = {name: targets.managed_function(name, managed_tag_key) for name in environment.target.function_names}
        first, *others = (
            _deploy_function(step, name, code, targets=targets, ledger=ledger) for name, code in latest.items()
        )
        release = first.model_copy(update={"companions": others})
        detail.update(release.model_dump(mode="json"))
        writes.environment = {"status": EnvironmentStatus.DEPLOYED, **_entry_fields(release)}
        if others:
            writes.environment["companions"] = [_entry_fields(other) for other in others]
    for member in release.members:
        metrics.add_metric(
            name="VersionsReused" if member.reused else "VersionsPublished", unit=MetricUnit.Count, value=1
        )
    logger.info(
        "version ready",
        extra={
            "environment": environment.name,
            "versions": {member.function_name: member.version_after for member in release.members},
            "reused": [member.function_name for member in release.members if member.reused],
        },
    )
    return release


def deploy_beanstalk(
    step: EnvironmentStep, *, beanstalk: BeanstalkEnvironments, ledger: Ledger, managed_tag_key: str
) -> Release:
    """An application version of the release (and, blue/green, the idle environment running it)."""
    deployment, environment = step.deployment, step.environment
    writes = StageWrites()
    with timed_stage(ledger, deployment.deployment_id, "Deploy", environment.name, writes=writes) as detail:
        release = eb.deploy_version(deployment, environment, beanstalk, tag_key=managed_tag_key)
        served = ledger.served(release.function_name, release.alias)
        served_before = served if served is not None and served.serves(release.version_before) else None
        release = release.model_copy(update={"served_before": served_before})
        detail.update(release.model_dump(mode="json"))
        writes.environment = {
            "status": EnvironmentStatus.DEPLOYED,
            **_entry_fields(release),
            "beanstalk": release.beanstalk.model_dump(mode="json") if release.beanstalk else None,
        }
    metrics.add_metric(name="VersionsReused" if release.reused else "VersionsPublished", unit=MetricUnit.Count, value=1)
    logger.info("application version ready", extra={"environment": environment.name, "version": release.version_after})
    return release
