"""EvaluateHealth: judge the new version after a traffic step, with the evidence for the verdict.

Checks: a synthetic invoke of the new version whose response must contain the spec's expected
result, and the state of the CloudWatch alarms the spec names. A missing alarm fails the check
(it is not "OK"); an alarm without data is inconclusive, and inconclusive follows the spec's
``on_inconclusive`` policy, which by default fails: no data is never a pass by default.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from conveyor.contracts import CheckResult, EnvironmentStep, HealthVerdict, Release, Verdict
from conveyor.errors import TrafficShiftError
from conveyor.ledger import Ledger, timed_stage, utcnow
from conveyor.monitoring import Alarms
from conveyor.observability import MetricUnit, logger, metrics
from conveyor.pipeline import HealthSpec, SyntheticCheck
from conveyor.targets import Targets

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
    except (ClientError, BotoCoreError) as exc:
        return CheckResult(
            name="synthetic", kind="synthetic", status="fail", reason=f"invoking {where} failed: {exc}", evidence={}
        )
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


def decide(checks: list[CheckResult], on_inconclusive: Literal["fail", "pass"]) -> tuple[Verdict, str]:
    """One verdict from many checks: any failure fails; inconclusive follows the spec's policy."""
    if not checks:
        return "fail", "no health check ran"
    failed = [c.reason for c in checks if c.status == "fail"]
    if failed:
        return "fail", "; ".join(failed)
    unsure = [c.reason for c in checks if c.status == "inconclusive"]
    if unsure:
        if on_inconclusive == "pass":
            return "pass", f"inconclusive, passed by policy on_inconclusive=pass: {'; '.join(unsure)}"
        return "fail", f"inconclusive, failed by policy on_inconclusive=fail: {'; '.join(unsure)}"
    return "pass", "all checks passed"


def run_checks(spec: HealthSpec, release: Release, *, targets: Targets, alarms: Alarms) -> list[CheckResult]:
    checks = []
    if spec.synthetic is not None:
        checks.append(synthetic_check(targets, release, spec.synthetic))
    if spec.alarms:
        checks.extend(alarm_checks(alarms, spec.alarms))
    return checks


def evaluate_health(step: EnvironmentStep, *, targets: Targets, alarms: Alarms, ledger: Ledger) -> HealthVerdict:
    if step.release is None:
        raise TrafficShiftError("EvaluateHealth needs the release that Deploy produced")
    release, deployment = step.release, step.deployment
    weight = step.traffic.weight if step.traffic else 0
    with timed_stage(ledger, deployment.deployment_id, "EvaluateHealth", release.environment) as detail:
        checks = run_checks(step.environment.health, release, targets=targets, alarms=alarms)
        status, reason = decide(checks, step.environment.health.on_inconclusive)
        verdict = HealthVerdict(status=status, reason=reason, weight=weight, checks=checks, evaluated_at=utcnow())
        detail.update(verdict.model_dump(mode="json"))
    ledger.update_environment(
        deployment.deployment_id, release.environment, {"verdict": verdict.model_dump(mode="json")}
    )
    metrics.add_metric(
        name="HealthVerdictFailed" if status == "fail" else "HealthVerdictPassed", unit=MetricUnit.Count, value=1
    )
    logger.info("health verdict", extra={"environment": release.environment, "verdict": status, "reason": reason})
    return verdict
