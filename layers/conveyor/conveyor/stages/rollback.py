"""RollBack: put an environment's alias back where it was before this deployment, in one call.

The alias returns to the previous version at 100% with its routing configuration cleared (or
is removed if it did not exist before), whatever failed: a health verdict or a crash in a
traffic step. If that call fails, a person must act: ``RollbackFailedError``.
"""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from conveyor.contracts import EnvironmentStep, Release, RollbackResult
from conveyor.errors import ApprovalRejectedError, ConveyorError, RollbackFailedError
from conveyor.ledger import Ledger, timed_stage, utcnow
from conveyor.observability import MetricUnit, logger, metrics
from conveyor.targets import Targets


def rollback_reason(step: EnvironmentStep) -> str:
    if step.failure is not None and step.failure.error == ApprovalRejectedError.__name__:
        return f"rolled back by a person while paused: {step.failure.message}"
    if step.failure is not None and step.failure.error == "States.Timeout" and step.health is not None:
        return (
            f"paused at {step.health.weight}% traffic on an inconclusive verdict and nobody decided within "
            f"{step.environment.approval.timeout_seconds} s: {step.health.reason}"
        )
    if step.health is not None and step.health.status != "pass":
        return f"health check failed at {step.health.weight}% traffic: {step.health.reason}"
    if step.failure is not None:
        return f"{step.failure.error}: {step.failure.message}"
    return "rollback requested"


def restore_served(release: Release, *, ledger: Ledger) -> None:
    """Say in the ledger what the restored alias serves: the release it served before, if that is known."""
    before = release.served_before
    if before is not None and before.serves(release.version_before):
        ledger.record_served(before.model_copy(update={"recorded_at": utcnow(), "recorded_by": "RollBack"}))
    else:
        ledger.forget_served(release.function_name, release.alias)


def roll_back(step: EnvironmentStep, *, targets: Targets, ledger: Ledger) -> RollbackResult:
    release, deployment = step.release, step.deployment
    if release is None:
        raise RollbackFailedError("RollBack needs the release that Deploy produced; the alias state is unknown")
    reason = rollback_reason(step)
    where = f"{release.function_name}:{release.alias}"
    with timed_stage(ledger, deployment.deployment_id, "RollBack", release.environment) as detail:
        started = time.perf_counter()
        try:
            if release.version_before is None:
                targets.delete_alias(release.function_name, release.alias)
            else:
                targets.route_alias(release.function_name, release.alias, release.version_before, None)
        except (ConveyorError, ClientError, BotoCoreError) as exc:
            target = release.version_before or "(no alias)"
            raise RollbackFailedError(
                f"could not restore {where} to {target}: {exc}. Run: aws lambda update-alias "
                f"--function-name {release.function_name} --name {release.alias} "
                f"--function-version {release.version_before} --routing-config AdditionalVersionWeights={{}}"
            ) from exc
        restore_served(release, ledger=ledger)
        result = RollbackResult(
            environment=release.environment,
            function_name=release.function_name,
            alias=release.alias,
            restored_version=release.version_before,
            rolled_back_from=release.version_after,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            reason=reason,
        )
        detail.update(result.model_dump(mode="json"))
    ledger.update_environment(
        deployment.deployment_id,
        release.environment,
        {"status": "ROLLED_BACK", "weight": 0, "rollback": result.model_dump(mode="json")},
    )
    metrics.add_metric(name="Rollbacks", unit=MetricUnit.Count, value=1)
    logger.warning("rolled back", extra={"environment": release.environment, "reason": reason})
    return result
