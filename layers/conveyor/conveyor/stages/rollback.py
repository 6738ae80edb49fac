"""RollBack: put an environment's alias back where it was before this deployment, in one call.

Every function of the target (several, for ``target.functions``) has its alias back: the alias returns to
the previous version at 100% with its routing configuration cleared (or
is removed if it did not exist before), whatever failed: a health verdict or a crash in a
traffic step. If that call fails, a person must act: ``RollbackFailedError``.

Traffic first, records after: the restore depends on Lambda alone. The ledger is written once
the alias is safe, and a ledger that cannot be written then does not undo or fail the rollback:
the result says ``recorded: false`` and the reconciler (``conveyor.stages.reconcile``), which
runs when the execution ends, records what the ledger is missing.
"""

from __future__ import annotations

import time

from conveyor.domain import beanstalk as eb
from conveyor.domain.contracts import EnvironmentStep, Release, RollbackResult
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import (
    ApprovalRejectedError,
    ConveyorError,
    LedgerError,
    RestoreIncompleteError,
    RollbackFailedError,
    StatusMoveRefusedError,
)
from conveyor.domain.ports import BeanstalkEnvironments, Ledger, Targets
from conveyor.domain.restore import (
    Restored,
    manual_restore_command,
    restore_aliases,
    restore_served,
    rollback_result,
)
from conveyor.domain.timing import timed_stage
from conveyor.observability import MetricUnit, logger, metrics


def rollback_reason(step: EnvironmentStep) -> str:
    if step.failure is not None and step.failure.error == ApprovalRejectedError.__name__:
        return f"rolled back by a person while paused: {step.failure.message}"
    if step.failure is not None and step.failure.error == "States.Timeout" and step.health is not None:
        return (
            f"paused at {step.health.weight}% traffic on an inconclusive verdict and nobody decided within "
            f"{step.environment.approval.timeout_seconds} s: {step.health.reason}"
        )
    if step.failure is not None:
        # A crash caught on the way (a verdict that failed reaches RollBack without one): the crash is why,
        # not the verdict the state still carries from an earlier step.
        return f"{step.failure.error}: {step.failure.message}"
    if step.health is not None and step.health.status != "pass":
        return f"health check failed at {step.health.weight}% traffic: {step.health.reason}"
    return "rollback requested"


def _restore(release: Release, targets: Targets, beanstalk: BeanstalkEnvironments | None) -> dict[str, Restored]:
    """Production back where it was: every function's alias (Lambda), or the CNAMEs or version label (Elastic
    Beanstalk); what each target now serves, by function (application)."""
    if release.beanstalk is None:
        try:
            return restore_aliases(targets, release)
        except RestoreIncompleteError as exc:
            commands = "; ".join(manual_restore_command(release.member(name)) for name in exc.failed)
            raise RollbackFailedError(
                f"could not restore {', '.join(f'{name}:{release.alias}' for name in exc.failed)} to the version "
                f"each served before ({exc}). Run: {commands}"
            ) from exc
    if beanstalk is None:
        raise RollbackFailedError("RollBack: an elasticbeanstalk release needs the Elastic Beanstalk adapter")
    return {release.function_name: eb.restore_production(release, beanstalk)}


def _record_incomplete(
    step: EnvironmentStep, environment: str, restored: dict[str, str | None], failed: dict[str, str], ledger: Ledger
) -> None:
    """Say which functions of the target were restored and which were not, for the notice that asks a person to
    act (the environment keeps the status it had: its traffic is not all back), and under which lock token: the
    reconciler's later try leaves the target alone if another deployment held it since."""
    restore: dict[str, object] = {"restored": restored, "failed": failed}
    if step.lock is not None and step.lock.token is not None:
        restore["fence_token"] = step.lock.token
    try:
        ledger.update_environment(step.deployment.deployment_id, environment, {"restore": restore})
    except (LedgerError, StatusMoveRefusedError) as error:
        logger.error("the ledger could not record an incomplete restore", extra={"error": str(error)})


def roll_back(
    step: EnvironmentStep, *, targets: Targets, ledger: Ledger, beanstalk: BeanstalkEnvironments | None = None
) -> RollbackResult:
    release, deployment = step.release, step.deployment
    if release is None:
        raise RollbackFailedError("RollBack needs the release that Deploy produced; the alias state is unknown")
    reason = rollback_reason(step)
    # quiet: the stage event is written after the restore, and a ledger that refuses it fails nothing.
    with timed_stage(ledger, deployment.deployment_id, "RollBack", release.environment, quiet=True) as detail:
        started = time.perf_counter()
        try:
            restored = _restore(release, targets, beanstalk)
        except RollbackFailedError as exc:
            if isinstance(exc.__cause__, RestoreIncompleteError):
                failed = {name: str(error) for name, error in exc.__cause__.failed.items()}
                _record_incomplete(step, release.environment, exc.__cause__.restored, failed, ledger)
            raise
        except ConveyorError as exc:
            _record_incomplete(step, release.environment, {}, {release.function_name: str(exc)}, ledger)
            target = release.version_before or "(no alias)"
            raise RollbackFailedError(
                f"could not restore {release.function_name}:{release.alias} to {target}: {exc}. "
                f"Run: {manual_restore_command(release)}"
            ) from exc
        result = rollback_result(
            release, restored, duration_ms=round((time.perf_counter() - started) * 1000, 1), reason=reason
        )
        detail.update(result.model_dump(mode="json"))
    metrics.add_metric(name="Rollbacks", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RollbackDuration", unit=MetricUnit.Milliseconds, value=result.duration_ms)
    logger.warning("rolled back", extra={"environment": release.environment, "reason": reason})
    recorded = True
    try:
        for member in release.members:
            restore_served(member, ledger=ledger, recorded_by=f"RollBack of {deployment.deployment_id}")
        ledger.update_environment(
            deployment.deployment_id,
            release.environment,
            {"status": EnvironmentStatus.ROLLED_BACK, "weight": 0, "rollback": result.model_dump(mode="json")},
        )
    except (LedgerError, StatusMoveRefusedError) as exc:  # the alias is restored: that is what must not fail
        recorded = False
        logger.error("rolled back, but the ledger could not record it", extra={"error": str(exc)})
    return result if recorded else result.model_copy(update={"recorded": False})


__all__ = ["roll_back", "rollback_reason"]
