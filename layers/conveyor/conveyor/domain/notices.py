"""What a deployment tells the on-call when it ends, and the guarantee that it tells them at most once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from conveyor.domain.contracts import Deployment
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import LedgerError
from conveyor.domain.outcome import Outcome
from conveyor.domain.ports import NOTICE_IN_FLIGHT, Ledger
from conveyor.domain.records import DeploymentRecord
from conveyor.observability import logger

Severity = Literal["critical", "error", "warning", "info"]

NO_ENVIRONMENT = "none"
"""The ``environment`` attribute of a notice about no environment (a push refused before any was reached)."""

_SEVERITY = {
    Outcome.ROLLBACK_FAILED: "critical",
    Outcome.ROLLED_BACK: "error",
    Outcome.FAILED: "error",
    Outcome.TIMED_OUT: "error",
    Outcome.ABORTED: "warning",
    Outcome.SUPERSEDED: "info",
    Outcome.SKIPPED_DUPLICATE: "info",
    Outcome.SUCCEEDED: "info",
}


def notice_attributes(
    *,
    app: str,
    deployment_id: str,
    outcome: str,
    environment: str | None,
    severity: Severity | None = None,
    **extra: str,
) -> dict[str, str]:
    """The SNS message attributes of a notice, for subscription filter policies (docs/events.md).

    Every notice carries ``app``, ``environment`` (``none`` when about no environment), ``outcome`` (the
    deployment's, or ``AWAITING_APPROVAL``/``AWAITING_DECISION`` for a request to a person) and
    ``severity`` (``critical`` only when traffic could not be restored; by outcome otherwise).
    """
    try:
        default: Severity = _SEVERITY.get(Outcome(outcome), "warning")  # type: ignore[assignment]
    except ValueError:
        default = "warning"
    return {
        "app": app,
        "environment": environment or NO_ENVIRONMENT,
        "outcome": outcome,
        "severity": severity or default,
        "deployment_id": deployment_id,
        **extra,
    }


NOTICE_LEASE_SECONDS = 60.0
"""How long a claim on a notice holds before another try may take it over: a stage's whole timeout."""


def publish_once(
    ledger: Ledger,
    deployment_id: str,
    key: str,
    publish: Callable[[], str],
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Publish a notification at most once per ``key`` (an execution and a kind), across retries and redrives.

    Two tries at once (a redriven reconciler beside an operator's ``conveyor reconcile``) never both
    publish: the second waits for the first's publication, or for its lease to run out if it crashed.
    """
    pause = 0.2
    while True:
        now = clock()
        earlier = ledger.claim_notice(deployment_id, key, now=now, lease_seconds=NOTICE_LEASE_SECONDS)
        if earlier is None:
            break
        if earlier != NOTICE_IN_FLIGHT:
            logger.info("notification already published", extra={"message_id": earlier, "notice": key})
            return earlier
        sleep(pause)
        pause = min(pause * 2, 2.0)
    try:
        message_id = publish()
    except Exception:
        # The next try (a Retry, the reconciler) publishes at once instead of waiting the lease out.
        try:
            ledger.release_notice(deployment_id, key, lease_until=now + NOTICE_LEASE_SECONDS)
        except LedgerError as exc:
            logger.error("could not give back a notice claim", extra={"notice": key, "error": str(exc)})
        raise
    ledger.record_notice(deployment_id, key, message_id)
    return message_id


def never_served(rollback: Mapping[str, Any]) -> bool:
    """Whether a rollback moved nothing: the target still served only the version before (a failure before any
    traffic shifted), recorded as an empty ``rolled_back_from``. Records from before that field could be empty
    have it set. Not when the reconciler found the target already back (``found_restored``): traffic may have moved
    and been restored before the ledger could record it."""
    return "rolled_back_from" in rollback and rollback["rolled_back_from"] is None and not found_restored(rollback)


def found_restored(rollback: Mapping[str, Any]) -> bool:
    """Whether the reconciler found the target already serving only the version before (it moved nothing): whether
    the new version had taken traffic before is not known (RollBack may have restored it unrecorded)."""
    return bool(rollback.get("found_restored"))


def _environment_lines(record: DeploymentRecord) -> list[str]:
    if all(env.status is EnvironmentStatus.PENDING for env in record.environments.values()):
        return ["  no environment was touched: nothing was deployed"]
    lines = []
    for name, env in record.environments.items():
        if env.not_restored:
            lines += _incomplete_restore_lines(name, env, env.restore or {})
        else:
            lines += [_environment_line(name, env), *_companion_lines(env)]
    return lines


def _environment_line(name: str, env: EnvironmentEntry) -> str:
    """What happened to one environment's target (its first function, for a target of several)."""
    where = f"{env.function_name}:{env.alias}"
    before, after = env.version_before, env.version_after
    status = env.status
    beanstalk = (env.model_extra or {}).get("beanstalk")
    if isinstance(beanstalk, dict):
        where = f"Elastic Beanstalk {env.function_name}/{beanstalk.get('deployed_environment')}"
    if status is EnvironmentStatus.ROLLED_BACK and isinstance(beanstalk, dict):
        return _beanstalk_rolled_back_line(name, env, beanstalk)
    if status is EnvironmentStatus.ROLLED_BACK:
        rollback = env.rollback or {}
        if never_served(rollback):
            return f"  {name}: ROLLED BACK - {where} {_restored(rollback)}: version {after} never took traffic"
        if found_restored(rollback):
            return f"  {name}: ROLLED BACK - {where} {_restored(rollback)} (version {after} is not served)"
        restored = rollback.get("restored_version") or "(alias removed: it did not exist before)"
        return (
            f"  {name}: ROLLED BACK - {where} restored to version {restored} (was {after}) "
            f"in {rollback.get('duration_ms', '?')} ms, routing cleared"
        )
    if status is EnvironmentStatus.LIVE:
        return f"  {name}: LIVE - {where} now serves version {after} (was {before})"
    if status is EnvironmentStatus.SHIFTING:
        # Traffic moved and was not restored (only reachable when the rollback itself failed).
        weight = env.weight if env.weight is not None else "?"
        return (
            f"  {name}: SHIFTING - {where} may still send {weight}% of traffic to version "
            f"{after} (version before: {before}); it was NOT restored"
        )
    if status is EnvironmentStatus.PENDING:
        return f"  {name}: not reached - nothing deployed; {where} untouched"
    if status in (
        EnvironmentStatus.AWAITING_APPROVAL,
        EnvironmentStatus.APPROVED,
        EnvironmentStatus.REJECTED,
        EnvironmentStatus.APPROVAL_TIMED_OUT,
    ):
        return f"  {name}: {status} - nothing deployed; {where} untouched"
    if after is None:
        return f"  {name}: {status} - no new version was published; {where} untouched"
    return f"  {name}: {status} - {where} still serves version {before}; new version {after} unused"


def _beanstalk_rolled_back_line(name: str, env: EnvironmentEntry, beanstalk: dict[str, Any]) -> str:
    """How an Elastic Beanstalk production was put back: CNAMEs swapped back, or its version label restored."""
    after = env.version_after
    rollback = env.rollback or {}
    restored = rollback.get("restored_version") or env.version_before
    if found_restored(rollback):
        back = f"production found already serving version {restored} (nothing left to restore)"
    elif never_served(rollback):
        back = f"production stayed on version {restored}: {after} never took traffic"
    elif beanstalk.get("deployed_environment") != beanstalk.get("live_environment"):
        back = (
            f"production CNAME {beanstalk.get('cname_prefix')} swapped back to "
            f"{beanstalk.get('live_environment')} (version {restored}; {beanstalk.get('deployed_environment')} "
            f"keeps {after} for inspection)"
        )
    else:
        back = f"{beanstalk.get('live_environment')} updated back to version {restored} (was {after})"
    return f"  {name}: ROLLED BACK - {back} in {rollback.get('duration_ms', '?')} ms"


def _incomplete_restore_lines(name: str, env: EnvironmentEntry, restore: dict[str, Any]) -> list[str]:
    """A target of several functions whose rollback restored some of them: which ones, and which still need a
    person (with what the alias may still send)."""
    versions = {env.function_name: (env.version_before, env.version_after)} | {
        c.get("function_name"): (c.get("version_before"), c.get("version_after")) for c in env.companions or []
    }
    lines = [
        f"  {name}: RESTORED - {function}:{env.alias} back on version {version or '(alias removed)'}"
        for function, version in (restore.get("restored") or {}).items()
    ]
    share = f"{env.weight:g}% of its traffic" if isinstance(env.weight, int | float) and env.weight else "traffic"
    for function, error in (restore.get("failed") or {}).items():
        before, after = versions.get(function, (None, None))
        lines.append(
            f"  {name}: NOT RESTORED - {function}:{env.alias} may still send {share} to version {after} (version "
            f"before: {before}): {error}"
        )
    return lines


def _restored(rollback: Mapping[str, Any]) -> str:
    version = rollback.get("restored_version")
    if never_served(rollback):
        return f"stayed on version {version}" if version else "was never created"
    if found_restored(rollback):
        return f"found already on version {version}: nothing left to restore" if version else "found removed"
    if version:
        return f"restored to version {version} (was {rollback['rolled_back_from']})"
    return f"removed: it did not exist before (it served {rollback['rolled_back_from']})"


def _companion_lines(env: EnvironmentEntry) -> list[str]:
    """The other functions of a target of several: where each one's alias is, as its environment's line says."""
    alias = env.alias
    if env.status is EnvironmentStatus.ROLLED_BACK:
        return [
            f"    and {c['function_name']}:{alias} {_restored(c)}" for c in (env.rollback or {}).get("companions", [])
        ]
    companions = env.companions or []
    if env.status is EnvironmentStatus.LIVE:
        return [
            f"    and {c['function_name']}:{alias} now serves version {c['version_after']} (was {c['version_before']})"
            for c in companions
        ]
    if env.status is EnvironmentStatus.SHIFTING:
        return [
            f"    and {c['function_name']}:{alias} may still send traffic to version {c['version_after']} (version "
            f"before: {c['version_before']}); it was NOT restored"
            for c in companions
        ]
    return []


def _verdict_lines(record: DeploymentRecord) -> list[str]:
    lines = []
    for name, env in record.environments.items():
        verdict = env.verdict
        if env.status is not EnvironmentStatus.ROLLED_BACK or not verdict:
            continue
        lines.append(f"  {name} at {verdict.get('weight')}% traffic: {verdict.get('status', '').upper()}")
        lines.extend(f"    - [{check['status'].upper()}] {check['reason']}" for check in verdict.get("checks", []))
    return lines


UNKNOWN = "-"
"""The app and version the ledger records for a push whose key does not name them."""


def release_name(record: DeploymentRecord) -> str:
    """What a person calls the deployment's release: ``hello 1.4.2``; for a push whose key names no app and
    version, the key (``push artifacts/hello.zip``); for one with no key either, the deployment id."""
    if UNKNOWN not in (record.app, record.version):
        return f"{record.app} {record.version}"
    key = record.artifact.get("key")
    return f"push {key}" if key else f"deployment {record.deployment_id}"


def render_failure(
    record: DeploymentRecord, outcome: Outcome, stage: str, environment: str | None, reason: str
) -> tuple[str, str]:
    where = environment or "validation"
    subject = f"[Conveyor] {release_name(record)} {where}: {outcome.value}"
    artifact = record.artifact
    lines = [
        f"Deployment {record.deployment_id} of {release_name(record)}: {outcome.value}.",
        "",
        f"What failed: {stage}{f' in {environment}' if environment else ''}",
        f"Why: {reason}",
    ]
    verdicts = _verdict_lines(record)
    if verdicts:
        lines += ["", "Health evidence:", *verdicts]
    lines += ["", "What was done:", *_environment_lines(record)]
    if outcome is Outcome.ROLLBACK_FAILED:
        lines += [
            "",
            "ACTION REQUIRED: the environment could not be restored automatically (its alias, or its data: a failed "
            "down-migration); see 'Why' for what to run.",
        ]
    lines += [
        "",
        f"Artifact: s3://{artifact.get('bucket')}/{artifact.get('key')} (version {artifact.get('version_id')})",
        f"Execution: {record.execution_arn}",
        f"Attempt: {record.attempts}",
        f"Details: conveyor status {record.deployment_id}",
    ]
    return subject, "\n".join(lines)


def render_success(deployment: Deployment, record: DeploymentRecord) -> tuple[str, str]:
    subject = f"[Conveyor] {deployment.app} {deployment.version}: SUCCEEDED"
    lines = [f"Deployment {deployment.deployment_id} of {deployment.app} {deployment.version}: SUCCEEDED.", ""]
    lines += _environment_lines(record)
    lines += ["", f"Details: conveyor status {deployment.deployment_id}"]
    return subject, "\n".join(lines)
