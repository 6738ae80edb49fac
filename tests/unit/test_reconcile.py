"""Reconcile: an execution that ended FAILED, TIMED_OUT or ABORTED leaves nothing split, open, locked or silent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from conveyor.domain.closing import close_approvals, close_unreached
from conveyor.domain.contracts import EnvironmentStep, ExecutionEnded, HealthVerdict, LockGrant, ServedRelease
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import (
    AliasChangedError,
    LedgerError,
    LockLostError,
    NotificationError,
    RollbackFailedError,
    TrafficShiftError,
)
from conveyor.domain.notices import publish_once
from conveyor.domain.outcome import Outcome
from conveyor.domain.pushed_object import PushedObject
from conveyor.domain.timing import utcnow
from conveyor.stages.lock import check_fence
from conveyor.stages.reconcile import reconcile
from conveyor.stages.rollback import roll_back
from conveyor.stages.traffic import shift_traffic

from tests.fakes import FakeExecutions, FakeLedger, FakeLocks, FakeNotifier, FakeTargets, stage_event
from tests.unit.conftest import build_step, started_ledger

NOW = 1_700_000_000.0
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:deployments:unit"
TARGET = "arn:aws:lambda:us-east-1:123456789012:function:hello-staging"
S3_EVENT = {
    "source": "aws.s3",
    "detail-type": "Object Created",
    "detail": {
        "bucket": {"name": "bucket"},
        "object": {"key": "artifacts/hello/1.0.0.zip", "version-id": "v1"},
        "requester": "arn:aws:iam::123456789012:user/ci",
    },
}


def ended(status: str = "ABORTED", *, execution: str = EXECUTION, **fields: Any) -> ExecutionEnded:
    return ExecutionEnded.model_validate(
        {
            "executionArn": execution,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:deployments",
            "name": execution.rsplit(":", 1)[-1],
            "status": status,
            "startDate": 1_700_000_000_000,
            "stopDate": 1_700_000_100_000,
            "input": json.dumps(S3_EVENT),
            **fields,
        }
    )


class World:
    """A deployment of ``hello`` 1.0.0 stopped mid-canary in staging: alias split 80/20, lock held."""

    def __init__(self) -> None:
        self.step = build_step()
        self.deployment_id = self.step.deployment.deployment_id
        self.targets = FakeTargets()
        self.function = self.targets.add("hello-staging", alias="live", version="1")
        self.function.versions["2"] = ("new-sha", {})
        self.ledger = started_ledger(self.step)
        # The id the reconciler derives from the execution input must be the deployment's.
        record = self.ledger.records.pop(self.deployment_id)
        self.deployment_id = record["deployment_id"] = _pushed_id()
        self.ledger.records[self.deployment_id] = record
        self.locks = FakeLocks()
        self.notifier = FakeNotifier()
        token = self.locks.try_acquire(
            TARGET,
            holder=EXECUTION,
            deployment_id=self.deployment_id,
            app="hello",
            environment="staging",
            lease_seconds=3600,
            now=NOW,
        )
        self.token = token
        self.function.aliases["live"] = ("1", {"2": 0.2})
        self.ledger.update_environment(
            self.deployment_id,
            "staging",
            {
                "status": "SHIFTING",
                "weight": 20,
                "function_name": "hello-staging",
                "alias": "live",
                "version_before": "1",
                "version_after": "2",
                "lock_target": TARGET,
            },
        )

    def reconcile(self, status: str = "ABORTED", options: dict[str, Any] | None = None, **fields: Any) -> Any:
        """Reconcile the execution's end (``fields``: of the status change), with the stage's ``options``."""
        return reconcile(
            ended(status, **fields),
            ledger=self.ledger,
            locks=self.locks,
            targets=self.targets,
            notifier=self.notifier,
            now=NOW + 100,
            **(options or {}),
        )

    def record(self) -> Any:
        return self.ledger.get(self.deployment_id)


def _pushed_id() -> str:
    return PushedObject.from_event(S3_EVENT).deployment_id


def test_a_stop_mid_canary_restores_the_alias_closes_the_record_releases_the_lock_and_notifies_once() -> None:
    world = World()

    result = world.reconcile("ABORTED", cause="stopped from the console")

    assert world.function.aliases["live"] == ("1", {})
    record = world.record()
    assert record.status is Outcome.ABORTED
    assert "was stopped (ABORTED)" in record.failure["reason"]
    assert "stopped from the console" in record.failure["reason"]
    assert record.environments["staging"].status == "ROLLED_BACK"
    assert record.environments["staging"].rollback["restored_version"] == "1"
    assert world.locks.get(TARGET).holder is None
    assert (result.restored, result.closed) == (["staging"], True)
    assert len(world.notifier.published) == 1
    subject, message, attributes = world.notifier.published[0]
    assert "ABORTED" in subject
    assert "restored to version 1" in message
    assert attributes["outcome"] == "ABORTED"


def test_a_stop_while_a_paused_rollout_waits_for_a_person_restores_the_alias() -> None:
    # Given a canary paused at 20% on an inconclusive verdict, waiting for a decision
    world = World()
    world.ledger.update_environment(
        world.deployment_id,
        "staging",
        {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {"kind": "decision", "task_token": "t"}},
    )
    # When the execution is stopped while it waits
    result = world.reconcile()
    # Then the traffic it had moved is restored
    assert result.restored == ["staging"]
    assert world.function.aliases["live"] == ("1", {})


def test_a_stop_while_waiting_for_approval_before_deploying_moves_nothing() -> None:
    world = World()
    world.function.aliases["live"] = ("1", {})
    world.ledger.update_environment(
        world.deployment_id,
        "staging",
        {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {"kind": "approval", "task_token": "t"}},
    )
    assert world.reconcile().restored == []
    # and the gate no longer reads as waiting for people: nothing was deployed there, and nothing will be
    entry = world.record().environments["staging"]
    assert (entry.status, "task_token" in entry.approval) == (EnvironmentStatus.NOT_DEPLOYED, False)


def test_a_stop_while_queued_for_the_lock_closes_the_environment_as_not_deployed() -> None:
    # Given a deployment that never reached staging's lock: it waited in its queue when it was aborted
    world = World()
    world.function.aliases["live"] = ("1", {})
    world.ledger.records[world.deployment_id]["environments"] = {"staging": {"status": "QUEUED"}}
    # When the reconciler closes it, Then staging says nothing was deployed, not that it still waits in line
    assert world.reconcile().restored == []
    assert world.record().environments["staging"].status is EnvironmentStatus.NOT_DEPLOYED
    assert world.function.aliases["live"] == ("1", {})


def test_closing_an_ended_attempt_leaves_a_new_attempts_entries_alone() -> None:
    # Given the reconciler read an aborted attempt's record (staging QUEUED), and then a re-run claimed the
    # deployment and queued for staging's lock itself
    world = World()
    world.ledger.records[world.deployment_id]["environments"] = {
        "staging": {"status": "AWAITING_APPROVAL", "approval": {"kind": "approval", "task_token": "old"}},
        "production": {"status": "QUEUED"},
    }
    read = world.record()
    world.ledger.records[world.deployment_id]["execution_arn"] = "arn:aws:states:us-east-1:1:execution:d:rerun"
    # When the ended attempt's closing writes run on what it read
    assert close_approvals(world.ledger, read, "States.Timeout") is None
    assert close_unreached(world.ledger, read) == []
    # Then the new attempt's entries are as it wrote them
    entries = world.record().environments
    assert (entries["staging"].status, entries["staging"].approval) == (
        EnvironmentStatus.AWAITING_APPROVAL,
        {"kind": "approval", "task_token": "old"},
    )
    assert entries["production"].status is EnvironmentStatus.QUEUED


def test_a_stop_after_a_migration_restores_traffic_and_says_the_data_was_not_migrated_back() -> None:
    # Given the schema migration ran in staging before the canary, and the execution was stopped mid-canary
    world = World()
    world.ledger.record_event(stage_event(world.deployment_id, "Migrate", hook="schema", phase="migrate"))
    # When the reconciler restores the alias
    assert world.reconcile().restored == ["staging"]
    # Then the record and the notice say the down-migration did not run, and that a person must run it
    reason = world.record().failure["reason"]
    assert "the migration 'schema' ran in staging and no down-migration did" in reason
    assert "a person must run the down-migration" in world.notifier.published[0][1]


def test_reconciling_twice_changes_nothing_and_notifies_nobody_again() -> None:
    world = World()
    world.reconcile()
    revisions = dict(world.function.alias_revisions)

    again = world.reconcile()

    assert again.restored == []
    assert again.closed is False
    assert world.function.alias_revisions == revisions
    assert len(world.notifier.published) == 1


def test_a_timed_out_execution_is_recorded_timed_out() -> None:
    world = World()
    world.reconcile("TIMED_OUT")
    assert world.record().status is Outcome.TIMED_OUT
    assert world.function.aliases["live"] == ("1", {})


def test_an_environment_whose_rollout_finished_stays_live() -> None:
    world = World()
    world.ledger.update_environment(world.deployment_id, "staging", {"status": "LIVE", "weight": 100})
    world.function.aliases["live"] = ("2", {})

    result = world.reconcile()

    assert world.function.aliases["live"] == ("2", {})
    assert result.restored == []
    assert world.record().status is Outcome.ABORTED


def test_a_target_another_deployment_took_over_is_left_alone() -> None:
    world = World()
    world.locks.locks[TARGET] = world.locks.get(TARGET).model_copy(
        update={"holder": "arn:other", "deployment_id": "d-other", "token": 9}
    )
    world.function.aliases["live"] = ("3", {})

    result = world.reconcile()

    assert world.function.aliases["live"] == ("3", {})
    assert "d-other" in result.left_alone["staging"]
    assert world.locks.get(TARGET).holder == "arn:other"


def test_an_execution_that_did_not_own_the_deployment_touches_nothing() -> None:
    world = World()
    result = world.reconcile(execution="arn:aws:states:us-east-1:123456789012:execution:deployments:duplicate")
    assert result.action == "not_owner"
    assert world.function.aliases["live"] == ("1", {"2": 0.2})
    assert world.notifier.published == []


def test_a_deployment_the_state_machine_already_closed_is_not_notified_twice() -> None:
    world = World()
    world.ledger.update_environment(world.deployment_id, "staging", {"status": "ROLLED_BACK", "weight": 0})
    world.ledger.finish(world.deployment_id, Outcome.ROLLED_BACK, {"error": "x", "reason": "health check failed"})
    world.locks.release(TARGET, EXECUTION)
    publish_once(world.ledger, world.deployment_id, f"{EXECUTION}#failure", lambda: "message-earlier")

    result = world.reconcile("FAILED", error="DeploymentRolledBackError")

    assert result.closed is False
    assert result.message_id == "message-earlier"
    assert world.notifier.published == []
    assert world.record().status is Outcome.ROLLED_BACK


def test_a_try_beside_one_that_is_publishing_waits_for_its_publication_and_does_not_publish() -> None:
    # Given one try that claimed the failure notice and is publishing it
    ledger, key = FakeLedger(), f"{EXECUTION}#failure"
    assert ledger.claim_notice("d-unit", key, now=1000.0, lease_seconds=60) is None
    sent: list[str] = []

    # When a second try comes while it publishes (its wait is when the first one records)
    def first_try_finishes(_: float) -> None:
        ledger.record_notice("d-unit", key, "message-first")

    message_id = publish_once(
        ledger,
        "d-unit",
        key,
        lambda: sent.append("second") or "message-second",
        clock=lambda: 1001.0,
        sleep=first_try_finishes,
    )

    # Then it reports the first publication and publishes nothing
    assert message_id == "message-first"
    assert sent == []


def test_a_notice_whose_claimant_crashed_is_published_once_its_lease_runs_out() -> None:
    ledger, key = FakeLedger(), f"{EXECUTION}#failure"
    assert ledger.claim_notice("d-unit", key, now=1000.0, lease_seconds=60) is None  # and then it crashed
    clock = [1001.0]

    def wait(seconds: float) -> None:
        clock[0] += seconds

    message_id = publish_once(ledger, "d-unit", key, lambda: "message-late", clock=lambda: clock[0], sleep=wait)

    assert message_id == "message-late"
    assert clock[0] > 1060.0
    assert ledger.claim_notice("d-unit", key, now=clock[0], lease_seconds=60) == "message-late"


def test_a_notification_that_failed_is_sent_by_the_next_try_at_once() -> None:
    # The failed try gives its claim on the notice back, so the next try does not wait out the lease
    world = World()

    class DownNotifier(FakeNotifier):
        def publish(self, subject: str, message: str, attributes: dict[str, str]) -> str:
            raise NotificationError("SNS unavailable")

    with pytest.raises(NotificationError):
        reconcile(
            ended(), ledger=world.ledger, locks=world.locks, targets=world.targets, notifier=DownNotifier(), now=NOW
        )
    assert world.function.aliases["live"] == ("1", {})  # traffic first
    assert (world.deployment_id, f"{EXECUTION}#failure") not in world.ledger.notices  # the claim was given back

    world.reconcile()

    assert len(world.notifier.published) == 1


def test_an_execution_input_that_is_not_an_s3_event_still_ends_recorded_and_notified() -> None:
    world = World()
    result = world.reconcile(input='{"not": "an event"}')
    assert result.deployment_id == "d-unit"
    assert world.ledger.get("d-unit").status is Outcome.ABORTED
    assert len(world.notifier.published) == 1


def test_a_deployment_no_stage_recorded_is_recorded_under_the_app_and_version_its_key_names() -> None:
    world = World()
    world.ledger.records.clear()  # stopped before ClaimDeployment wrote anything

    result = world.reconcile()

    record = world.ledger.get(result.deployment_id)
    assert (record.app, record.version, record.status) == ("hello", "1.0.0", Outcome.ABORTED)
    assert record.pushed_by == "arn:aws:iam::123456789012:user/ci"


class RerunLedger(FakeLedger):
    """A ledger on which a console re-run of the same object claims the deployment (a new attempt) right after the
    reconciler read it, as a stop followed at once by a "New execution" does."""

    rerun = "arn:aws:states:us-east-1:123456789012:execution:deployments:rerun"
    claimed = False

    def update_environment(self, deployment_id: str, environment: str, fields: dict[str, Any], **cas: Any) -> None:
        if not self.claimed:
            self.claimed = True
            pushed = PushedObject.from_event(S3_EVENT)
            assert self.claim(pushed.ledger_record(self.rerun, "hello", "1.0.0"), replaceable=(), stale_owner=EXECUTION)
            super().update_environment(deployment_id, "staging", {"status": "PENDING"})
        super().update_environment(deployment_id, environment, fields, **cas)


def test_a_rerun_claiming_the_deployment_mid_reconcile_keeps_its_new_attempt_and_the_stop_is_told_as_itself() -> None:
    # Given an execution stopped mid-canary, and a re-run of it claiming the deployment while the reconciler works
    world = World()
    ledger = RerunLedger()
    ledger.records = world.ledger.records
    world.ledger = ledger

    # When the reconciler runs
    result = world.reconcile("ABORTED", cause="stopped from the console")

    # Then the alias is restored (the re-run deploys anew from there) and the lock given back for the re-run
    assert world.function.aliases["live"] == ("1", {})
    assert world.locks.get(TARGET).holder is None
    # And nothing of the stopped attempt is written into the new one: it is the re-run's, unclosed, untouched
    record = world.record()
    assert record.execution_arn == RerunLedger.rerun
    assert record.status is Outcome.IN_PROGRESS
    assert record.environments["staging"].status is EnvironmentStatus.PENDING
    assert result.action == "not_owner"
    assert result.restored == ["staging"]
    # And the one notice says what happened to the stopped attempt, not the new attempt's state
    ((subject, message, attributes),) = world.notifier.published
    assert subject == "[Conveyor] hello 1.0.0: execution ABORTED, the deployment re-run by another"
    assert "was stopped (ABORTED)" in message
    assert f"A new execution, {RerunLedger.rerun}, claimed the deployment meanwhile" in message
    assert "Traffic restored in staging." in message
    assert attributes["outcome"] == "ABORTED"


class DownLedger(FakeLedger):
    """A ledger whose writes fail (a DynamoDB outage) while ``down``."""

    down = True

    def _check(self) -> None:
        if self.down:
            raise LedgerError("ledger update_environment failed: ServiceUnavailable")

    def record_event(self, event: Any, writes: Any = None) -> None:
        self._check()
        super().record_event(event, writes)

    def update_environment(self, deployment_id: str, environment: str, fields: dict[str, Any], **cas: Any) -> None:
        self._check()
        super().update_environment(deployment_id, environment, fields, **cas)


def test_rollback_restores_traffic_while_the_ledger_is_down_and_the_reconciler_records_it_later() -> None:
    world = World()
    ledger = DownLedger()
    ledger.records = world.ledger.records
    verdict = HealthVerdict(status="fail", reason="errors 30%", weight=20, checks=[], evaluated_at=utcnow())
    step = build_step(health=verdict)

    result = roll_back(step, targets=world.targets, ledger=ledger)

    assert world.function.aliases["live"] == ("1", {})
    assert result.recorded is False
    ledger.down = False
    world.ledger = ledger
    world.reconcile("FAILED", error="States.TaskFailed", cause="NotifyFailure: ledger unavailable")
    record = world.record()
    assert record.status is Outcome.ROLLED_BACK
    assert record.environments["staging"].status == "ROLLED_BACK"
    ((_, message, _),) = world.notifier.published
    # The reconciler found the alias already back: version 2 had served 20%, so it must not say it never did.
    assert "never took traffic" not in message
    assert "staging: ROLLED BACK - hello-staging:live found already on version 1: nothing left to restore" in message


class UnreachableLedger(FakeLedger):
    """A ledger that answers nothing (a DynamoDB outage): reads fail too."""

    def get(self, deployment_id: str) -> Any:
        raise LedgerError("ledger get failed: InternalServerError")


def test_a_ledger_outage_still_tells_a_person_that_traffic_may_be_split_and_fails_for_the_retry() -> None:
    # Given an execution stopped mid-canary while the ledger is unreachable
    world = World()
    world.ledger = UnreachableLedger()

    # When the reconciler runs, it fails (Lambda retries it, then keeps the event for `conveyor reconcile`)...
    with pytest.raises(LedgerError):
        world.reconcile("ABORTED")

    # ...and a person is told, without the ledger: what ended, that traffic may be split, and what to run
    ((subject, message, attributes),) = world.notifier.published
    assert subject == f"[Conveyor] hello: ledger unreachable, deployment {world.deployment_id} not reconciled"
    assert "was stopped (ABORTED)" in message
    assert "may still send part of its traffic" in message
    assert f"conveyor reconcile {EXECUTION}" in message
    assert attributes["severity"] == "critical"
    assert world.function.aliases["live"] == ("1", {"2": 0.2})


def test_when_notify_failure_failed_too_the_deployment_is_closed_with_the_error_it_was_given() -> None:
    # Given ShiftTraffic failed on a ledger outage (caught, handed to NotifyFailure), and NotifyFailure then failed
    world = World()
    executions = FakeExecutions()
    cause = json.dumps({"errorType": "LedgerError", "errorMessage": "ledger update_environment failed: Unavailable"})
    executions.entered[(EXECUTION, "NotifyFailure")] = {"failure": {"Error": "LedgerError", "Cause": cause}}

    # When the reconciler closes the execution, which failed with NotifyFailure's own error
    world.reconcile("FAILED", {"executions": lambda: executions}, error="NotificationError", cause="SNS unavailable")

    # Then the record and the notice name the deployment's own failure first, and NotifyFailure's after it
    failure = world.record().failure
    assert failure["error"] == "LedgerError"
    assert failure["reason"].startswith(
        "LedgerError: ledger update_environment failed: Unavailable; then NotifyFailure failed (execution unit failed"
    )
    ((_, message, _),) = world.notifier.published
    assert "What failed: the execution (LedgerError, then NotifyFailure: NotificationError) in staging" in message


def test_an_operators_reconcile_during_a_ledger_outage_pages_nobody() -> None:
    # Given the ledger unreachable, and an operator running `conveyor reconcile` (who reads the error it answers)
    world = World()
    world.ledger = UnreachableLedger()

    with pytest.raises(LedgerError):
        world.reconcile("ABORTED", {"page_without_ledger": False})
    assert world.notifier.published == []


def _promoting_step() -> EnvironmentStep:
    """The state of the stopped execution's ShiftTraffic, about to move the alias (all at once, to 100%)."""
    return build_step(traffic=None)


def _with_lock(world: World, step: EnvironmentStep) -> EnvironmentStep:
    grant = LockGrant(
        status="acquired",
        app="hello",
        environment="staging",
        target=TARGET,
        holder=EXECUTION,
        token=world.token,
        lease_seconds=3600,
    )
    return step.model_copy(update={"lock": grant})


def test_a_shift_traffic_still_running_after_the_stop_is_fenced_out_by_the_reconciler() -> None:
    world = World()
    step = _with_lock(world, _promoting_step())

    def reconciled_then_fence() -> None:
        world.reconcile()  # the reconciler runs between ShiftTraffic's read of the alias and its fence check
        check_fence(step, locks=world.locks, now=NOW)

    with pytest.raises(LockLostError):
        shift_traffic(step, targets=world.targets, ledger=world.ledger, fence=reconciled_then_fence)
    assert world.function.aliases["live"] == ("1", {})


def test_a_shift_traffic_past_its_fence_cannot_write_after_the_restore() -> None:
    world = World()
    step = _with_lock(world, _promoting_step())

    def fence_then_reconciled() -> None:
        check_fence(step, locks=world.locks, now=NOW)  # still holds the lock: the fence passes...
        world.reconcile()  # ...and the reconciler restores before ShiftTraffic writes

    with pytest.raises(AliasChangedError):
        shift_traffic(step, targets=world.targets, ledger=world.ledger, fence=fence_then_reconciled)
    assert world.function.aliases["live"] == ("1", {})


def test_only_unfinished_endings_are_reconciled() -> None:
    world = World()
    result = world.reconcile("SUCCEEDED")
    assert result.action == "ignored"
    assert world.function.aliases["live"] == ("1", {"2": 0.2})


def test_status_change_dates_are_epoch_millis() -> None:
    assert ended().stop_date == datetime(2023, 11, 14, 22, 15, tzinfo=UTC)


def test_a_restore_that_fails_closes_the_deployment_rollback_failed_tells_a_person_and_fails_for_the_retry() -> None:
    # Given an execution stopped mid-canary, and Lambda refusing the alias update
    world = World()
    world.targets.fail_route = TrafficShiftError("UpdateAlias failed: ServiceException")

    # When the reconciler runs, it fails (so Lambda retries it, then keeps the event in the dead-letter queue)...
    with pytest.raises(RollbackFailedError, match="UpdateAlias failed"):
        world.reconcile("ABORTED", cause="stopped from the console")

    # ...having closed the deployment ROLLBACK_FAILED, given the lock back, and told a person what to run
    record = world.record()
    assert record.status is Outcome.ROLLBACK_FAILED
    assert record.environments["staging"].restore == {
        "restored": {},
        "failed": {"hello-staging": "UpdateAlias failed: ServiceException"},
        "fence_token": world.token + 1,
    }
    assert world.locks.get(TARGET).holder is None
    assert world.function.aliases["live"] == ("1", {"2": 0.2})
    ((subject, message, attributes),) = world.notifier.published
    assert "ROLLBACK_FAILED" in subject
    assert attributes["severity"] == "critical"
    assert "What failed: the execution, stopped (ABORTED) in staging" in message
    assert "NOT RESTORED - hello-staging:live may still send 20% of its traffic to version 2" in message
    assert "aws lambda update-alias --function-name hello-staging --name live --function-version 1" in message
    assert f"conveyor reconcile {EXECUTION}" in message

    # When the retry runs with Lambda answering again, it restores the alias and says so, once
    world.targets.fail_route = None
    assert world.reconcile().restored == ["staging"]
    assert world.function.aliases["live"] == ("1", {})
    record = world.record()
    assert record.environments["staging"].status == "ROLLED_BACK"
    # And the deployment no longer asks a person to act: it is closed as the stop closes it, and the command the
    # first notice gave (which would now undo whatever serves since) is gone from its reason
    assert record.status is Outcome.ABORTED
    assert "aws lambda update-alias" not in record.failure["reason"]
    assert record.failure["reason"].endswith(
        "traffic restored in staging; the first restore had failed (UpdateAlias failed: ServiceException): nothing "
        "is left for a person to do"
    )
    assert [subject for subject, _, _ in world.notifier.published][1:] == [
        "[Conveyor] hello 1.0.0: traffic restored by the reconciler"
    ]


def _failed_restore_then_held_by(world: World, holder: str, *, release: bool) -> None:
    """A restore Lambda refused (the deployment closed ROLLBACK_FAILED, the lock given back), then ``holder`` taking
    the target's lock (and giving it back, with ``release``)."""
    world.targets.fail_route = TrafficShiftError("UpdateAlias failed: ServiceException")
    with pytest.raises(RollbackFailedError):
        world.reconcile()
    world.targets.fail_route = None
    world.locks.try_acquire(
        TARGET, holder=holder, deployment_id="d-later", app="hello", environment="staging", lease_seconds=3600, now=NOW
    )
    if release:
        world.locks.release(TARGET, holder)


LATER = "arn:aws:states:us-east-1:123456789012:execution:deployments:later"


def test_a_retry_after_a_failed_restore_never_undoes_what_a_later_deployment_set() -> None:
    # Given a failed restore, then a later deployment that took the lock and put its own version live
    world = World()
    _failed_restore_then_held_by(world, LATER, release=True)
    world.function.aliases["live"] = ("3", {})

    # When the reconciler's retry runs (or a person's `conveyor reconcile`), and again
    result = world.reconcile()
    again = world.reconcile()

    # Then it leaves the later release serving, both times, and the deployment stops asking a person to act
    assert world.function.aliases["live"] == ("3", {})
    assert (result.restored, again.restored) == ([], [])
    assert "hello-staging:live serves version 3 now, not what was left" in result.left_alone["staging"]
    assert world.record().environments["staging"].not_restored == []
    assert world.record().status is Outcome.ABORTED
    assert "aws lambda update-alias" not in world.record().failure["reason"]
    assert world.record().failure["reason"].endswith("nothing is left for a person to do")
    assert [subject for subject, _, _ in world.notifier.published][1:] == [
        "[Conveyor] hello 1.0.0: nothing left to restore, traffic set anew"
    ]


def test_a_holder_since_that_moved_nothing_leaves_the_restore_to_do() -> None:
    # Given a failed restore, then a holder that took the lock and moved nothing (refused at a gate, or a manual
    # rollback Lambda refused too): the alias still splits as the stopped deployment left it
    world = World()
    _failed_restore_then_held_by(world, "manual-rollback:alice:1", release=True)

    # When the reconciler tries again
    result = world.reconcile()

    # Then it restores the split, and says so
    assert result.restored == ["staging"]
    assert world.function.aliases["live"] == ("1", {})
    assert world.record().status is Outcome.ABORTED
    assert [subject for subject, _, _ in world.notifier.published][1:] == [
        "[Conveyor] hello 1.0.0: traffic restored by the reconciler"
    ]


@pytest.mark.parametrize("served_by", ["d-later", None], ids=["a-later-release-of-the-same-code", "still-ours"])
def test_all_of_the_traffic_on_the_stopped_version_is_restored_only_while_the_ledger_says_it_is_ours(
    served_by: str | None,
) -> None:
    # Given a stop with the alias all on the new version 2 (its last step), a restore Lambda refused, then a holder
    # since; the ledger says the alias serves this deployment's release, or a later one's (the same code: version 2)
    world = World()
    world.function.aliases["live"] = ("2", {})
    release = world.step.release
    assert release is not None

    def served_by_deployment(deployment_id: str) -> None:
        deployment = world.step.deployment.model_copy(update={"deployment_id": deployment_id})
        world.ledger.record_served(ServedRelease.of(deployment, release, recorded_by="ShiftTraffic"))

    served_by_deployment(world.deployment_id)
    _failed_restore_then_held_by(world, LATER, release=True)
    if served_by is not None:
        served_by_deployment(served_by)

    # When the reconciler tries again
    result = world.reconcile()

    # Then it restores only what is still its own
    if served_by is None:
        assert result.restored == ["staging"]
        assert world.function.aliases["live"] == ("1", {})
    else:
        assert result.restored == []
        assert world.function.aliases["live"] == ("2", {})


def test_a_retry_while_another_holds_the_target_moves_nothing_and_keeps_asking_for_a_person() -> None:
    # Given a failed restore, and a later deployment holding the target's lock now (it may move traffic or not)
    world = World()
    _failed_restore_then_held_by(world, LATER, release=False)

    # When the reconciler tries again, it fails again (so Lambda retries it, then keeps it for `conveyor reconcile`)
    with pytest.raises(RollbackFailedError, match="deployment d-later holds staging's target now"):
        world.reconcile()

    # Then it leaves the target to its holder, and the deployment stays ROLLBACK_FAILED: nothing is settled yet
    assert world.function.aliases["live"] == ("1", {"2": 0.2})
    assert world.record().status is Outcome.ROLLBACK_FAILED
    assert world.record().environments["staging"].not_restored == ["hello-staging"]
    assert len(world.notifier.published) == 1
    assert world.locks.get(TARGET).holder == LATER


def test_a_reclosed_deployment_drops_the_command_the_failed_rollbacks_own_error_named() -> None:
    # Given an execution that failed with RollBack's own error, which tells a person what to run
    world = World()
    command = "aws lambda update-alias --function-name hello-staging --name live --function-version 1"
    cause = json.dumps({"errorMessage": f"could not restore hello-staging:live to 1 (refused). Run: {command}"})
    world.targets.fail_route = TrafficShiftError("UpdateAlias failed: ServiceException")
    with pytest.raises(RollbackFailedError):
        world.reconcile("FAILED", error="RollbackFailedError", cause=cause)
    assert command in world.record().failure["reason"]

    # When a later try restores the target
    world.targets.fail_route = None
    world.reconcile("FAILED", error="RollbackFailedError", cause=cause)

    # Then the reason no longer names the command: run now, it would undo whatever serves since
    assert world.record().environments["staging"].status == "ROLLED_BACK"
    assert "aws lambda update-alias" not in world.record().failure["reason"]
    assert world.record().failure["reason"].endswith("nothing is left for a person to do")


def test_a_failed_restore_left_alone_for_a_reason_that_needs_a_person_is_not_reclosed_as_settled() -> None:
    # Given a ROLLBACK_FAILED deployment whose entry names no lock target (so nothing can be fenced), and whose
    # failed restore the ledger never recorded
    world = World()
    world.targets.fail_route = TrafficShiftError("UpdateAlias failed: ServiceException")
    with pytest.raises(RollbackFailedError):
        world.reconcile()
    world.targets.fail_route = None
    entry = world.ledger.records[world.deployment_id]["environments"]["staging"]
    entry.pop("lock_target")
    entry.pop("restore")

    # When the reconciler tries again, it cannot act there, and says a person must
    result = world.reconcile()
    assert "a person must check it" in result.left_alone["staging"]

    # Then the deployment is still ROLLBACK_FAILED, and nobody is told there is nothing left to do
    assert world.record().status is Outcome.ROLLBACK_FAILED
    assert len(world.notifier.published) == 1


def test_a_restore_whose_record_the_ledger_refused_keeps_its_fence_and_is_not_taken_for_anothers_move() -> None:
    # Given a restore Lambda refused, then a retry that restored the alias but whose record the ledger refused
    world = World()
    world.targets.fail_route = TrafficShiftError("UpdateAlias failed: ServiceException")
    with pytest.raises(RollbackFailedError):
        world.reconcile()
    world.targets.fail_route = None
    ledger = DownLedger()
    ledger.records = world.ledger.records
    world.ledger = ledger
    with pytest.raises(LedgerError):
        world.reconcile()
    assert world.function.aliases["live"] == ("1", {})

    # When the ledger answers and the reconciler tries again
    ledger.down = False
    result = world.reconcile()

    # Then it finds its own restore done (the fence it kept), records it, and re-closes the deployment as restored
    assert result.restored == ["staging"]
    assert world.record().environments["staging"].status == "ROLLED_BACK"
    assert world.record().status is Outcome.ABORTED


def test_a_reconciler_restore_records_when_the_execution_failed_and_when_traffic_was_restored() -> None:
    # Given an execution stopped mid-canary (stopDate 2023-11-14T22:15Z in the status change event)
    world = World()

    # When the reconciler restores it
    world.reconcile("ABORTED", cause="stopped from the console")

    # Then the rollback entry carries both ends of DORA's time to restore
    rollback = world.record().environments["staging"].rollback
    assert rollback["failed_at"] == "2023-11-14T22:15:00+00:00"
    # And the deployment ended when its execution did, not when the reconciler ran
    assert world.record().finished_at == datetime(2023, 11, 14, 22, 15, tzinfo=UTC)
    assert datetime.fromisoformat(rollback["restored_at"]) >= datetime.fromisoformat(rollback["failed_at"])


@pytest.mark.parametrize(
    ("text", "left"),
    [
        (
            "could not restore x:live to 1 (boom). Run: aws lambda update-alias --function-name x --name live "
            "--function-version 1 --routing-config AdditionalVersionWeights={}; then NotifyFailure failed",
            "could not restore x:live to 1 (boom).; then NotifyFailure failed",
        ),
        (
            "two. Run: aws lambda update-alias --function-name x --name live --function-version 1; "
            "aws lambda delete-alias --function-name y --name live",
            "two.",
        ),
        (
            '{"errorMessage": "could not. Run: aws lambda delete-alias --function-name y --name live"}',
            '{"errorMessage": "could not."}',
        ),
    ],
)
def test_a_restore_command_is_cut_from_a_reason_and_nothing_after_it(text: str, left: str) -> None:
    from conveyor.domain.restore import without_restore_commands

    assert without_restore_commands(text) == left


def test_a_failed_rollout_whose_target_was_set_anew_since_is_reclosed_rolled_back_not_failed() -> None:
    # Given an execution that failed (its own rollback refused), the reconciler's restore refused too, then a
    # later release live on the target
    world = World()
    world.targets.fail_route = TrafficShiftError("UpdateAlias failed: ServiceException")
    with pytest.raises(RollbackFailedError):
        world.reconcile("FAILED", error="RollbackFailedError", cause="could not restore")
    world.targets.fail_route = None
    world.locks.try_acquire(
        TARGET, holder=LATER, deployment_id="d-later", app="hello", environment="staging", lease_seconds=60, now=NOW
    )
    world.locks.release(TARGET, LATER)
    world.function.aliases["live"] = ("3", {})

    # When the reconciler tries again, it leaves the later release serving
    world.reconcile("FAILED", error="RollbackFailedError", cause="could not restore")

    # Then the deployment reads as its release taken out (ROLLED_BACK, exit 4), not as failed before traffic moved
    assert world.record().status is Outcome.ROLLED_BACK


def test_a_failed_rollback_reclosed_later_still_names_the_check_that_failed() -> None:
    # Given a health check that failed in staging, then RollBack's own failure (the execution's error)
    world = World()
    world.ledger.record_event(
        stage_event(
            world.deployment_id,
            "EvaluateHealth",
            status="failed",
            reason='hello-staging:2 answered wrongly: status is "degraded"',
        )
    )
    world.targets.fail_route = TrafficShiftError("UpdateAlias failed: ServiceException")
    with pytest.raises(RollbackFailedError):
        world.reconcile("FAILED", error="RollbackFailedError", cause="could not restore")

    # When a later try restores the target
    world.targets.fail_route = None
    world.reconcile("FAILED", error="RollbackFailedError", cause="could not restore")

    # Then the re-closed reason starts with the check that failed, not only the rollback's failure
    assert world.record().status is Outcome.ROLLED_BACK
    assert (
        world.record()
        .failure["reason"]
        .startswith('staging: hello-staging:2 answered wrongly: status is "degraded"; then')
    )
