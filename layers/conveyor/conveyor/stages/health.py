"""EvaluateHealth: judge the new version after a traffic step, with the evidence for the verdict.

Checks: a synthetic invoke of the new version whose response must contain the spec's expected
result; the state of the CloudWatch alarms the spec names; per-version Lambda metrics of the
alias's real traffic (absolute limits and new-vs-old, see ``stages.analysis``); an HTTP probe;
and the team's pre-traffic / post-traffic hook Lambdas. Which checks run depends on the step:

- weight 0 (blue/green verification, or before a pre-traffic hook): synthetic, alarms, pre-traffic hook;
  the new version serves no production traffic, so no metrics and no HTTP probe;
- weight > 0: synthetic, alarms, metrics, HTTP probe;
- the last step (100%): the post-traffic hook too.

A target of several functions is judged across all of them: each synthetic check invokes the function it
names (the first by default), and the metrics judge every function's new version against its own old one,
each check named with its function (``metrics:error_rate@orders-worker``). Any of them failing fails the
verdict, so the rollback restores them all.

A missing alarm fails the check (it is not "OK"); an alarm without data, or fewer invocations than
the spec's minimum, is inconclusive, and inconclusive follows the spec's ``on_inconclusive`` policy
(fail by default; ``retry`` judges again after another interval, up to ``max_inconclusive_retries``,
then fails; ``pause`` waits for a person to promote or roll back): no data is never a pass by default.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from conveyor.domain.analysis import judge_metrics, metric_window
from conveyor.domain.beanstalk import environment_checks
from conveyor.domain.contracts import (
    CheckResult,
    Deployment,
    EnvironmentStep,
    HealthVerdict,
    HookPayload,
    HookResult,
    Release,
    TrafficState,
    Verdict,
)
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import MetricsUnavailableError, TargetError, TrafficShiftError
from conveyor.domain.limits import clip
from conveyor.domain.pipeline import HealthSpec, HookSpec, HttpProbe, MetricsCheck, SyntheticCheck
from conveyor.domain.ports import (
    Alarms,
    BeanstalkEnvironments,
    HttpProber,
    LambdaMetrics,
    Ledger,
    StageWrites,
    Targets,
)
from conveyor.domain.records import FAILED
from conveyor.domain.target_identity import FunctionRef
from conveyor.domain.time_scale import UNSCALED, TimeScale
from conveyor.domain.timing import timed_stage, utcnow
from conveyor.observability import MetricUnit, logger, metrics
from conveyor.settings import MANAGED_TAG_KEY

#: An inconclusive verdict is judged again after the step's wait, but never sooner than this: AWS/Lambda
#: metrics have one-minute resolution (the local cloud scales this wait like every other).
MIN_RETRY_SECONDS = 60
_HOOK_ANSWER = "{'status': 'pass'|'fail', 'detail': ...}"

_MAX_EVIDENCE_CHARS = 1000


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` does not contain ``expected`` (dicts match as subsets, the rest by equality)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or 'response'} is {_short(actual)}, expected an object"]
        found: list[str] = []
        for key, value in expected.items():
            where = f"{path}.{key}" if path else key
            if key not in actual:
                found.append(f"{where} is missing")
            else:
                found.extend(mismatches(value, actual[key], where))
        return found
    if expected != actual:
        return [f"{path or 'response'} is {_short(actual)}, expected {_short(expected)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def synthetic_check(targets: Targets, release: Release, check: SyntheticCheck) -> CheckResult:
    qualifier = release.version_after
    where = f"{release.function_name}:{qualifier}"
    try:
        invocation = targets.invoke(release.function_name, qualifier, check.payload)
    except TargetError as exc:
        return CheckResult(name="synthetic", kind="synthetic", status="fail", reason=str(exc), evidence={})
    evidence = {
        "function": where,
        "duration_ms": invocation.duration_ms,
        "response": _short(invocation.payload)[:_MAX_EVIDENCE_CHARS],
    }
    if invocation.function_error:
        body = invocation.payload if isinstance(invocation.payload, dict) else {}
        error = f"{body.get('errorType', invocation.function_error)}: {body.get('errorMessage', '')}".strip(": ")
        return CheckResult(
            name="synthetic", kind="synthetic", status="fail", reason=f"{where} raised {error}", evidence=evidence
        )
    problems = mismatches(check.expect, invocation.payload)
    if problems:
        return CheckResult(
            name="synthetic",
            kind="synthetic",
            status="fail",
            reason=f"{where} answered wrongly: {'; '.join(problems)} (response: {evidence['response']})",
            evidence=evidence,
        )
    return CheckResult(
        name="synthetic", kind="synthetic", status="pass", reason=f"{where} answered as expected", evidence=evidence
    )


def alarm_checks(alarms: Alarms, names: list[str]) -> list[CheckResult]:
    states = alarms.states(names)
    results = []
    for name in names:
        state = states.get(name)
        status: Verdict
        if state is None:
            status, reason = "fail", f"alarm {name!r} does not exist"
        elif state == "OK":
            status, reason = "pass", f"alarm {name!r} is OK"
        elif state == "ALARM":
            status, reason = "fail", f"alarm {name!r} is in ALARM"
        else:
            status, reason = "inconclusive", f"alarm {name!r} has {state}"
        results.append(
            CheckResult(name=f"alarm:{name}", kind="alarm", status=status, reason=reason, evidence={"state": state})
        )
    return results


def metrics_checks(
    source: LambdaMetrics | None,
    spec: MetricsCheck,
    release: Release,
    traffic: TrafficState | None,
    now: datetime,
    *,
    scale: TimeScale = UNSCALED,
) -> list[CheckResult]:
    """Judge the alias's real traffic to the new version (and the old one, as baseline) over the window
    (scaled like the waits under a time scale: see ``metric_window``)."""
    start, seconds = metric_window(spec, traffic, now, scale)
    if source is None:
        return [CheckResult(name="metrics", kind="metrics", status="fail", reason="no metrics source configured")]
    versions = [release.version_after]
    if release.version_before not in (None, release.version_after):
        versions.append(str(release.version_before))
    try:
        stats = source.version_stats(release.function_name, release.alias, versions, start, now)
    except MetricsUnavailableError as exc:
        return [CheckResult(name="metrics", kind="metrics", status="inconclusive", reason=str(exc))]
    old = stats.get(versions[1]) if len(versions) > 1 else None
    return judge_metrics(spec, stats[release.version_after], old, seconds, scale)


def http_check(prober: HttpProber | None, probe: HttpProbe) -> CheckResult:
    """The probe's status, body text and latency against the spec."""
    if prober is None:
        return CheckResult(name="http", kind="http", status="fail", reason="no HTTP prober configured")
    response = prober.fetch(probe.url, probe.method, probe.timeout_seconds)
    evidence: dict[str, Any] = {
        "url": probe.url,
        "status": response.status,
        "latency_ms": response.latency_ms,
        "body": response.body[:200],
    }
    where = f"{probe.method} {probe.url}"
    if response.error is not None or response.status is None:
        return CheckResult(
            name="http", kind="http", status="fail", reason=f"{where} failed: {response.error}", evidence=evidence
        )
    problems = []
    if response.status != probe.expect_status:
        problems.append(f"status {response.status}, expected {probe.expect_status}")
    if probe.body_contains is not None and probe.body_contains not in response.body:
        problems.append(f"body lacks {probe.body_contains!r}")
    if response.latency_ms > probe.latency_budget_ms:
        problems.append(f"took {response.latency_ms:.0f} ms, budget {probe.latency_budget_ms:g} ms")
    if problems:
        return CheckResult(
            name="http", kind="http", status="fail", reason=f"{where}: {'; '.join(problems)}", evidence=evidence
        )
    return CheckResult(
        name="http",
        kind="http",
        status="pass",
        reason=f"{where} answered {response.status} in {response.latency_ms:.0f} ms",
        evidence=evidence,
    )


def hook_payload(
    phase: Literal["pre_traffic", "post_traffic"], deployment: Deployment, release: Release, weight: int
) -> HookPayload:
    return HookPayload(
        phase=phase,
        deployment_id=deployment.deployment_id,
        app=deployment.app,
        version=deployment.version,
        environment=release.environment,
        function_name=release.function_name,
        alias=release.alias,
        function_version=release.version_after,
        previous_version=release.version_before,
        weight=weight,
    )


def hook_check(targets: Targets, hook: HookSpec, payload: HookPayload) -> CheckResult:
    """Invoke the team's hook Lambda; it must answer ``{"status": "pass"|"fail", "detail": ...}``."""
    name = f"hook:{payload.phase}"
    where = f"{payload.phase} hook {hook.function_name}:{hook.qualifier}"
    try:
        # Checked at validation too; asked again here, as IAM does, in case the tag went since.
        targets.ensure_managed(hook.function_name, MANAGED_TAG_KEY)
    except TargetError as exc:
        return CheckResult(name=name, kind="hook", status="fail", reason=f"{where} was not invoked: {exc}")
    try:
        invocation = targets.invoke(hook.function_name, hook.qualifier, payload.model_dump(mode="json"))
    except TargetError as exc:
        return CheckResult(name=name, kind="hook", status="fail", reason=f"{payload.phase} hook: {exc}")
    evidence = {"hook": f"{hook.function_name}:{hook.qualifier}", "duration_ms": invocation.duration_ms}
    if invocation.function_error:
        body = invocation.payload if isinstance(invocation.payload, dict) else {}
        error = f"{body.get('errorType', invocation.function_error)}: {body.get('errorMessage', '')}".strip(": ")
        return CheckResult(name=name, kind="hook", status="fail", reason=f"{where} raised {error}", evidence=evidence)
    try:
        result = HookResult.model_validate(invocation.payload)
    except ValidationError:
        return CheckResult(
            name=name,
            kind="hook",
            status="fail",
            reason=f"{where} answered {_short(invocation.payload)}, expected {_HOOK_ANSWER}",
            evidence=evidence,
        )
    evidence["detail"] = result.detail[:_MAX_EVIDENCE_CHARS]
    detail = f": {clip(result.detail, _MAX_EVIDENCE_CHARS)}" if result.detail else ""
    return CheckResult(
        name=name,
        kind="hook",
        status=result.status,
        reason=f"{where} {'passed' if result.status == 'pass' else 'failed'}{detail}",
        evidence=evidence,
    )


def decide(
    checks: list[CheckResult], on_inconclusive: Literal["fail", "pass", "retry", "pause"], retries_left: int = 0
) -> tuple[Verdict, str]:
    """One verdict from many checks: any failure fails; inconclusive follows the spec's policy.

    ``retry`` stays inconclusive while ``retries_left`` (the state machine then judges again after
    another interval), and fails once the retries are used up. ``pause`` stays inconclusive: the
    state machine asks a person to promote or roll back.
    """
    if not checks:
        return "fail", "no health check ran"
    failed = [c.reason for c in checks if c.status == "fail"]
    if failed:
        return "fail", "; ".join(failed)
    unsure = [c.reason for c in checks if c.status == "inconclusive"]
    if unsure:
        if on_inconclusive == "pass":
            return "pass", f"inconclusive, passed by policy on_inconclusive=pass: {'; '.join(unsure)}"
        if on_inconclusive == "pause":
            return "inconclusive", f"inconclusive, paused for a person (on_inconclusive=pause): {'; '.join(unsure)}"
        if on_inconclusive == "retry":
            if retries_left > 0:
                return "inconclusive", f"inconclusive, judging again after another interval: {'; '.join(unsure)}"
            return (
                "fail",
                f"inconclusive after every retry, failed by policy on_inconclusive=retry: {'; '.join(unsure)}",
            )
        return "fail", f"inconclusive, failed by policy on_inconclusive=fail: {'; '.join(unsure)}"
    return "pass", "all checks passed"


def run_checks(
    spec: HealthSpec,
    release: Release,
    *,
    targets: Targets,
    alarms: Alarms,
    deployment: Deployment | None = None,
    traffic: TrafficState | None = None,
    lambda_metrics: LambdaMetrics | None = None,
    prober: HttpProber | None = None,
    now: datetime | None = None,
    scale: TimeScale = UNSCALED,
    beanstalk: BeanstalkEnvironments | None = None,
) -> list[CheckResult]:
    """The checks that apply at this traffic step (``HealthSpec.checks_at``, see the module docstring)."""
    weight = traffic.weight if traffic is not None else 100
    runs = spec.checks_at(weight, last=traffic is None or traffic.complete)
    checks = []
    if "synthetic" in runs:
        checks += [synthetic_check(targets, _invoked(release, check), check) for check in spec.synthetic]
    if "alarms" in runs:
        checks.extend(alarm_checks(alarms, spec.alarms))
    if spec.environment is not None and "environment" in runs:
        if beanstalk is None:
            reason = "no Elastic Beanstalk adapter configured"
            checks.append(CheckResult(name="environment", kind="environment", status="fail", reason=reason))
        else:
            checks.extend(environment_checks(release, spec.environment, beanstalk, prober))
    if spec.metrics is not None and "metrics" in runs:
        for member in release.members:  # every function's new version judged against its own old one
            judged = metrics_checks(lambda_metrics, spec.metrics, member, traffic, now or utcnow(), scale=scale)
            checks += [_of_function(check, member) for check in judged] if release.companions else judged
    if spec.http is not None and "http" in runs:
        checks.append(http_check(prober, spec.http))
    if deployment is not None:
        if spec.pre_traffic is not None and "pre_traffic" in runs:
            checks.append(hook_check(targets, spec.pre_traffic, hook_payload("pre_traffic", deployment, release, 0)))
        if spec.post_traffic is not None and "post_traffic" in runs:
            payload = hook_payload("post_traffic", deployment, release, weight)
            checks.append(hook_check(targets, spec.post_traffic, payload))
    return checks


def _invoked(release: Release, check: SyntheticCheck) -> Release:
    """The release of the function a synthetic check invokes: the one it names, or the target's first."""
    if check.function is None:
        return release
    return release.member(FunctionRef.parse(check.function).name)


def _of_function(check: CheckResult, member: Release) -> CheckResult:
    """A check of one function of a target of several, named and reasoned with that function."""
    return check.model_copy(
        update={
            "name": f"{check.name}@{member.function_name}",
            "reason": f"{member.function_name}: {check.reason}",
            "evidence": {"function": member.function_name, **check.evidence},
        }
    )


def inconclusive_streak(step: EnvironmentStep) -> int:
    """Inconclusive verdicts in a row at the current traffic step (the count lives in the state)."""
    previous, traffic = step.health, step.traffic
    if previous is None or previous.status != "inconclusive" or traffic is None:
        return 0
    if previous.step is not None and previous.step != traffic.index + 1:
        return 0
    return previous.inconclusive_count


def evaluate_health(
    step: EnvironmentStep,
    *,
    targets: Targets,
    alarms: Alarms,
    ledger: Ledger,
    lambda_metrics: LambdaMetrics | None = None,
    prober: HttpProber | None = None,
    scale: TimeScale = UNSCALED,
    beanstalk: BeanstalkEnvironments | None = None,
) -> HealthVerdict:
    if step.release is None:
        raise TrafficShiftError("EvaluateHealth needs the release that Deploy produced")
    release, deployment, spec = step.release, step.deployment, step.environment.health
    traffic = step.traffic
    weight = traffic.weight if traffic else 0
    streak = inconclusive_streak(step)
    # The verdict matters more than its record: a ledger outage must not hold a failing version live (quiet).
    writes = StageWrites()
    with timed_stage(
        ledger, deployment.deployment_id, "EvaluateHealth", release.environment, quiet=True, writes=writes
    ) as detail:
        checks = run_checks(
            spec,
            release,
            targets=targets,
            alarms=alarms,
            deployment=deployment,
            traffic=traffic,
            lambda_metrics=lambda_metrics,
            prober=prober,
            scale=scale,
            beanstalk=beanstalk,
        )
        status, reason = decide(checks, spec.on_inconclusive, spec.max_inconclusive_retries - streak)
        if status == "inconclusive" and spec.on_inconclusive == "retry":
            reason = f"{reason} (retry {streak + 1} of {spec.max_inconclusive_retries})"
        verdict = HealthVerdict(
            status=status,
            reason=reason,
            weight=weight,
            checks=checks,
            evaluated_at=utcnow(),
            step=traffic.index + 1 if traffic else None,
            inconclusive_count=streak + 1 if status == "inconclusive" else 0,
            retry_after_seconds=max(traffic.wait_seconds if traffic else 0, MIN_RETRY_SECONDS)
            if status == "inconclusive"
            else 0,
        )
        # The event says "failed" like every failed stage; the verdict itself (ledger, state) says "fail".
        detail.update(verdict.model_dump(mode="json"), status=FAILED if status == "fail" else status)
        writes.environment = {"verdict": verdict.model_dump(mode="json")}
        if status == "pass" and traffic is not None and traffic.complete:
            # The environment's rollout is done: a later stop or failure leaves it live (the RollBack rule).
            writes.environment["status"] = EnvironmentStatus.LIVE
    names = {"pass": "HealthVerdictPassed", "fail": "HealthVerdictFailed", "inconclusive": "HealthVerdictInconclusive"}
    metrics.add_metric(name=names[status], unit=MetricUnit.Count, value=1)
    logger.info("health verdict", extra={"environment": release.environment, "verdict": status, "reason": reason})
    # The ledger has the whole verdict with its evidence; the state carries it within MAX_VERDICT_BYTES.
    return verdict.within()
