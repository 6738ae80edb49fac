"""Every way an execution ends is handled, end to end: a stop from the API, a ledger outage on the failure path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conveyor.domain.locks import waiter_key
from conveyor.domain.outcome import Outcome

from conveyor_cli import operations
from conveyor_cli.abort import abort
from conveyor_cli.context import CliError
from conveyor_cli.reconcile import reconcile_executions
from conveyor_cli.rollback import manual_rollback
from conveyor_cli.sample import EXAMPLES, alias_versions

from .conftest import Stage

pytestmark = pytest.mark.e2e

LONG_CANARY = {"type": "canary", "weight": 20, "bake_seconds": 86_400}  # 864 s at the suite's time scale


def until(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
    return value


def deploy_baseline(stage: Stage, pipeline: Callable[..., None], version: str) -> None:
    # Low versions, let through by allow_downgrade: what this module leaves live must not refuse later modules'.
    pipeline(allow_downgrade=True)
    deployed = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", version))["deployment_id"])
    assert deployed.record.status is Outcome.SUCCEEDED


def test_a_stop_during_a_canary_bake_restores_the_alias_closes_the_record_and_notifies_once(
    stage: Stage, pipeline: Callable[..., None]
) -> None:
    # Given a live release, and a canary of the next one baking at 20% in staging
    deploy_baseline(stage, pipeline, "0.40.0")
    live = alias_versions(stage.cloud, stage.targets.functions)["staging"]["version"]
    pipeline(allow_downgrade=True, environments__0__strategy=LONG_CANARY)
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.40.1"))
    until(lambda: alias_versions(stage.cloud, stage.targets.functions)["staging"]["routing"], "the canary split")
    record = operations.ledger(stage.cloud).get(pushed["deployment_id"])
    assert record is not None
    assert record.execution_arn is not None

    # When an operator stops the execution, as from the console
    stage.cloud.client("stepfunctions").stop_execution(executionArn=record.execution_arn, cause="operator stop")

    # Then the execution is ABORTED, and the reconciler restores the alias and closes the record with that cause
    assert operations.execution_state(stage.cloud, record.execution_arn).status == "ABORTED"
    ledger = operations.ledger(stage.cloud)
    closed = until(
        lambda: (r := ledger.get(pushed["deployment_id"])) and r.status is Outcome.ABORTED and r,
        "the ledger record closed ABORTED",
    )
    assert alias_versions(stage.cloud, stage.targets.functions)["staging"] == {"version": live, "routing": {}}
    assert closed.environments["staging"].status == "ROLLED_BACK"
    assert "operator stop" in closed.failure["reason"]
    # And the lock is free, so the on-call can roll back by hand at once: it takes the lock (a held one is
    # refused as locked) and finds the alias already on the release before, nothing to move
    assert stage.locks_of({pushed["deployment_id"]}) == []
    with pytest.raises(CliError, match=f"already serves version {live} of hello-staging:live"):
        manual_rollback(stage.cloud, "hello", "staging", live)
    # And exactly one notification says what happened
    ours = stage.await_notifications(pushed["deployment_id"], "the notification")
    assert len(ours) == 1
    assert "ABORTED" in ours[0]["subject"]
    # And reconciling the same execution again (the operator's redrive) changes nothing and notifies nobody
    again = reconcile_executions(stage.cloud, [record.execution_arn])
    assert again[0]["restored"] == []
    assert again[0]["closed"] is False
    assert stage.notifications_naming(pushed["deployment_id"]) == []


def test_an_abort_whose_restore_lambda_refuses_ends_rollback_failed_tells_a_person_and_is_restored_later(
    stage: Stage, pipeline: Callable[..., None], faults: Callable[[list[dict[str, Any]]], None]
) -> None:
    # Given a live release, and a canary of the next one baking at 20% in staging
    deploy_baseline(stage, pipeline, "0.42.0")
    live = alias_versions(stage.cloud, stage.targets.functions)["staging"]["version"]
    pipeline(allow_downgrade=True, environments__0__strategy=LONG_CANARY)
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.42.1"))
    split = until(lambda: alias_versions(stage.cloud, stage.targets.functions)["staging"]["routing"], "the split")
    function = stage.targets.functions["staging"]

    # When Lambda refuses every alias update, and an operator aborts the rollout
    faults([{"id": "alias-down", "operation": "UpdateAlias", "function": function, "times": 1_000_000}])
    try:
        aborted = abort(
            stage.cloud, deployment_id=pushed["deployment_id"], app_environment=None, by="ops", reason=None, timeout=120
        )

        # Then the abort returns at once with the deployment ROLLBACK_FAILED (not a wait, not ABORTED), the alias is
        # still split, and the on-call is told what is left and what to run
        assert aborted.outcome == "ROLLBACK_FAILED"
        assert f"aws lambda update-alias --function-name {function}" in aborted.describe()
        assert alias_versions(stage.cloud, stage.targets.functions)["staging"]["routing"] == split
        (notice,) = stage.await_notifications(pushed["deployment_id"], "the ROLLBACK_FAILED notice")
        assert "ROLLBACK_FAILED" in notice["subject"]
        assert (
            f"NOT RESTORED - {function}:live may still send {LONG_CANARY['weight']}% of its traffic"
            in notice["message"]
        )
    finally:
        faults([])

    # And once Lambda answers, the reconciler (its retry, or the operator's redrive) restores it and says so
    reconcile_executions(stage.cloud, [aborted.execution_arn])
    assert alias_versions(stage.cloud, stage.targets.functions)["staging"] == {"version": live, "routing": {}}
    restored = until(
        lambda: [n for n in stage.notifications_naming(pushed["deployment_id"]) if "restored by" in n["subject"]],
        "the notice that traffic was restored",
    )
    assert len(restored) == 1
    # And the deployment no longer asks a person to act (its first notice's command would now undo what serves)
    closed = operations.ledger(stage.cloud).get(pushed["deployment_id"])
    assert closed is not None
    assert closed.status is Outcome.ABORTED
    assert "nothing is left for a person to do" in closed.failure["reason"]


def test_a_reconcile_after_a_later_release_went_live_leaves_that_release_serving(
    stage: Stage, pipeline: Callable[..., None], faults: Callable[[list[dict[str, Any]]], None]
) -> None:
    # Given a canary baking at 20% in staging, aborted while Lambda refuses every alias update: the deployment is
    # ROLLBACK_FAILED, and Lambda's retries of the reconciler fail too, until its event waits in the dead-letter queue
    deploy_baseline(stage, pipeline, "0.43.0")
    pipeline(allow_downgrade=True, environments__0__strategy=LONG_CANARY)
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.43.1"))
    until(lambda: alias_versions(stage.cloud, stage.targets.functions)["staging"]["routing"], "the split")
    function = stage.targets.functions["staging"]
    sqs = stage.cloud.client("sqs")
    dead_letters = stage.cloud.outputs.reconcile_dead_letter_queue
    faults([{"id": "alias-down-2", "operation": "UpdateAlias", "function": function, "times": 1_000_000}])
    try:
        aborted = abort(
            stage.cloud, deployment_id=pushed["deployment_id"], app_environment=None, by="ops", reason=None, timeout=120
        )
        assert aborted.outcome == "ROLLBACK_FAILED"
        until(
            lambda: int(
                sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            ),
            "the reconciler's event in its dead-letter queue",
        )
    finally:
        faults([])
    try:
        # When a later release ships meanwhile (the lock was given back), and goes live
        pipeline(allow_downgrade=True)
        later = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.43.2"))["deployment_id"])
        assert later.record.status is Outcome.SUCCEEDED
        serving = alias_versions(stage.cloud, stage.targets.functions)["staging"]

        # And then the operator runs the reconciler the ROLLBACK_FAILED notice named
        reconcile_executions(stage.cloud, [aborted.execution_arn])

        # Then the later release still serves: nothing undoes it
        assert alias_versions(stage.cloud, stage.targets.functions)["staging"] == serving
        assert serving == {"version": later.record.environments["staging"].version_after, "routing": {}}
        # And the stopped deployment no longer asks a person to run a command that would undo it, and says why
        closed = operations.ledger(stage.cloud).get(pushed["deployment_id"])
        assert closed is not None
        assert closed.status is Outcome.ABORTED
        assert "nothing is left for a person to do" in closed.failure["reason"]
        until(
            lambda: [n for n in stage.notifications_naming(pushed["deployment_id"]) if "set anew" in n["subject"]],
            "the notice that the target was set anew",
        )
    finally:
        sqs.purge_queue(QueueUrl=dead_letters)


def test_a_deployment_stopped_while_queued_is_found_in_the_queue_by_the_key_it_was_written_under(
    stage: Stage, pipeline: Callable[..., None]
) -> None:
    # Given a canary baking in staging, and a second release queued behind it for staging's lock
    deploy_baseline(stage, pipeline, "0.44.0")
    pipeline(allow_downgrade=True, environments__0__strategy=LONG_CANARY)
    holding = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.44.1"))
    until(lambda: alias_versions(stage.cloud, stage.targets.functions)["staging"]["routing"], "the canary split")
    queued = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.44.2"))
    ledger = operations.ledger(stage.cloud)
    record = until(
        lambda: (r := ledger.get(queued["deployment_id"])) is not None and r.status is Outcome.QUEUED and r,
        "the second release QUEUED",
    )
    table = stage.cloud.client("dynamodb")

    def waiters() -> list[str]:
        items = table.scan(
            TableName=stage.cloud.outputs.ledger_table,
            FilterExpression="begins_with(sk, :wait) AND deployment_id = :d",
            ExpressionAttributeValues={":wait": {"S": "WAIT#"}, ":d": {"S": queued["deployment_id"]}},
        )["Items"]
        return [item["sk"]["S"] for item in items]

    written = until(waiters, "the queued release's place in the queue")
    try:
        # When the queued one's execution is stopped, as from the console
        sfn = stage.cloud.client("stepfunctions")
        sfn.stop_execution(executionArn=record.execution_arn, cause="operator")

        # Then the reconciler closes it, and the key it takes the place out of the queue by (derived from the
        # execution's start, as the status-change event carries it) is the one AcquireLock wrote: Step Functions'
        # start to the millisecond in both. (Whether the place is gone afterwards is not asserted: an AcquireLock
        # still running when the stop came may write it again; the next deployment's line skips a stopped waiter.)
        until(lambda: (r := ledger.get(queued["deployment_id"])) is not None and r.status is Outcome.ABORTED, "ABORTED")
        started = sfn.describe_execution(executionArn=record.execution_arn)["startDate"]
        assert written == [f"WAIT#{waiter_key(started, str(record.execution_arn))}"]
    finally:
        abort(
            stage.cloud,
            deployment_id=holding["deployment_id"],
            app_environment=None,
            by="ops",
            reason=None,
            timeout=120,
        )


class _GatedProbe(BaseHTTPRequestHandler):
    """A health endpoint that tells the test it was asked, then answers 503 once the test lets it."""

    asked = threading.Event()
    answer = threading.Event()

    def do_GET(self) -> None:
        type(self).asked.set()
        type(self).answer.wait(timeout=120)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_ledger_outage_on_the_failure_path_still_restores_traffic_and_is_reconciled_once_it_ends(
    stage: Stage, pipeline: Callable[..., None], faults: Callable[[list[dict[str, Any]]], None]
) -> None:
    # Given a live release, and a staging check that answers only when the test says so
    deploy_baseline(stage, pipeline, "0.41.0")
    live = alias_versions(stage.cloud, stage.targets.functions)["staging"]["version"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatedProbe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        pipeline(
            allow_downgrade=True,
            environments__0__strategy={"type": "all_at_once", "bake_seconds": 0},
            environments__0__health={"http": {"url": url}},
        )
        pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.41.1"))
        until(_GatedProbe.asked.is_set, "staging's health check asked the endpoint")
        record = operations.ledger(stage.cloud).get(pushed["deployment_id"])
        assert record is not None
        assert record.execution_arn is not None

        # When the ledger goes down while the new version is live in staging, and the check then fails
        faults(
            [
                {
                    "id": "ledger-down",
                    "operation": "*",
                    "table": stage.cloud.outputs.ledger_table,
                    "error": "InternalServerError",
                    "times": 1_000_000,
                }
            ]
        )
        _GatedProbe.answer.set()

        # Then the execution ends, and the alias was restored although nothing could be recorded
        until(
            lambda: operations.execution_state(stage.cloud, record.execution_arn).status != "RUNNING",
            "the execution ended",
            timeout=300,
        )
        assert alias_versions(stage.cloud, stage.targets.functions)["staging"] == {"version": live, "routing": {}}
    finally:
        _GatedProbe.answer.set()
        server.shutdown()
        server.server_close()
        faults([])

    # And once the ledger is back, reconciling the execution records the rollback and tells the on-call, once
    reconcile_executions(stage.cloud, [record.execution_arn])
    closed = operations.ledger(stage.cloud).get(pushed["deployment_id"])
    assert closed is not None
    assert closed.status is Outcome.ROLLED_BACK
    assert closed.environments["staging"].status == "ROLLED_BACK"
    # And it names why the deployment failed (the health check, which NotifyFailure was given), not only NotifyFailure
    assert "health check failed" in closed.failure["reason"]
    notes = stage.notifications_naming(pushed["deployment_id"])
    # Each reconciler try that met the outage said so (critical, without the ledger: it cannot claim a notice);
    # the outcome itself is told once.
    told = [n for n in notes if "ledger unreachable" not in n["subject"]]
    assert len(told) == 1
    assert "ROLLED_BACK" in told[0]["subject"]
