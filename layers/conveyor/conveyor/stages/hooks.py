"""RecordHook: a task-token hook's answer into the ledger, and a failed hook into the rollback branch.

The hook itself was invoked by the state machine (``conveyor.domain.hooks`` says why there and how it
reports); this stage sees only its answer or the state's error, never its task token. It records one stage
event per hook run (``Migrate``, ``RunStepHooks`` or ``MigrateDown``) with the hook's bounded output, and
raises so the state machine's ``Catch`` acts:

- a failed ``migrate`` or step hook raises ``HookFailedError``: the environment rolls back, and the notice
  names the hook;
- a failed down-migration raises ``DownMigrationFailedError``: the alias is already restored, but the data
  is not, so the deployment ends ROLLBACK_FAILED and a person is asked to act.
"""

from __future__ import annotations

from conveyor.domain.errors import DownMigrationFailedError, HookFailedError
from conveyor.domain.hooks import HOOK_STAGES, HookOutcome, HookRecordRequest, judge_hook
from conveyor.domain.ports import Ledger
from conveyor.domain.records import FAILED
from conveyor.domain.timing import timed_stage
from conveyor.observability import MetricUnit, logger, metrics


def record_hook(request: HookRecordRequest, *, ledger: Ledger) -> HookOutcome:
    """Record the hook's outcome; raise ``HookFailedError``/``DownMigrationFailedError`` when it failed."""
    invocation = request.call.invocation
    outcome = judge_hook(request)
    stage = HOOK_STAGES[invocation.phase]
    # The hook ran between its invocation and this record: the event spans both when the invocation time is known.
    with timed_stage(
        ledger, invocation.deployment_id, stage, invocation.environment, started_at=request.invoked_at
    ) as detail:
        # The event's status is the stage's ("succeeded" / "failed"); the hook's own word is its verdict.
        detail.update(
            outcome.model_dump(mode="json", exclude={"status"}),
            verdict=outcome.status,
            status="succeeded" if outcome.status == "pass" else FAILED,
        )
    metrics.add_metric(name="HookPassed" if outcome.status == "pass" else "HookFailed", unit=MetricUnit.Count, value=1)
    logger.info(
        "hook answered",
        extra={"hook": outcome.hook, "phase": outcome.phase, "verdict": outcome.status, "reason": outcome.reason},
    )
    if outcome.status == "fail":
        if invocation.phase == "migrate_down":
            raise DownMigrationFailedError(
                f"{outcome.reason}; the data may still be in the new release's shape: run the down-migration by hand"
            )
        raise HookFailedError(outcome.reason)
    return outcome


__all__ = ["record_hook"]
