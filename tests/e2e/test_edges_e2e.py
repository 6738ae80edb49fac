"""Guarantees at the edges, end to end on the local cloud: a hostile execution input, and what CI is told."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conveyor.domain.layout import deployment_id, release_key

from conveyor_cli import operations
from conveyor_cli.sample import EXAMPLES
from conveyor_cli.status import ExitCode

from .conftest import Stage

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


def test_an_execution_naming_another_bucket_reads_nothing_and_is_reported(stage: Stage) -> None:
    # Given another bucket holding a valid bundle and a pipeline for it, and an execution input naming it
    s3 = stage.cloud.client("s3")
    s3.create_bucket(Bucket="attacker-artifacts")
    s3.put_bucket_versioning(Bucket="attacker-artifacts", VersioningConfiguration={"Status": "Enabled"})
    key = "artifacts/hello/66.0.0.zip"
    put = s3.put_object(
        Bucket="attacker-artifacts", Key=key, Body=stage.bundle(EXAMPLES / "hello", "66.0.0").read_bytes()
    )
    s3.put_object(
        Bucket="attacker-artifacts",
        Key="pipelines/hello.yaml",
        Body=(EXAMPLES / "pipelines" / "hello.yaml").read_bytes(),
    )
    event = json.loads((ROOT / "events" / "s3_object_created.json").read_text())
    event["detail"]["bucket"]["name"] = "attacker-artifacts"
    event["detail"]["object"].update({"key": key, "version-id": put["VersionId"], "etag": put["ETag"].strip('"')})
    versions_before = {f: stage.versions(f) for f in stage.targets.functions.values()}

    # When someone starts an execution with it (as a console re-run with an edited input would)
    stage.cloud.client("stepfunctions").start_execution(
        stateMachineArn=stage.cloud.outputs.state_machine_arn, name=f"foreign-{uuid.uuid4()}", input=json.dumps(event)
    )
    deployed = stage.follow(deployment_id("attacker-artifacts", key, put["VersionId"], put["ETag"]))

    # Then it is refused by name, recorded and notified once
    assert deployed.record.status.value == "FAILED"
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == "ForeignBucketError"
    assert "not Conveyor's artifact bucket" in deployed.record.failure["reason"]
    assert len(deployed.notifications) == 1
    assert "attacker-artifacts" in deployed.notifications[0]["message"]
    # And nothing was read from that bucket or deployed: no release, no version, every alias as it was
    with pytest.raises(ClientError):
        s3.head_object(Bucket=stage.cloud.outputs.bucket, Key=release_key("hello", "66.0.0"))
    assert deployed.after == deployed.before
    assert {f: stage.versions(f) for f in stage.targets.functions.values()} == versions_before
    assert [e.stage for e in deployed.record.events if e.stage in ("ValidateArtifact", "Deploy")] == []


def test_the_readme_ci_step_fails_on_a_rolled_back_deployment(stage: Stage) -> None:
    # Given a broken build pushed as CI pushes it
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello-broken", "67.0.0"))

    # When CI follows it as the README says: `conveyor status <id> --wait`
    result = subprocess.run(
        [str(Path(sys.executable).parent / "conveyor"), "--local", "status", pushed["deployment_id"], "--wait"],
        env=dict(os.environ) | {"CONVEYOR_STATE_DIR": str(stage.state_dir)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Then the step fails, with the code of a rollback, and the output says why
    assert result.returncode == ExitCode.ROLLED_BACK, result.stderr
    assert "ROLLED_BACK" in result.stdout
    stage.follow(pushed["deployment_id"])  # drains its notification for the tests after this one
