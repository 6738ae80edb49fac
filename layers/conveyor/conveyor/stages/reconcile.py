"""Reconcile: whatever way an execution ended, no deployment is left split, open, locked or silent.

An EventBridge rule on Step Functions "Execution Status Change" (FAILED, TIMED_OUT, ABORTED) of
the deployment state machine invokes this stage. Step Functions ends an execution in ways no
``Catch`` sees: a stop from the console or the API (ABORTED), the state machine's timeout
(TIMED_OUT), ``States.DataLimitExceeded``, or a failure path that itself failed (the ledger or SNS
down while NotifyFailure ran). For the execution that owned the deployment it:

1. restores every environment whose traffic the deployment may have moved and not finished (the
   RollBack rule: an environment whose final verdict passed is LIVE and stays), after fencing
   the execution out: the reconciler takes the environment's lock from the ended execution (a new
   token), so a stage invocation still running after the stop cannot move traffic again, and the
   restore itself is conditioned on the alias revision it read;
2. closes the ledger record with the real cause (ABORTED, TIMED_OUT, or FAILED/ROLLED_BACK with the
   error), unless the state machine's own failure path already did;
3. releases the execution's locks and leaves the queues it waited in;
4. notifies once: the notice is claimed under the same key NotifyFailure uses, so the on-call gets
   one message whether the state machine's path or the reconciler sent it.

Every step is idempotent, so a retried reconcile (Lambda retries an asynchronous invocation that
failed, e.g. on a ledger outage) finishes the job instead of repeating it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from pydantic import ValidationError

from conveyor.domain.beanstalk import restore_production, still_serves
from conveyor.domain.closing import (
    close_approvals,
    close_unreached,
    data_left_migrated,
    emit_outcome_metrics,
    last_touched,
)
from conveyor.domain.contracts import (
    BeanstalkRelease,
    ExecutionEnded,
    Failure,
    Reconciliation,
    Release,
    RollbackResult,
)
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus, traffic_may_have_moved
from conveyor.domain.errors import (
    ArtifactLayoutError,
    ConfigurationError,
    DeploymentNotOwnedError,
    LedgerError,
    RestoreIncompleteError,
    RollbackFailedError,
    StatusMoveRefusedError,
)
from conveyor.domain.locks import release_recorded_locks
from conveyor.domain.notices import notice_attributes, publish_once, release_name, render_failure
from conveyor.domain.outcome import UNFINISHED, Outcome
from conveyor.domain.ports import (
    AliasState,
    BeanstalkEnvironments,
    Executions,
    Ledger,
    LockTable,
    Notifier,
    Targets,
)
from conveyor.domain.pushed_object import PushedObject, unclaimed_record
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.restore import (
    Restored,
    manual_restore_command,
    restore_aliases,
    restore_served,
    rollback_result,
    without_restore_commands,
)
from conveyor.domain.timing import utcnow
from conveyor.observability import MetricUnit, logger, metrics

ENDED_UNFINISHED = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
"""Execution statuses that may leave a deployment unfinished (SUCCEEDED always passed through Finalize)."""
FENCE_LEASE_SECONDS = 300
"""How long the reconciler holds an environment's lock while it restores the alias."""

_OUTCOMES = {"ABORTED": Outcome.ABORTED, "TIMED_OUT": Outcome.TIMED_OUT}


def reconciler_holder(execution_arn: str) -> str:
    """The lock holder name the reconciler uses while it restores an ended execution's environment."""
    return f"reconcile:{execution_arn}"


def deployment_of(ended: ExecutionEnded) -> tuple[str, PushedObject | None]:
    """The deployment id an execution worked on (from its input, the S3 event), and the pushed object."""
    try:
        document: Any = json.loads(ended.input or "{}")
        pushed = PushedObject.from_event(document if isinstance(document, dict) else {})
    except (ArtifactLayoutError, ValueError, ValidationError):
        return "d-" + ended.execution_arn.rsplit(":", 1)[-1], None
    return pushed.deployment_id, pushed


def cause_of(ended: ExecutionEnded) -> str:
    """One line on how the execution ended, for the ledger and the notification."""
    name = ended.name or ended.execution_arn.rsplit(":", 1)[-1]
    when = f" at {ended.stop_date.isoformat()}" if ended.stop_date else ""
    if ended.status == "ABORTED":
        how = f"was stopped (ABORTED){when}"
    elif ended.status == "TIMED_OUT":
        how = f"ran past the state machine's timeout (TIMED_OUT){when}"
    else:
        how = f"failed{when}"
    detail = ": ".join(part for part in (ended.error, ended.cause) if part)
    return f"execution {name} {how}{f' with {detail}' if detail else ''}"


def error_of(ended: ExecutionEnded) -> str:
    """The execution's error, or its status as one (``ExecutionAborted``, ``ExecutionTimedOut``)."""
    return ended.error or f"Execution{ended.status.title().replace('_', '')}"


def ended_how(ended: ExecutionEnded, caught: Failure | None = None) -> str:
    """What ended the deployment, as the notice's "What failed" names it (the execution, not a stage of it)."""
    if caught is not None:
        return f"the execution ({caught.error}, then NotifyFailure: {ended.error or 'FAILED'})"
    if ended.status == "ABORTED":
        return "the execution, stopped (ABORTED)"
    if ended.status == "TIMED_OUT":
        return "the execution, past the state machine's timeout (TIMED_OUT)"
    return f"the execution ({ended.error or 'FAILED'})"


def caught_failure(ended: ExecutionEnded, executions: Callable[[], Executions] | None) -> Failure | None:
    """The error the state machine caught and handed to NotifyFailure, when NotifyFailure then failed itself (a
    ledger outage): the deployment's own failure, which the execution's error (NotifyFailure's) hides. Read from
    NotifyFailure's input in the execution's history; None when it never ran or the history says nothing."""
    if ended.status != "FAILED" or executions is None:
        return None
    failure = (executions().state_input(ended.execution_arn, "NotifyFailure") or {}).get("failure")
    try:
        return Failure.model_validate(failure) if isinstance(failure, dict) else None
    except ValidationError:
        return None


def restore_environment(
    record: DeploymentRecord,
    name: str,
    entry: EnvironmentEntry,
    ended: ExecutionEnded,
    *,
    locks: LockTable,
    targets: Targets,
    ledger: Ledger,
    now: float,
    beanstalk: Callable[[], BeanstalkEnvironments] | None = None,
) -> str | None:
    """Restore one environment the ended execution left mid-rollout; None when done, else why it was left alone.

    An Elastic Beanstalk environment (its entry records ``beanstalk``, from Deploy) is restored as RollBack does:
    the CNAMEs swapped back, or the environment updated to the label it served before."""
    function, alias = entry.function_name, entry.alias
    after = entry.version_after
    if not function or not alias or not after:
        return "no version was published there: traffic never moved"
    target = entry.lock_target
    if not target:
        return "no lock target is recorded for it: the reconciler cannot fence it, a person must check it"
    set_before = (entry.restore or {}).get("set_anew")
    if set_before:
        return str(set_before)  # an earlier try found it set anew: never restored over that since
    target = str(target)
    fence = reconciler_holder(ended.execution_arn)
    token = _take_fence(record, name, ended, target, fence, locks=locks, now=now)
    if token is None:
        return _held_by_another(name, entry, target, locks)
    try:
        failed_under = (entry.restore or {}).get("fence_token")
        if entry.not_restored and isinstance(failed_under, int) and token > failed_under + 1:
            why = moved_since(
                record,
                name,
                entry,
                taken=token - failed_under - 1,
                targets=targets,
                ledger=ledger,
                beanstalk=beanstalk,
            )
            if why is not None:  # what serves is whoever moved it since, not ours to undo
                locks.release(target, fence)
                return set_anew(record, name, entry, why, ended=ended, ledger=ledger)
        release = recorded_release(name, entry)
        started = utcnow()
        restored = _restore_release(release, targets, beanstalk)
    except LedgerError:
        raise  # the fence stays: the retry takes it again with the same token
    except Exception as exc:
        # Not (all) restored (Lambda refused or failed): give the fence back so the retry, or a person, can act.
        locks.release(target, fence)
        raise RestoreRefusedError(token) from exc
    for member in release.members:
        restore_served(member, ledger=ledger, recorded_by=f"Reconcile of {record.deployment_id}")
    result = rollback_result(
        release,
        restored,
        duration_ms=round((utcnow() - started).total_seconds() * 1000, 1),
        reason=f"{cause_of(ended)}; the reconciler restored {name}",
    )
    # Recorded, then the fence given back: a ledger that refuses keeps it, so the retry reuses its token and does
    # not take its own restore for another's move.
    _record_restored(record, name, ended, result, moved=any(done.moved for done in restored.values()), ledger=ledger)
    locks.release(target, fence)
    metrics.add_metric(name="ReconcilerRollbacks", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RollbackDuration", unit=MetricUnit.Milliseconds, value=result.duration_ms)
    logger.warning("reconciler restored an environment", extra={"environment": name, "restored": restored})
    return None


def _record_restored(
    record: DeploymentRecord, name: str, ended: ExecutionEnded, result: RollbackResult, *, moved: bool, ledger: Ledger
) -> None:
    """The environment ROLLED_BACK by the reconciler (``moved``: traffic had to be moved back), written into the
    ended execution's attempt only."""
    try:
        ledger.update_environment(
            record.deployment_id,
            name,
            {
                "status": EnvironmentStatus.ROLLED_BACK,
                "weight": 0,
                # For DORA's time to restore: from the execution's end (the failure) to this restore.
                "rollback": _as_recorded(result, found_restored=not moved)
                | {
                    "failed_at": ended.stop_date.isoformat() if ended.stop_date else None,
                    "restored_at": utcnow().isoformat(),
                },
                "reconciled": True,
            },
            owner=ended.execution_arn,
        )
    except DeploymentNotOwnedError:
        logger.warning("restored, but a re-run claimed the deployment since: its entries are its own")


def _as_recorded(result: RollbackResult, *, found_restored: bool) -> dict[str, Any]:
    """The restore as the entry records it. Found already back (RollBack restored it while the ledger could not
    record it, or traffic never moved), the reconciler cannot tell which: it must not say traffic never moved."""
    recorded = result.model_dump(mode="json")
    if found_restored:
        for member in (recorded, *recorded["companions"]):
            member["found_restored"] = True
    return recorded


def restore_all(
    record: DeploymentRecord,
    ended: ExecutionEnded,
    *,
    locks: LockTable,
    targets: Targets,
    ledger: Ledger,
    now: float,
    beanstalk: Callable[[], BeanstalkEnvironments] | None,
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Restore every environment the execution left mid-rollout: those restored, those left alone (and why), and
    those whose restore failed (and what a person runs)."""
    restored, left_alone, not_restored = [], {}, {}
    for name, entry in record.environments.items():
        if not traffic_may_have_moved(entry):
            continue
        try:
            why = restore_environment(
                record, name, entry, ended, locks=locks, targets=targets, ledger=ledger, now=now, beanstalk=beanstalk
            )
        except LedgerError:
            raise  # nothing can be fenced, recorded or claimed: the retry (or a redrive) restores it
        except RestoreDeferredError as deferred:  # another holds the target: the retry (or a person) tries again
            not_restored[name] = str(deferred)
        except Exception as exc:  # Lambda or Elastic Beanstalk refused: the deployment is closed, a person told
            refused = exc if isinstance(exc, RestoreRefusedError) else None
            cause = exc.__cause__ if refused is not None and isinstance(exc.__cause__, Exception) else exc
            logger.error("the reconciler could not restore an environment", exc_info=cause, extra={"environment": name})
            not_restored[name] = restore_failure(
                record, name, entry, cause, ended, ledger=ledger, fence_token=refused.fence_token if refused else None
            )
        else:
            if why is None:
                restored.append(name)
            else:
                left_alone[name] = why
    return restored, left_alone, not_restored


def _held_by_another(name: str, entry: EnvironmentEntry, target: str, locks: LockTable) -> str:
    """Why an environment whose target another deployment holds is left alone. A restore that had failed is not:
    whoever holds it may move its traffic, or be refused before it does, so it is tried again once the lock is
    free (Lambda's retry, or `conveyor reconcile`), never under another's hold (``RestoreDeferredError``)."""
    holder = locks.get(target)
    by = holder.deployment_id if holder is not None and holder.holder else "another deployment"
    if entry.not_restored:
        raise RestoreDeferredError(f"deployment {by} holds {name}'s target now; the restore is tried again after")
    return f"deployment {by} holds {name}'s target now"


def _restore_release(
    release: Release, targets: Targets, beanstalk: Callable[[], BeanstalkEnvironments] | None
) -> dict[str, Restored]:
    """Put the release's target back: every function's alias, or the Elastic Beanstalk environment's CNAMEs."""
    if release.beanstalk is None:
        return restore_aliases(targets, release)
    if beanstalk is None:
        raise ConfigurationError("Reconcile: an elasticbeanstalk release needs the Elastic Beanstalk adapter")
    return {release.function_name: restore_production(release, beanstalk())}


def _take_fence(
    record: DeploymentRecord, name: str, ended: ExecutionEnded, target: str, fence: str, *, locks: LockTable, now: float
) -> int | None:
    """The reconciler's fence on ``target``: its token, taken (from the ended execution's own hold too) or held
    already by an earlier run of this reconcile that did not finish; None while another holds the lock."""
    current = locks.get(target)
    if current is not None and current.holder == fence:
        return current.token
    ours = current is not None and current.holder == ended.execution_arn
    return locks.try_acquire(
        target,
        holder=fence,
        deployment_id=record.deployment_id,
        app=record.app,
        environment=name,
        lease_seconds=FENCE_LEASE_SECONDS,
        now=now,
        stale=current if ours else None,
    )


def moved_since(
    record: DeploymentRecord,
    name: str,
    entry: EnvironmentEntry,
    *,
    taken: int,
    targets: Targets,
    ledger: Ledger,
    beanstalk: Callable[[], BeanstalkEnvironments] | None,
) -> str | None:
    """Why the target is no longer what a failed restore left (its lock was ``taken`` times since), or None when
    every function the restore failed for still serves this deployment's version: a holder that moved nothing
    (refused at a gate, a manual rollback Lambda refused too) leaves the restore to do. A split (a share to this
    deployment's version) is only ever this deployment's leftover once the lock is free; all of the traffic on its
    version may be a later release of the same code, so the ledger's record of what the alias serves decides that.
    An Elastic Beanstalk target is still as left while its environment runs the release and holds production."""
    since = f"its target's lock was taken {taken} time(s) since the restore failed"
    release = recorded_release(name, entry)
    if release.beanstalk is not None:
        if beanstalk is not None and still_serves(release, beanstalk()):
            return None
        return f"{since}, and production is no longer {release.version_after} as it was left: left as it serves"
    alias = str(entry.alias)
    for function in (entry.restore or {}).get("failed") or {}:
        fields = entry.of_function(function)
        before, after = fields.get("version_before"), str(fields.get("version_after"))
        state = targets.alias_state(function, alias)
        if state is not None and state.weights:
            left = state.version == before and after in state.weights
        else:
            served = ledger.served(function, alias)
            ours = served is not None and served.deployment_id == record.deployment_id
            left = ours and state is not None and state.version == after
        if not left:
            return f"{since}, and {function}:{alias} serves {_serving(state)} now, not what was left: left as it serves"
    return None


def _serving(state: AliasState | None) -> str:
    if state is None:
        return "no alias"
    shares = ", ".join(f"{weight:.0%} to version {version}" for version, weight in state.weights.items())
    return f"version {state.version}" + (f" ({shares})" if shares else "")


class RestoreRefusedError(Exception):
    """Lambda or Elastic Beanstalk refused (part of) a restore the reconciler made under fence ``fence_token``."""

    def __init__(self, fence_token: int) -> None:
        super().__init__(f"restore refused under fence token {fence_token}")
        self.fence_token = fence_token


class RestoreDeferredError(Exception):
    """A restore that had failed finds another deployment holding the target: it is tried again once that ends."""


def set_anew(
    record: DeploymentRecord, name: str, entry: EnvironmentEntry, why: str, *, ended: ExecutionEnded, ledger: Ledger
) -> str:
    """Leave an environment to whoever sets its traffic now; when a restore of it had failed, record that nothing
    is left to restore there (so nobody is asked to run a command that would undo what serves since)."""
    if entry.not_restored:
        with suppress(DeploymentNotOwnedError):  # a re-run's entries are its own
            ledger.update_environment(
                record.deployment_id,
                name,
                {"restore": (entry.restore or {}) | {"set_anew": why}},
                owner=ended.execution_arn,
            )
    return why


def restore_failure(
    record: DeploymentRecord,
    name: str,
    entry: EnvironmentEntry,
    exc: Exception,
    ended: ExecutionEnded,
    *,
    ledger: Ledger,
    fence_token: int | None,
) -> str:
    """Record which functions of the environment were not restored (the notice shows them), and under which fence
    token (a later try that finds the lock taken since first asks ``moved_since``), and say what a person runs:
    the AWS CLI command per function, or the reconciler again once the cause is fixed."""
    release = recorded_release(name, entry)
    if isinstance(exc, RestoreIncompleteError):
        restored, failed = exc.restored, {function: str(error) for function, error in exc.failed.items()}
    else:
        restored, failed = {}, {member.function_name: str(exc) for member in release.members}
    try:
        ledger.update_environment(
            record.deployment_id,
            name,
            {
                "restore": {"restored": restored, "failed": failed}
                | ({"fence_token": fence_token} if fence_token is not None else {})
            },
            owner=ended.execution_arn,
        )
    except (LedgerError, StatusMoveRefusedError, DeploymentNotOwnedError) as error:
        logger.error("the ledger could not record a failed restore", extra={"error": str(error)})
    commands = "; ".join(
        manual_restore_command(release.member(function) if release.beanstalk is None else release)
        for function in failed
    )
    where = ", ".join(f"{function}:{release.alias}" for function in failed)
    return (
        f"the reconciler could not restore {where} ({'; '.join(failed.values())}); it retries, or run: {commands} "
        f"(or `conveyor reconcile {ended.execution_arn}` once the cause is fixed)"
    )


def recorded_release(name: str, entry: EnvironmentEntry) -> Release:
    """The release Deploy recorded on the environment's entry (its companion functions too), to restore it."""

    def one(fields: dict[str, Any]) -> Release:
        return Release(
            environment=name,
            function_name=str(fields["function_name"]),
            alias=str(fields["alias"]),
            version_before=fields.get("version_before"),
            version_after=str(fields["version_after"]),
            code_sha256="",
            reused=False,
            served_before=fields.get("served_before"),  # what Deploy read from the ledger: the release to say again
        )

    first = one(entry.model_dump())
    companions = [one({"alias": entry.alias, **fields}) for fields in entry.companions or []]
    return first.model_copy(update={"beanstalk": _beanstalk_release(entry), "companions": companions})


def outcome_of(record: DeploymentRecord, ended: ExecutionEnded) -> Outcome:
    if ended.status in _OUTCOMES:
        return _OUTCOMES[ended.status]
    # A release taken out of an environment: rolled back there, or (its own rollback failed) set anew since.
    if any(
        env.status is EnvironmentStatus.ROLLED_BACK or (env.restore or {}).get("set_anew")
        for env in record.environments.values()
    ):
        return Outcome.ROLLED_BACK
    return Outcome.FAILED


def _beanstalk_release(entry: EnvironmentEntry) -> BeanstalkRelease | None:
    recorded = (entry.model_extra or {}).get("beanstalk")
    return BeanstalkRelease.model_validate(recorded) if isinstance(recorded, dict) else None


def reconcile(
    ended: ExecutionEnded,
    *,
    ledger: Ledger,
    locks: LockTable,
    targets: Targets,
    notifier: Notifier,
    now: float,
    beanstalk: Callable[[], BeanstalkEnvironments] | None = None,
    executions: Callable[[], Executions] | None = None,
    page_without_ledger: bool = True,
) -> Reconciliation:
    """Close the deployment of an execution that ended without finishing (see the module's docstring);
    ``executions`` reads the execution's history for the error NotifyFailure was given, when it failed itself.
    ``page_without_ledger``: tell the on-call when the ledger cannot be reached (not when an operator ran it, who
    reads the error)."""
    with _told_without_the_ledger(ended, notifier if page_without_ledger else None):
        base = {"execution_arn": ended.execution_arn, "status": ended.status}
        if ended.status not in ENDED_UNFINISHED:
            return Reconciliation(action="ignored", **base)
        deployment_id, pushed = deployment_of(ended)
        logger.set_correlation_id(deployment_id)
        record = ledger.get(deployment_id)
        if record is None:
            record = ledger.start(unclaimed_record(pushed, deployment_id, ended.execution_arn)) or ledger.get(
                deployment_id
            )
        if record is None or record.execution_arn not in (None, ended.execution_arn):
            # A duplicate or superseded execution of the object: the deployment is another execution's.
            return Reconciliation(action="not_owner", deployment_id=deployment_id, **base)

        restored, left_alone, not_restored = restore_all(
            record, ended, locks=locks, targets=targets, ledger=ledger, now=now, beanstalk=beanstalk
        )
        released = release_recorded_locks(record, holder=ended.execution_arn, started_at=ended.start_date, locks=locks)

        record = ledger.get(deployment_id) or record
        if record.execution_arn not in (None, ended.execution_arn):
            # A re-run claimed the deployment while this ran: nothing of this attempt is written into its record.
            told = _tell_taken_over(
                record,
                ended,
                restored=restored,
                left_alone=left_alone,
                not_restored=not_restored,
                ledger=ledger,
                notifier=notifier,
            )
            return Reconciliation(
                action="not_owner",
                deployment_id=deployment_id,
                restored=restored,
                left_alone=left_alone,
                released=released,
                message_id=told,
                **base,
            )
        close_approvals(ledger, record, ended.error or ended.status)
        close_unreached(ledger, record)
        outcome = Outcome.ROLLBACK_FAILED if not_restored else outcome_of(record, ended)
        caught = caught_failure(ended, executions) if record.status in UNFINISHED else None
        reason = closing_reason(
            record, ended, caught, restored=restored, left_alone=left_alone, not_restored=not_restored
        )
        closed = ledger.set_status(
            deployment_id,
            outcome,
            owner=ended.execution_arn,
            expected=UNFINISHED,
            fields={
                "failure": {
                    "error": caught.error if caught else error_of(ended),
                    "reason": reason,
                    "stage": ended_how(ended, caught),
                    "environment": last_touched(record),
                },
                # When the execution ended, not when this ran (a retry, or a redrive hours later).
                "finished_at": (ended.stop_date or utcnow()).isoformat(),
            },
        )
        # Closed ROLLBACK_FAILED before (a restore failed, a person was asked to act), and now restored, or set anew
        # by whoever held its target since, everywhere.
        restored_later = (
            not closed
            and record.status is Outcome.ROLLBACK_FAILED
            and bool(restored or left_alone)
            and not any(entry.not_restored for entry in record.environments.values())
            # left alone only as set anew: any other reason (no lock target, ...) still needs a person
            and all((record.environments[name].restore or {}).get("set_anew") for name in left_alone)
        )
        follow_up = None
        if restored_later:
            follow_up = (
                "traffic restored by the reconciler" if restored else "nothing left to restore, traffic set anew"
            )
            reason = reopened_reason(record, reason)
            ledger.set_status(
                deployment_id,
                outcome,
                owner=ended.execution_arn,
                expected={Outcome.ROLLBACK_FAILED},
                fields={"failure": (record.failure or {}) | {"reason": reason}},
            )
        record = ledger.get(deployment_id) or record
        message_id = None
        if record.status not in (Outcome.SUPERSEDED, Outcome.SUCCEEDED):
            message_id = _notify(record, ended, reason, follow_up, ledger=ledger, notifier=notifier)
        if closed:
            emit_outcome_metrics(record, record.status)
        logger.warning(
            "execution reconciled",
            extra={"status": ended.status, "restored": restored, "released": released, "closed": closed},
        )
        if not_restored:
            # Closed and told; failing the invocation has Lambda retry the restore, then keeps the event in the
            # dead-letter queue for `conveyor reconcile`.
            raise RollbackFailedError("; ".join(f"{name}: {why}" for name, why in not_restored.items()))
        return Reconciliation(
            action="reconciled",
            deployment_id=deployment_id,
            outcome=record.status,
            restored=restored,
            left_alone=left_alone,
            released=released,
            closed=closed,
            message_id=message_id,
            **base,
        )


def _tell_taken_over(
    record: DeploymentRecord,
    ended: ExecutionEnded,
    *,
    restored: list[str],
    left_alone: dict[str, str],
    not_restored: dict[str, str],
    ledger: Ledger,
    notifier: Notifier,
) -> str:
    """The notice of an attempt whose deployment a re-run claimed while the reconciler closed it: how it ended and
    what the reconciler did, never the new attempt's state (that one tells its own end)."""
    done = [f"Traffic restored in {', '.join(restored)}."] if restored else []
    done += [f"NOT restored in {name}: {why}" for name, why in not_restored.items()]
    done += [f"Left alone in {name}: {why}" for name, why in left_alone.items()]
    message = "\n".join(
        [
            f"Deployment {record.deployment_id} of {release_name(record)}: its {cause_of(ended)}.",
            f"A new execution, {record.execution_arn}, claimed the deployment meanwhile (a re-run): it carries the "
            "deployment on and its own end is told when it comes.",
            "",
            *(done or ["No environment had traffic to restore."]),
            "",
            f"Details: conveyor status {record.deployment_id}",
        ]
    )
    subject = f"[Conveyor] {release_name(record)}: execution {ended.status}, the deployment re-run by another"
    attributes = notice_attributes(
        app=record.app,
        deployment_id=record.deployment_id,
        outcome=ended.status,
        environment=None,
        severity="critical" if not_restored else "warning",
    )
    return publish_once(
        ledger,
        record.deployment_id,
        f"{ended.execution_arn}#failure",
        lambda: notifier.publish(subject, message, attributes),
    )


@contextmanager
def _told_without_the_ledger(ended: ExecutionEnded, notifier: Notifier | None) -> Iterator[None]:
    """A ledger that cannot be reached: nothing could be checked, restored or claimed. Tell a person anyway (by
    ``notifier``), then fail for Lambda's retries."""
    try:
        yield
    except LedgerError as exc:
        if notifier is not None:
            _tell_ledger_unreachable(ended, exc, notifier)
        raise


def _tell_ledger_unreachable(ended: ExecutionEnded, error: LedgerError, notifier: Notifier) -> None:
    """The notice the reconciler sends without its ledger: no claim is possible, so each try that fails sends it
    (on AWS, the first try and Lambda's 2 retries at most), rather than none."""
    deployment_id, pushed = deployment_of(ended)
    where = pushed.layout() if pushed else None
    app = where.app if where else "unknown"
    subject = f"[Conveyor] {app}: ledger unreachable, deployment {deployment_id} not reconciled"
    message = "\n".join(
        [
            f"Deployment {deployment_id} of {app}: its {cause_of(ended)}.",
            "",
            f"Conveyor could not reach its ledger ({error}), so the reconciler could not check, restore or close "
            "this deployment: an environment it was rolling out may still send part of its traffic to the new "
            "version. Lambda retries the reconciler (this notice may come once per try); what still fails waits in "
            "the reconcile dead-letter queue.",
            "",
            f"ACTION REQUIRED: once the ledger answers, run `conveyor reconcile {ended.execution_arn}` (or `conveyor "
            "reconcile` to redrive the queue); until then `aws lambda get-alias` shows what each alias serves.",
        ]
    )
    attributes = notice_attributes(
        app=app, deployment_id=deployment_id, outcome=ended.status, environment=None, severity="critical"
    )
    try:
        notifier.publish(subject, message, attributes)
    except Exception:  # the ledger's error is the one to raise; this one is logged
        logger.exception("could not publish that the ledger is unreachable")


def reopened_reason(record: DeploymentRecord, reason: str) -> str:
    """The reason of a deployment closed ROLLBACK_FAILED whose traffic the reconciler has now restored everywhere:
    the command the first reason told a person to run would now undo whatever serves since, so it is not kept."""
    errors = [
        str(error)
        for env in record.environments.values()
        for error in ((env.restore or {}).get("failed") or {}).values()
    ]
    earlier = "; ".join(dict.fromkeys(errors)) or (record.failure or {}).get("error") or "the restore"
    # The check that failed, when RollBack's own failure was the execution's error: the cause, not the rollback.
    verdicts = [e for e in record.events if e.stage == "EvaluateHealth" and e.failed and e.detail.get("reason")]
    if verdicts:
        reason = f"{verdicts[-1].environment}: {verdicts[-1].detail['reason']}; then {reason}"
    return without_restore_commands(
        f"{reason}; the first restore had failed ({earlier}): nothing is left for a person to do"
    )


def closing_reason(
    record: DeploymentRecord,
    ended: ExecutionEnded,
    caught: Failure | None,
    *,
    restored: list[str],
    left_alone: dict[str, str],
    not_restored: dict[str, str],
) -> str:
    """Why the deployment ended, and what the reconciler did about each environment, in one line."""
    reason = (
        f"{caught.error}: {caught.message}; then NotifyFailure failed ({cause_of(ended)})"
        if caught
        else cause_of(ended)
    )
    if restored:
        reason += f"; traffic restored in {', '.join(restored)}"
    if not_restored:
        reason += "; NOT restored: " + "; ".join(f"{name}: {why}" for name, why in not_restored.items())
    if left_alone:
        reason += "; left alone: " + "; ".join(f"{name}: {why}" for name, why in left_alone.items())
    for warning in data_left_migrated(record, restored):
        reason += f"; {warning}"
    return reason


def _notify(
    record: DeploymentRecord,
    ended: ExecutionEnded,
    reason: str,
    follow_up: str | None,
    *,
    ledger: Ledger,
    notifier: Notifier,
) -> str:
    """Publish how the deployment ended, once per execution (the key NotifyFailure uses too).

    When the state machine's own path already notified and the reconciler restored traffic afterwards (a rollback
    that had failed), or found it set anew by whoever held the target since, that is news (``follow_up``, its
    subject): one more notice, once.
    """
    failure = record.failure or {}
    stage = str(failure.get("stage") or ended_how(ended))
    environment = failure.get("environment") or last_touched(record)
    subject, message = render_failure(
        record, record.status, stage, str(environment) if environment else None, str(failure.get("reason") or reason)
    )
    attributes = notice_attributes(
        app=record.app,
        deployment_id=record.deployment_id,
        outcome=record.status.value,
        environment=str(environment) if environment else None,
    )
    message_id = publish_once(
        ledger,
        record.deployment_id,
        f"{ended.execution_arn}#failure",
        lambda: notifier.publish(subject, message, attributes),
    )
    if follow_up is not None:
        later = f"[Conveyor] {release_name(record)}: {follow_up}"
        text = f"{reason}\n\nDetails: conveyor status {record.deployment_id}"
        message_id = publish_once(
            ledger,
            record.deployment_id,
            f"{ended.execution_arn}#reconciled",
            lambda: notifier.publish(later, text, attributes | {"severity": "info"}),
        )
    return message_id


__all__ = ["ENDED_UNFINISHED", "deployment_of", "reconcile", "reconciler_holder"]
