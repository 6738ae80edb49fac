"""Deploy: put the release's code on an environment's target and publish a version.

Idempotent: when the target's ``$LATEST`` already holds the release's code and configuration nothing
is uploaded, and PublishVersion answers with the version Lambda published for it, so a re-run or
redrive never publishes a second version of the same code. What the alias served before comes from
AcquireLock, which read it under the lock (one GetAlias per environment, not one per stage).
"""

from __future__ import annotations

from conveyor.domain.contracts import Deployment, EnvironmentStep, Release
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.manifest import base64_digest
from conveyor.domain.ports import Ledger, Targets
from conveyor.domain.timing import timed_stage
from conveyor.observability import MetricUnit, logger, metrics


def release_description(deployment: Deployment) -> str:
    """The description of a version Conveyor publishes: which app version and deployment first published it.

    Informative only, never read back: a version is immutable and is reused for byte-identical code and
    configuration, so it may carry other releases later. Which release an alias serves is in the ledger
    (``ServedRelease``).
    """
    return f"conveyor {deployment.app} {deployment.version} {deployment.deployment_id}"


def _alias_before(step: EnvironmentStep, targets: Targets) -> tuple[str | None, str | None]:
    """The version the alias served before this deployment, and the revision naming that state."""
    if step.lock is not None and step.lock.status == "acquired":
        return step.lock.alias_version, step.lock.alias_revision
    # Not under a lock grant (a state from before grants carried the alias): read it now.
    alias = targets.alias_state(step.environment.target.function_name, step.environment.target.alias)
    return (None, None) if alias is None else (alias.version, alias.revision_id)


def deploy(step: EnvironmentStep, *, targets: Targets, ledger: Ledger, managed_tag_key: str) -> Release:
    deployment, environment = step.deployment, step.environment
    function, alias = environment.target.function_name, environment.target.alias
    config = deployment.manifest.function_config
    with timed_stage(ledger, deployment.deployment_id, "Deploy", environment.name) as detail:
        latest = targets.managed_function(function, managed_tag_key)
        version_before, alias_revision = _alias_before(step, targets)
        served = ledger.served(function, alias)
        served_before = served if served is not None and served.serves(version_before) else None
        code_sha256 = base64_digest(deployment.package.sha256)
        reused = latest.holds(code_sha256, config)
        if not reused:
            targets.update_code(function, deployment.package, config)
        version = targets.publish_version(function, code_sha256, release_description(deployment))
        release = Release(
            environment=environment.name,
            function_name=function,
            alias=alias,
            version_before=version_before,
            version_after=version,
            code_sha256=code_sha256,
            reused=reused,
            served_before=served_before,
            alias_revision=alias_revision,
        )
        detail.update(release.model_dump(mode="json"))
    ledger.update_environment(
        deployment.deployment_id,
        environment.name,
        {
            "status": EnvironmentStatus.DEPLOYED,
            "function_name": function,
            "alias": alias,
            "version_before": version_before,
            "version_after": version,
            "served_before": served_before.model_dump(mode="json") if served_before else None,
        },
    )
    metrics.add_metric(name="VersionsReused" if reused else "VersionsPublished", unit=MetricUnit.Count, value=1)
    logger.info("version ready", extra={"environment": environment.name, "version": version, "reused": reused})
    return release
