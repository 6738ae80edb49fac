"""The whole flow on the local cloud: S3 upload -> EventBridge -> Step Functions -> Lambda stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conveyor.domain.layout import deployment_id

from conveyor_cli import operations
from conveyor_cli.context import CliError
from conveyor_cli.rollback import manual_rollback
from conveyor_cli.sample import EXAMPLES, alias_versions
from conveyor_local.server import client_env, read_state

from .conftest import Stage

pytestmark = pytest.mark.e2e


def test_good_build_goes_live_in_every_environment(stage: Stage) -> None:
    # Given a good build of the sample app
    bundle = stage.bundle(EXAMPLES / "hello", "2.0.0")

    # When CI pushes it
    deployed = stage.follow(operations.push(stage.cloud, bundle)["deployment_id"])

    # Then the execution succeeded and both aliases serve the new version at 100%
    assert deployed.record.status.value == "SUCCEEDED", deployed.record.failure
    assert deployed.execution.status == "SUCCEEDED"
    for env in ("staging", "production"):
        assert deployed.after[env]["version"] != deployed.before[env]["version"]
        assert deployed.after[env]["routing"] == {}
        assert deployed.record.environments[env].version_after == deployed.after[env]["version"]
        assert deployed.record.environments[env].version_before == deployed.before[env]["version"]
    stages = [(e.environment, e.stage) for e in deployed.record.events]
    assert stages == [
        (None, "ValidateArtifact"),
        ("staging", "CheckGates"),
        ("staging", "Deploy"),
        ("staging", "ShiftTraffic"),
        ("staging", "EvaluateHealth"),
        ("production", "CheckGates"),
        ("production", "Deploy"),
        ("production", "ShiftTraffic"),
        ("production", "EvaluateHealth"),
        (None, "Finalize"),
    ]
    assert deployed.notifications == []


def test_failed_health_check_rolls_back_and_notifies_once(stage: Stage) -> None:
    # Given a live good build, then a build whose health probe fails
    stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "3.0.0"))["deployment_id"])
    bundle = stage.bundle(EXAMPLES / "hello-broken", "3.1.0")

    # When it is pushed
    deployed = stage.follow(operations.push(stage.cloud, bundle)["deployment_id"])

    # Then staging took the rollback branch: the alias serves the old version again, routing cleared
    assert deployed.record.status.value == "ROLLED_BACK"
    assert deployed.execution.status == "FAILED"
    assert deployed.execution.error == "DeploymentRolledBackError"
    assert deployed.after == deployed.before
    staging = deployed.record.environments["staging"]
    assert staging.status == "ROLLED_BACK"
    assert (staging.rollback or {})["restored_version"] == deployed.before["staging"]["version"]
    assert deployed.record.environments["production"].status == "PENDING"  # never reached
    # And exactly one notification says what failed, why, and what it was rolled back to
    assert len(deployed.notifications) == 1
    note = deployed.notifications[0]
    assert note["subject"] == "[Conveyor] hello 3.1.0 staging: ROLLED_BACK"
    assert "cannot reach database" in note["message"]
    assert f"restored to version {deployed.before['staging']['version']}" in note["message"]
    assert "production: not reached - nothing deployed" in note["message"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not a zip archive", "not a zip archive"),
        (b"", "the object is empty"),
    ],
)
def test_corrupt_bundle_fails_with_nothing_deployed(stage: Stage, body: bytes, reason: str) -> None:
    # Given the current versions of every target
    versions_before = {f: stage.versions(f) for f in stage.targets.functions.values()}

    # When a corrupt object lands under artifacts/
    deployed = stage.follow(stage.upload(f"artifacts/hello/9.9.{len(body)}.zip", body))

    # Then the deployment FAILED at validation, named why, and nothing was deployed anywhere
    assert deployed.record.status.value == "FAILED"
    assert deployed.execution.error == "DeploymentFailedError"
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == "BundleInvalidError"
    assert reason in deployed.record.failure["reason"]
    assert deployed.after == deployed.before
    assert {f: stage.versions(f) for f in stage.targets.functions.values()} == versions_before
    assert len(deployed.notifications) == 1
    assert "FAILED" in deployed.notifications[0]["subject"]
    assert reason in deployed.notifications[0]["message"]


def test_aws_cli_upload_is_reported_by_conveyor_status(stage: Stage) -> None:
    # Given a bundle and the local cloud's endpoint, as `conveyor local env` prints it
    bundle = stage.bundle(EXAMPLES / "hello", "4.0.0")
    key = "artifacts/hello/4.0.0.zip"
    env = dict(os.environ) | client_env(read_state(stage.state_dir))
    bin_dir = Path(sys.executable).parent

    # When the plain AWS CLI uploads it
    subprocess.run(
        [str(bin_dir / "aws"), "s3", "cp", str(bundle), f"s3://{stage.cloud.outputs.bucket}/{key}"],
        check=True,
        env=env,
        capture_output=True,
    )

    # Then `conveyor status ID --wait --json` reports the deployment it started
    head = stage.cloud.client("s3").head_object(Bucket=stage.cloud.outputs.bucket, Key=key)
    deployment = deployment_id(stage.cloud.outputs.bucket, key, head.get("VersionId"), head.get("ETag"))
    result = subprocess.run(
        [str(bin_dir / "conveyor"), "--local", "status", deployment, "--wait", "--json", "--timeout", "120"],
        check=True,
        env=env | {"CONVEYOR_STATE_DIR": str(stage.state_dir)},
        capture_output=True,
        text=True,
    )
    document = json.loads(result.stdout)
    assert document["version"] == "4.0.0"
    assert document["status"] == "SUCCEEDED"
    assert document["execution"]["status"] == "SUCCEEDED"


def test_operator_rolls_back_a_live_release_by_command(stage: Stage) -> None:
    # Given a good build live in staging and production
    deployed = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "5.0.0"))["deployment_id"])
    assert deployed.record.status.value == "SUCCEEDED"
    bin_dir = Path(sys.executable).parent

    # When the on-call rolls staging back by command
    result = subprocess.run(
        [str(bin_dir / "conveyor"), "--local", "rollback", "hello", "staging", "--json"],
        check=True,
        env=dict(os.environ) | {"CONVEYOR_STATE_DIR": str(stage.state_dir)},
        capture_output=True,
        text=True,
    )

    # Then staging serves the version from before the release at 100%, production is untouched
    document = json.loads(result.stdout)
    aliases = alias_versions(stage.cloud, stage.targets.functions)
    assert document["restored_version"] == deployed.before["staging"]["version"]
    assert aliases["staging"] == {"version": deployed.before["staging"]["version"], "routing": {}}
    assert aliases["production"] == deployed.after["production"]
    # And the ledger says so on that deployment, and no lock is left behind
    record = operations.ledger(stage.cloud).get(deployed.record.deployment_id)
    assert record is not None
    assert record.environments["staging"].status == "ROLLED_BACK"
    assert [e.stage for e in record.events][-1] == "ManualRollback"
    assert stage.locks_of({deployed.record.deployment_id}) == []


def test_manual_rollback_is_refused_while_a_deployment_holds_the_lock(stage: Stage) -> None:
    # Given a deployment holding staging's lock
    locks = operations.locks(stage.cloud)
    _, target = operations.environment_lock(stage.cloud, "hello", "staging")
    token = locks.try_acquire(
        target,
        holder="arn:test",
        deployment_id="d-busy",
        app="hello",
        environment="staging",
        lease_seconds=86_400,  # held until the test releases it, however slow the machine
        now=time.time(),
    )
    assert token is not None
    before = alias_versions(stage.cloud, stage.targets.functions)
    try:
        # When the on-call tries to roll staging back
        with pytest.raises(CliError, match="locked by deployment d-busy of hello/staging"):
            manual_rollback(stage.cloud, "hello", "staging", to="1")
    finally:
        locks.release(target, "arn:test")

    # Then nothing changed
    assert alias_versions(stage.cloud, stage.targets.functions) == before
