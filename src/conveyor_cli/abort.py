"""``conveyor abort ID`` / ``conveyor abort APP ENV``: stop a running rollout and restore its traffic.

One code path with a stop from the console: the CLI stops the deployment's execution (its error and cause name
who aborted and why), and the reconciler, which Step Functions' "Execution Status Change" event invokes for
every ABORTED execution, restores each environment the rollout moved, closes the ledger record ABORTED with that
cause, releases the locks and notifies once. The command then waits for the record to close, so it returns
with the traffic restored (or says it is not yet).
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.domain.closing import data_left_migrated
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import LedgerError
from conveyor.domain.outcome import UNFINISHED, Outcome
from conveyor.domain.records import DeploymentRecord
from pydantic import BaseModel

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud
from conveyor_cli.status import wait_for

ABORT_ERROR = "AbortedByOperator"
"""The error name a ``conveyor abort`` stops an execution with (it shows in the console, the ledger and the notice)."""


class Aborted(BaseModel):
    """What an abort did: the execution it stopped, and the deployment as the reconciler closed it."""

    deployment_id: str
    execution_arn: str
    by: str
    cause: str
    outcome: str
    restored: list[str]
    kept: list[str] = []
    """Environments the release had gone live in before the abort: they keep serving it (the reconciler restores
    only an environment it left mid-rollout)."""
    failure_reason: str | None = None
    data_left_migrated: list[str] = []
    """A migration that ran where traffic was restored, with no down-migration after it: a person must act."""

    def describe(self) -> str:
        if self.outcome == Outcome.ROLLBACK_FAILED:
            return f"{self.deployment_id} {self.outcome}: a person must act: {self.failure_reason}"
        moved = [f"traffic restored in {', '.join(self.restored)}"] if self.restored else []
        moved += [f"{', '.join(self.kept)} kept the release (live before the abort)"] if self.kept else []
        moved += self.data_left_migrated
        return f"{self.deployment_id} {self.outcome}: {self.cause}; {'; '.join(moved) or 'no traffic had moved'}"


def stop_cause(by: str, reason: str | None) -> str:
    return f"aborted by {by} with `conveyor abort`" + (f": {reason}" if reason else "")


def rollout_of(cloud: Cloud, app: str, environment: str) -> str:
    """The deployment rolling out in ``app``'s ``environment`` now: the holder of its target's lock."""
    lock = operations.lock_key(cloud, app, environment)
    held = operations.locks(cloud).get(lock)
    if held is None or not held.holder or not held.deployment_id or not held.holder.startswith("arn:"):
        raise CliError(f"nothing is rolling out in {app}/{environment}: its target's lock ({lock}) is free")
    return held.deployment_id


def open_record(cloud: Cloud, deployment_id: str) -> DeploymentRecord:
    try:
        record = operations.ledger(cloud).get(deployment_id)
    except LedgerError as exc:
        # The stop itself needs no ledger: say how to make it without Conveyor (the reconciler restores afterwards).
        raise CliError(
            f"cannot read the ledger ({exc}), so deployment {deployment_id}'s execution is not known here. To stop "
            "it anyway: find it with `aws stepfunctions list-executions --state-machine-arn "
            f"{cloud.outputs.state_machine_arn} --status-filter RUNNING` and run `aws stepfunctions stop-execution "
            "--execution-arn ARN`; the reconciler restores its traffic once the ledger answers"
        ) from exc
    if record is None:
        raise CliError(f"deployment {deployment_id} is not in the ledger (check the id with `conveyor history`)")
    if record.status not in UNFINISHED:
        raise CliError(f"deployment {deployment_id} has already ended {record.status.value}: nothing to abort")
    if not record.execution_arn:
        raise CliError(f"deployment {deployment_id} has no execution recorded: nothing to stop")
    return record


def abort(
    cloud: Cloud,
    *,
    deployment_id: str | None,
    app_environment: tuple[str, str] | None,
    by: str,
    reason: str | None,
    timeout: float,
) -> Aborted:
    """Stop the rollout (by id, or the one in an app's environment) and wait for the reconciler to restore it."""
    if deployment_id is None:
        if app_environment is None:
            raise CliError("abort needs a deployment id, or an app and an environment")
        deployment_id = rollout_of(cloud, *app_environment)
    record = open_record(cloud, deployment_id)
    execution = str(record.execution_arn)
    cause = stop_cause(by, reason)
    try:
        operations.executions(cloud).stop(execution, error=ABORT_ERROR, cause=cause)
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"could not stop execution {execution} of deployment {deployment_id}: {exc}") from exc
    try:
        closed = wait_for(
            operations.ledger(cloud),
            deployment_id,
            execution_status=lambda arn: operations.execution_state(cloud, arn).status,
            timeout=timeout,
            closed_only=True,
        )
    except TimeoutError as exc:
        raise CliError(
            f"execution {execution} was stopped, but the reconciler has not closed deployment {deployment_id} "
            f"within {timeout:.0f} s; check `conveyor status {deployment_id}`, or run `conveyor reconcile {execution}`"
        ) from exc
    restored = [
        name
        for name, env in closed.environments.items()
        if env.status is not None and env.status.value == "ROLLED_BACK" and env.rollback
    ]
    return Aborted(
        deployment_id=deployment_id,
        execution_arn=execution,
        by=by,
        cause=cause,
        outcome=closed.status.value,
        restored=restored,
        kept=[name for name, env in closed.environments.items() if env.status is EnvironmentStatus.LIVE],
        failure_reason=(closed.failure or {}).get("reason"),
        data_left_migrated=data_left_migrated(closed, restored),
    )


__all__ = ["ABORT_ERROR", "Aborted", "abort", "rollout_of", "stop_cause"]
