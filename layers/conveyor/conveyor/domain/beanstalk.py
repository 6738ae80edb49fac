"""The Elastic Beanstalk target's rollout rules, shared by AcquireLock, Deploy, ShiftTraffic, EvaluateHealth and
RollBack (each a stage of its own; what they share lives here, talking to the ``BeanstalkEnvironments`` port).

- Deploy makes the release an application version (label: the app version; its bundle is the release's
  content-addressed ``package.zip``, so a label always names the same code) and, for ``blue_green``, deploys it
  to the idle environment (created on the live one's platform when missing). ``all_at_once`` moves nothing yet.
- ShiftTraffic at 100%: ``all_at_once`` updates the environment to the new label; ``blue_green`` swaps the
  CNAMEs. Both look first: a re-run that finds the change made does not make it twice (a second swap would
  be a swap back).
- EvaluateHealth judges the environment the release was deployed to, on its own URL at judging time (before
  the swap the idle one's CNAME, after it the production CNAME): EB's health and an HTTP GET of the path.
- RollBack puts production back: swaps the CNAMEs back if the deployed environment holds the production
  CNAME, or updates the environment to the label it served before. The old environment was never changed.
"""

from __future__ import annotations

from conveyor.domain.contracts import BeanstalkRelease, CheckResult, Deployment, Release, Verdict
from conveyor.domain.errors import RollbackFailedError, TargetNotFoundError, TrafficShiftError
from conveyor.domain.manifest import base64_digest
from conveyor.domain.pipeline import ElasticBeanstalkTarget, EnvironmentHealthCheck, EnvironmentSpec
from conveyor.domain.ports import BeanstalkEnvironment, BeanstalkEnvironments, HttpProber
from conveyor.domain.restore import Restored

#: EB's health colors: Green passes, Yellow (a warning) and Red fail, Grey (no data yet) is inconclusive.
HEALTH_VERDICTS: dict[str, Verdict] = {"Green": "pass", "Yellow": "fail", "Red": "fail", "Grey": "inconclusive"}


def _existing(envs: BeanstalkEnvironments, application: str, name: str, field: str) -> BeanstalkEnvironment:
    env = envs.environment(application, name)
    if env is None:
        raise TargetNotFoundError(f"target.{field}: Elastic Beanstalk environment {application}/{name} does not exist")
    return env


def live_environment(target: ElasticBeanstalkTarget, envs: BeanstalkEnvironments) -> BeanstalkEnvironment:
    """The environment serving production: ``environment`` (all at once), or whichever of the pair holds the
    production CNAME (blue/green; ``TargetNotFoundError`` when neither does)."""
    first = _existing(envs, target.application, target.environment, "environment")
    if target.idle_environment is None or target.cname_prefix is None or first.holds(target.cname_prefix):
        return first
    second = envs.environment(target.application, target.idle_environment)
    if second is not None and second.holds(target.cname_prefix):
        return second
    raise TargetNotFoundError(
        f"target.cname_prefix: neither {target.environment} nor {target.idle_environment} of "
        f"{target.application} answers on {target.cname_prefix}.*: swap the CNAME to one of them first"
    )


def serving_label(target: ElasticBeanstalkTarget, envs: BeanstalkEnvironments) -> str | None:
    """The application version production serves (read by AcquireLock under the lock)."""
    return live_environment(target, envs).version_label


def version_description(deployment: Deployment) -> str:
    return f"conveyor {deployment.app} {deployment.version} {deployment.deployment_id}"


def deploy_version(
    deployment: Deployment, environment: EnvironmentSpec, envs: BeanstalkEnvironments, *, tag_key: str
) -> Release:
    """Make the release an application version and, for blue/green, run it on the idle environment.

    Every environment it will change must carry the managed tag (``TargetNotManagedError`` before anything
    changes), as a target function must; an idle environment Conveyor creates is tagged so."""
    target = environment.target
    if not isinstance(target, ElasticBeanstalkTarget):
        raise TypeError(f"environment {environment.name} does not target Elastic Beanstalk")
    live = live_environment(target, envs)
    envs.ensure_managed(live, tag_key)
    idle = None
    if environment.strategy.type == "blue_green":
        idle_name = target.environment if live.name == target.idle_environment else str(target.idle_environment)
        idle = envs.environment(target.application, idle_name)
        if idle is not None:
            envs.ensure_managed(idle, tag_key)
    label, package = deployment.version, deployment.package
    reused = envs.version_exists(target.application, label)
    if not reused:
        envs.create_version(target.application, label, package.bucket, package.key, version_description(deployment))
    if idle is not None and live.version_label == label and idle.version_label not in (None, label):
        # The release already serves production (an earlier attempt of it, or an earlier push, swapped it in): the
        # idle environment keeps what it replaced. Nothing is deployed over that; a failed check swaps back to it.
        return _release(deployment, environment, target, live=idle, deployed=live.name, reused=reused)
    deployed = live.name
    if environment.strategy.type == "blue_green":
        deployed = idle_name
        health_path = environment.health.environment.path if environment.health.environment else "/"
        if idle is None:
            envs.create_environment(
                target.application, deployed, label, like=live, health_path=health_path, tag_key=tag_key
            )
        elif idle.version_label != label or not idle.ready:
            envs.deploy_version(target.application, deployed, label)
    return _release(deployment, environment, target, live=live, deployed=deployed, reused=reused)


def _release(
    deployment: Deployment,
    environment: EnvironmentSpec,
    target: ElasticBeanstalkTarget,
    *,
    live: BeanstalkEnvironment,
    deployed: str,
    reused: bool,
) -> Release:
    """The release of ``deployment`` on ``deployed``, replacing what ``live`` served (and swaps back to)."""
    return Release(
        environment=environment.name,
        function_name=target.application,
        alias=target.environment,
        version_before=live.version_label,
        version_after=deployment.version,
        code_sha256=base64_digest(deployment.package.sha256),
        reused=reused,
        beanstalk=BeanstalkRelease(
            application=target.application,
            live_environment=live.name,
            deployed_environment=deployed,
            cname_prefix=target.cname_prefix,
        ),
    )


def _beanstalk(release: Release) -> BeanstalkRelease:
    if release.beanstalk is None:
        raise TrafficShiftError(f"release of {release.function_name} carries no Elastic Beanstalk environments")
    return release.beanstalk


def production_on_new(release: Release, envs: BeanstalkEnvironments) -> bool:
    """Whether production already serves the release (its environment holds the CNAME, or runs its label)."""
    eb = _beanstalk(release)
    deployed = envs.environment(eb.application, eb.deployed_environment)
    if deployed is None:
        return False
    if eb.blue_green:
        return eb.cname_prefix is not None and deployed.holds(eb.cname_prefix)
    return deployed.version_label == release.version_after


def still_serves(release: Release, envs: BeanstalkEnvironments) -> bool:
    """Whether production is still as the release left it: its environment runs the release's label and (blue/green)
    holds the production CNAME. A later deployment moves one or the other; one refused before it moved, neither."""
    eb = _beanstalk(release)
    deployed = envs.environment(eb.application, eb.deployed_environment)
    return deployed is not None and deployed.version_label == release.version_after and production_on_new(release, envs)


def promote(release: Release, envs: BeanstalkEnvironments) -> str:
    """Move production to the release (ShiftTraffic at 100%); what was done, for the ledger."""
    eb = _beanstalk(release)
    if production_on_new(release, envs):
        return f"production already serves {release.version_after} ({eb.deployed_environment})"
    if eb.blue_green:
        envs.swap_cnames(eb.application, eb.deployed_environment, eb.live_environment)
        return f"swapped CNAMEs: {eb.deployed_environment} ({release.version_after}) now serves {eb.cname_prefix}"
    envs.deploy_version(eb.application, eb.deployed_environment, release.version_after)
    return f"updated {eb.deployed_environment} to {release.version_after}"


def restore_production(release: Release, envs: BeanstalkEnvironments) -> Restored:
    """Put production back on what served before (RollBack); the label it serves again."""
    eb = _beanstalk(release)
    if not production_on_new(release, envs):
        return Restored(release.version_before, moved=False)
    if eb.blue_green:
        envs.swap_cnames(eb.application, eb.live_environment, eb.deployed_environment)
        return Restored(release.version_before, moved=True)
    if release.version_before is None:
        raise RollbackFailedError(
            f"{eb.application}/{eb.deployed_environment} served no application version before {release.version_after}: "
            "there is nothing to go back to"
        )
    envs.deploy_version(eb.application, eb.deployed_environment, release.version_before)
    return Restored(release.version_before, moved=True)


def manual_restore_command(release: Release) -> str:
    eb = _beanstalk(release)
    if eb.blue_green:
        return (
            f"aws elasticbeanstalk swap-environment-cnames --source-environment-name {eb.live_environment} "
            f"--destination-environment-name {eb.deployed_environment}"
        )
    return (
        f"aws elasticbeanstalk update-environment --environment-name {eb.deployed_environment} "
        f"--version-label {release.version_before}"
    )


def environment_checks(
    release: Release, check: EnvironmentHealthCheck, envs: BeanstalkEnvironments, prober: HttpProber | None
) -> list[CheckResult]:
    """EB's health of the deployed environment and an HTTP GET of the check's path on its current CNAME."""
    eb = _beanstalk(release)
    where = f"{eb.application}/{eb.deployed_environment}"
    env = envs.environment(eb.application, eb.deployed_environment)
    if env is None:
        gone = f"{where} does not exist"
        return [CheckResult(name="environment", kind="environment", status="fail", reason=gone)]
    health = envs.health(eb.application, eb.deployed_environment)
    status = HEALTH_VERDICTS.get(health.color, "inconclusive")
    causes = "; ".join(health.causes) or "no cause given"
    reason = f"{where} is {health.color}" + ("" if status == "pass" else f" ({health.status}): {causes}")
    evidence = {"color": health.color, "status": health.status, "causes": health.causes[:5], "cname": env.cname}
    results = [CheckResult(name="environment", kind="environment", status=status, reason=reason, evidence=evidence)]
    results.append(_probe(f"http://{env.cname}{check.path}", check, prober))
    return results


def _probe(url: str, check: EnvironmentHealthCheck, prober: HttpProber | None) -> CheckResult:
    name = "environment:http"
    if prober is None:
        return CheckResult(name=name, kind="http", status="fail", reason="no HTTP prober configured")
    response = prober.fetch(url, "GET", check.timeout_seconds)
    evidence = {"url": url, "status": response.status, "latency_ms": response.latency_ms}
    if response.error is not None:
        return CheckResult(
            name=name, kind="http", status="fail", reason=f"GET {url} failed: {response.error}", evidence=evidence
        )
    if response.status != check.expect_status:
        reason = f"GET {url} answered {response.status}, expected {check.expect_status}"
        return CheckResult(name=name, kind="http", status="fail", reason=reason, evidence=evidence)
    return CheckResult(
        name=name, kind="http", status="pass", reason=f"GET {url} answered {response.status}", evidence=evidence
    )
