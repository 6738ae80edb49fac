"""Safe under duplicates, concurrency and faults, end to end on the local cloud (issue 4, parts 1-3)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.outcome import Outcome
from conveyor.domain.ports import ExecutionState
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow

from conveyor_cli import operations
from conveyor_cli.approvals import decide
from conveyor_cli.sample import EXAMPLES

from .conftest import Stage

pytestmark = pytest.mark.e2e

#: A bake of a day (864 s at the suite's time scale) for a deployment the test stops while it bakes: the test
#: never waits for it to end, so no machine is too slow for it. (A 6 s bake was a window to act within.)
LONG_BAKE = {"type": "all_at_once", "bake_seconds": 86_400}
#: An environment that pauses for a person once its traffic moved (per-version metrics no test traffic can
#: satisfy are inconclusive): the deployment holds the environment's lock, however slow the machine is,
#: until the test ``release``s it. (A bake held it for 6 s only: a window the test had to act within.)
PAUSE_FOR_A_PERSON = {
    "synthetic": {"payload": {"probe": "health"}, "expect": {"status": "ok"}},
    "metrics": {"min_invocations": 100_000},
    "on_inconclusive": "pause",
}


def object_created(stage: Stage, pushed: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event S3 emits for a pushed bundle: what every execution gets as its input."""
    head = stage.cloud.client("s3").head_object(
        Bucket=stage.cloud.outputs.bucket, Key=pushed["s3_uri"].split("/", 3)[3]
    )
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "source": "aws.s3",
        "detail-type": "Object Created",
        "account": "123456789012",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{stage.cloud.outputs.bucket}"],
        "detail": {
            "bucket": {"name": stage.cloud.outputs.bucket},
            "object": {
                "key": pushed["s3_uri"].split("/", 3)[3],
                "size": head["ContentLength"],
                "etag": head["ETag"].strip('"'),
                "version-id": head.get("VersionId"),
            },
            "reason": "PutObject",
        },
    }


def start_executions(stage: Stage, execution_input: dict[str, Any], count: int) -> list[str]:
    sfn = stage.cloud.client("stepfunctions")
    return [
        sfn.start_execution(
            stateMachineArn=stage.cloud.outputs.state_machine_arn,
            name=f"rerun-{uuid.uuid4().hex[:16]}",
            input=json.dumps(execution_input),
        )["executionArn"]
        for _ in range(count)
    ]


def finished(stage: Stage, arns: list[str], timeout: float = 120) -> dict[str, ExecutionState]:
    """Each execution's description once none is RUNNING (fails the test if that takes over ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        described = {arn: operations.execution_state(stage.cloud, arn) for arn in arns}
        if all(d.status != "RUNNING" for d in described.values()):
            return described
        assert time.monotonic() < deadline, "executions still running"
        time.sleep(0.2)


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
    return value


def lock_key(stage: Stage, environment: str) -> str:
    """The lock key of the sample app's ``environment``: its target function's canonical ARN."""
    return operations.environment_lock(stage.cloud, "hello", environment)[1]


def holds(stage: Stage, deployment_id: str, environment: str) -> None:
    """Wait until ``deployment_id`` holds ``environment``'s lock."""
    locks, target = operations.locks(stage.cloud), lock_key(stage, environment)
    until(
        lambda: (held := locks.get(target)) is not None and held.deployment_id == deployment_id,
        f"{deployment_id} holds the {environment} lock",
    )


def paused(stage: Stage, deployment_id: str, environment: str) -> None:
    """Wait until ``deployment_id`` is paused for a person in ``environment`` (holding its lock)."""

    def waiting() -> bool:
        record = ledger_record(stage, deployment_id)
        entry = record.environments.get(environment) if record else None
        return (
            entry is not None
            and entry.status is EnvironmentStatus.AWAITING_APPROVAL
            and bool((entry.approval or {}).get("task_token"))
        )

    until(waiting, f"{deployment_id} is paused in {environment}")


def release(stage: Stage, deployment_id: str, environment: str) -> None:
    """Promote ``deployment_id`` once it is paused in ``environment``, as a person would."""
    paused(stage, deployment_id, environment)
    decide(stage.cloud, deployment_id, environment=environment, verdict="approve", reason="go on")


def failure_notices(notifications: list[dict[str, str]]) -> list[dict[str, str]]:
    """The notifications that are not a paused rollout's request for a decision."""
    return [note for note in notifications if "paused in" not in note["subject"]]


def ledger_record(stage: Stage, deployment_id: str) -> DeploymentRecord | None:
    return operations.ledger(stage.cloud).get(deployment_id)


def assert_no_lock_held(stage: Stage) -> None:
    locks = operations.locks(stage.cloud)
    for env in ("staging", "production"):
        state = locks.get(lock_key(stage, env))
        assert state is None or state.holder is None, f"{env} lock still held by {state.deployment_id}"
        assert locks.waiters(lock_key(stage, env)) == []


def test_a_hundred_deliveries_of_one_object_make_one_deployment(stage: Stage) -> None:
    # Given a pushed bundle (EventBridge starts one execution) and the versions of every target
    versions_before = {f: stage.versions(f) for f in stage.targets.functions.values()}
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "20.0.0"))

    # When the same Object Created event is delivered 99 more times
    duplicates = start_executions(stage, object_created(stage, pushed), 99)

    # Then exactly one deployment ran, once, and the other 99 executions ended without acting
    deployed = stage.follow(pushed["deployment_id"])
    executions = finished(stage, duplicates)
    record = ledger_record(stage, pushed["deployment_id"])
    assert record is not None
    assert (record.status, record.attempts) == (Outcome.SUCCEEDED, 1), (
        f"failure: {record.failure}; skipped: {[e['reason'] for e in record.skipped if 'took over' in e['reason']]}; "
        f"stages: {[(e.stage, e.environment, e.status, e.detail.get('error')) for e in record.events]}"
    )
    assert record.skipped_count == 99, [(e["execution_arn"], e.get("outcome"), e.get("reason")) for e in record.skipped]
    assert {entry["outcome"] for entry in record.skipped} <= {"SKIPPED_DUPLICATE", "ALREADY_LIVE"}
    assert record.execution_arn not in {entry["execution_arn"] for entry in record.skipped}
    assert all(e.status == "SUCCEEDED" for e in executions.values())
    # one new version per target, deployed by one Deploy per environment
    for function, before in versions_before.items():
        assert len(stage.versions(function)) == len(before) + 1
    assert [(e.environment, e.stage) for e in record.events if e.stage == "Deploy"] == [
        ("staging", "Deploy"),
        ("production", "Deploy"),
    ]
    # and nobody was notified, nothing stays locked
    assert deployed.notifications == []
    assert_no_lock_held(stage)


def test_a_console_rerun_of_a_live_artifact_is_a_no_op_unless_forced(stage: Stage) -> None:
    # Given a live deployment
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "20.1.0"))
    stage.follow(pushed["deployment_id"])
    event = object_created(stage, pushed)

    # When the console re-runs it as is, then with force
    (plain,) = start_executions(stage, event, 1)
    finished(stage, [plain])
    (forced,) = start_executions(stage, {**event, "conveyor": {"force": True}}, 1)
    finished(stage, [forced])

    # Then the plain re-run says it is already live; the forced one is attempt 2 and succeeds
    record = ledger_record(stage, pushed["deployment_id"])
    assert record is not None
    (skip,) = record.skipped
    assert (skip["execution_arn"], skip["outcome"]) == (plain, "ALREADY_LIVE")
    assert "already live" in skip["reason"]
    assert (record.status, record.attempts, record.execution_arn) == (Outcome.SUCCEEDED, 2, forced)


def test_an_older_artifact_is_refused_as_a_downgrade(stage: Stage) -> None:
    # Given a live 20.x
    stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "20.2.0"))["deployment_id"])

    # When CI pushes 19.0.0
    deployed = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "19.0.0"))["deployment_id"])

    # Then it is refused, named as a downgrade, with nothing deployed and one notification
    assert deployed.record.status is Outcome.FAILED
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == "DowngradeRefusedError"
    assert "older than the live 20.2.0" in deployed.record.failure["reason"]
    assert deployed.after == deployed.before
    assert len(deployed.notifications) == 1
    assert_no_lock_held(stage)


def test_concurrent_pushes_to_one_environment_are_serialized(stage: Stage, pipeline: Callable[..., None]) -> None:
    # Given a pipeline whose staging holds each deployment until released (queue is the default concurrency)
    pipeline(environments__0__health=PAUSE_FOR_A_PERSON)

    # When two builds are pushed back to back (the second once the first holds staging: pushed
    # together, either could reach the lock first, and the older one would then end as outdated)
    first = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "21.0.0"))
    holds(stage, first["deployment_id"], "staging")
    second = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "21.1.0"))

    # Then the second was QUEUED behind the first, and both went live one after the other
    queued = until(
        lambda: (r := ledger_record(stage, second["deployment_id"])) is not None and r.status is Outcome.QUEUED,
        "the second deployment is QUEUED",
    )
    assert queued
    release(stage, first["deployment_id"], "staging")
    release(stage, second["deployment_id"], "staging")
    one = stage.follow(first["deployment_id"]).record
    two = stage.follow(second["deployment_id"]).record
    assert (one.status, two.status) == (Outcome.SUCCEEDED, Outcome.SUCCEEDED)
    assert two.environments["staging"].waiting_for == one.deployment_id
    # in staging, the first one's last stage ended before the second one's first stage began
    first_done = max(e.finished_at for e in one.events if e.environment == "staging")
    second_began = min(e.started_at for e in two.events if e.environment == "staging")
    assert first_done <= second_began
    assert (
        stage.follow(second["deployment_id"]).after["production"]["version"]
        == two.environments["production"].version_after
    )
    assert_no_lock_held(stage)


def test_a_newer_push_supersedes_an_older_one_still_waiting(stage: Stage, pipeline: Callable[..., None]) -> None:
    # Given concurrency: supersede, and a deployment holding staging while the next one waits
    pipeline(concurrency="supersede", environments__0__health=PAUSE_FOR_A_PERSON)
    holder = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "22.0.0"))
    holds(stage, holder["deployment_id"], "staging")
    waiting = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "22.1.0"))
    until(
        lambda: (r := ledger_record(stage, waiting["deployment_id"])) is not None and r.status is Outcome.QUEUED,
        "the second deployment is QUEUED",
    )

    # When a newer build is pushed (and the holder goes on once the newer one waits too)
    newest = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "22.2.0"))
    until(
        lambda: (r := ledger_record(stage, newest["deployment_id"])) is not None and r.status is Outcome.QUEUED,
        "the newest deployment is QUEUED",
    )
    release(stage, holder["deployment_id"], "staging")
    release(stage, newest["deployment_id"], "staging")

    # Then the waiting one is SUPERSEDED (nothing deployed, nobody paged); the others go live
    superseded = stage.follow(waiting["deployment_id"])
    assert superseded.record.status is Outcome.SUPERSEDED
    assert superseded.execution.status == "SUCCEEDED"
    assert superseded.record.failure is not None
    assert newest["deployment_id"] in superseded.record.failure["reason"]
    assert not any(e.stage == "Deploy" for e in superseded.record.events)
    assert stage.follow(holder["deployment_id"]).record.status is Outcome.SUCCEEDED
    last = stage.follow(newest["deployment_id"])
    assert last.record.status is Outcome.SUCCEEDED
    assert failure_notices(last.notifications) == []
    assert_no_lock_held(stage)


def test_an_older_push_never_replaces_a_newer_release_still_rolling_out(
    stage: Stage, pipeline: Callable[..., None]
) -> None:
    # Given 22.4.0 live in staging and paused in production (so the validated 22.3.0 below is not a downgrade yet)
    pipeline(environments__1__health=PAUSE_FOR_A_PERSON)
    newer = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "22.4.0"))
    paused(stage, newer["deployment_id"], "production")

    # When an older build is pushed and takes staging's lock
    older = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "22.3.0"))

    # Then it ends SUPERSEDED as outdated, changing nothing; the newer one goes live everywhere
    outdated = stage.follow(older["deployment_id"])
    assert outdated.record.status is Outcome.SUPERSEDED
    assert outdated.execution.status == "SUCCEEDED"
    assert outdated.record.failure is not None
    assert f"hello 22.4.0 (deployment {newer['deployment_id']})" in outdated.record.failure["reason"]
    assert not any(e.stage == "Deploy" for e in outdated.record.events)
    assert failure_notices(outdated.notifications) == []
    release(stage, newer["deployment_id"], "production")
    live = stage.follow(newer["deployment_id"])
    assert live.record.status is Outcome.SUCCEEDED
    assert {env: live.after[env]["version"] for env in live.after} == {
        env: live.record.environments[env].version_after for env in live.after
    }
    assert_no_lock_held(stage)


def test_a_deployment_stopped_from_the_console_frees_its_environment_for_the_next_one(
    stage: Stage, pipeline: Callable[..., None]
) -> None:
    # Given 22.6.0 holding staging (its lease outlasts a day-long bake) while it bakes there
    pipeline(environments__0__strategy=LONG_BAKE)
    stopped = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "22.6.0"))
    record = until(
        lambda: (
            (r := ledger_record(stage, stopped["deployment_id"])) is not None
            and any(e.stage == "ShiftTraffic" for e in r.events)
            and r
        ),
        "22.6.0 shifted staging's traffic and bakes",
    )
    assert record.execution_arn is not None

    # When an operator stops its execution
    stage.cloud.client("stepfunctions").stop_execution(executionArn=record.execution_arn, cause="operator")
    stopped_at = utcnow()

    # Then it ends ABORTED at once, and the reconciler closes it, restores staging and frees its lock
    assert operations.execution_state(stage.cloud, record.execution_arn).status == "ABORTED"
    ended = until(
        lambda: (r := ledger_record(stage, stopped["deployment_id"])) is not None and r.status is Outcome.ABORTED and r,
        "the reconciler closed 22.6.0 ABORTED",
    )
    assert ended.failure is not None
    assert "was stopped (ABORTED)" in ended.failure["reason"]
    assert ended.environments["staging"].status == "ROLLED_BACK"

    # And a fix pushed next (without the day-long bake) takes staging at once and goes live
    pipeline()
    fix = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "22.7.0"))["deployment_id"])
    assert fix.record.status is Outcome.SUCCEEDED
    assert {env: fix.after[env]["version"] for env in fix.after} == {
        env: fix.record.environments[env].version_after for env in fix.after
    }
    assert all(event.started_at <= stopped_at for event in ended.events), "a stage ran after the stop"
    assert not any(event.stage == "EvaluateHealth" for event in ended.events)
    assert_no_lock_held(stage)


@pytest.mark.parametrize(
    ("operation", "function", "stage_name"),
    [
        ("PublishVersion", "hello-staging", "Deploy"),
        ("UpdateAlias", "hello-production", "ShiftTraffic"),
    ],
)
def test_a_stage_crashing_mid_deploy_is_retried_without_double_effects(
    stage: Stage, faults: Callable[[list[dict[str, Any]]], None], operation: str, function: str, stage_name: str
) -> None:
    # Given the target's API conflicting once (as Lambda does while an update is still in progress)
    faults(
        [
            {
                "id": f"crash-{operation}",
                "operation": operation,
                "function": function,
                "times": 1,
                "error": "ResourceConflictException",
                "status": 409,
                "message": "The operation cannot be performed at this time. An update is in progress.",
            }
        ]
    )
    versions_before = {f: stage.versions(f) for f in stage.targets.functions.values()}
    version = "23.0.0" if operation == "PublishVersion" else "23.1.0"

    # When a good build is pushed
    deployed = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", version))["deployment_id"])

    # Then the crashed stage ran again and the deployment succeeded, with one new version per target
    assert deployed.record.failure is None, deployed.record.failure
    assert deployed.record.status is Outcome.SUCCEEDED
    environment = "staging" if function == "hello-staging" else "production"
    runs = [e.status for e in deployed.record.events if e.stage == stage_name and e.environment == environment]
    assert runs == ["failed", "succeeded"]
    for name, before in versions_before.items():
        assert len(stage.versions(name)) == len(before) + 1
    assert deployed.after[environment]["routing"] == {}
    assert deployed.after[environment]["version"] == deployed.record.environments[environment].version_after
    assert deployed.notifications == []
    assert_no_lock_held(stage)


def test_a_rollback_that_fails_ends_rollback_failed_with_a_critical_notification(
    stage: Stage, faults: Callable[[list[dict[str, Any]]], None]
) -> None:
    # Given a live build, and staging's alias refusing every change after the first (the traffic shift)
    stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "24.0.0"))["deployment_id"])
    faults(
        [
            {
                "id": "rollback-denied",
                "operation": "UpdateAlias",
                "function": "hello-staging",
                "skip": 1,
                "times": 100,
                "error": "AccessDeniedException",
                "status": 403,
                "message": "not authorized to perform lambda:UpdateAlias",
            }
        ]
    )
    lambda_ = stage.cloud.client("lambda")
    try:
        # When a build that fails its health check is pushed
        pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello-broken", "24.1.0"))
        deployed = stage.follow(pushed["deployment_id"])

        # Then it ends ROLLBACK_FAILED, its one notification says where the alias is and what to run
        assert deployed.record.status is Outcome.ROLLBACK_FAILED
        assert deployed.execution.error == "RollbackFailedError"
        staging = deployed.record.environments["staging"]
        assert deployed.after["staging"]["version"] == staging.version_after
        (note,) = deployed.notifications
        assert note["subject"] == "[Conveyor] hello 24.1.0 staging: ROLLBACK_FAILED"
        assert "ACTION REQUIRED" in note["message"]
        assert "staging: NOT RESTORED - hello-staging:live may still send" in note["message"]
        assert (
            f"aws lambda update-alias --function-name hello-staging --name live "
            f"--function-version {staging.version_before}" in note["message"]
        )
        assert_no_lock_held(stage)
    finally:
        # What the on-call would run, so later tests start from a healthy alias
        faults([])
        record = ledger_record(stage, pushed["deployment_id"])
        before = record.environments["staging"].version_before if record else None
        if before:
            lambda_.update_alias(
                FunctionName="hello-staging",
                Name="live",
                FunctionVersion=before,
                RoutingConfig={"AdditionalVersionWeights": {}},
            )
