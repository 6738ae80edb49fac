"""Every way an execution ends is handled, end to end: a stop from the API, a ledger outage on the failure path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from conveyor.contracts import Outcome

from conveyor_cli import operations
from conveyor_cli.reconcile import reconcile_executions
from conveyor_cli.rollback import manual_rollback
from conveyor_cli.sample import EXAMPLES, alias_versions, drain_inbox

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
    pipeline()
    deployed = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", version))["deployment_id"])
    assert deployed.record.status is Outcome.SUCCEEDED


def test_a_stop_during_a_canary_bake_restores_the_alias_closes_the_record_and_notifies_once(
    stage: Stage, pipeline: Callable[..., None]
) -> None:
    # Given a live release, and a canary of the next one baking at 20% in staging
    deploy_baseline(stage, pipeline, "40.0.0")
    live = alias_versions(stage.cloud, stage.targets.functions)["staging"]["version"]
    pipeline(environments__0__strategy=LONG_CANARY)
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "40.1.0"))
    until(lambda: alias_versions(stage.cloud, stage.targets.functions)["staging"]["routing"], "the canary split")
    record = operations.ledger(stage.cloud).get(pushed["deployment_id"])
    assert record is not None
    assert record.execution_arn is not None

    # When an operator stops the execution, as from the console
    stage.cloud.client("stepfunctions").stop_execution(executionArn=record.execution_arn, cause="operator stop")

    # Then the execution is ABORTED, and the reconciler restores the alias and closes the record with that cause
    assert operations.execution_status(stage.cloud, record.execution_arn)["status"] == "ABORTED"
    ledger = operations.ledger(stage.cloud)
    closed = until(
        lambda: (r := ledger.get(pushed["deployment_id"])) and r.status is Outcome.ABORTED and r,
        "the ledger record closed ABORTED",
    )
    assert alias_versions(stage.cloud, stage.targets.functions)["staging"] == {"version": live, "routing": {}}
    assert closed.environments["staging"]["status"] == "ROLLED_BACK"
    assert "operator stop" in closed.failure["reason"]
    # And the lock is free, so the on-call can roll back by hand at once
    assert stage.locks_of({pushed["deployment_id"]}) == []
    manual_rollback(stage.cloud, "hello", "staging", live)
    # And exactly one notification says what happened
    notes = until(lambda: drain_inbox(stage.cloud, stage.targets.inbox_url), "the notification")
    ours = [n for n in notes if pushed["deployment_id"] in n["message"]]
    assert len(ours) == 1
    assert "ABORTED" in ours[0]["subject"]
    # And reconciling the same execution again (the operator's redrive) changes nothing and notifies nobody
    again = reconcile_executions(stage.cloud, [record.execution_arn])
    assert again[0]["restored"] == []
    assert again[0]["closed"] is False
    later = drain_inbox(stage.cloud, stage.targets.inbox_url)
    assert [n for n in later if pushed["deployment_id"] in n["message"]] == []
