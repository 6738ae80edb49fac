"""What the CLI does against a Conveyor deployment (local or AWS): push, register pipelines, read the ledger."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.errors import ArtifactLayoutError, ManifestInvalidError, PipelineInvalidError
from conveyor.layout import artifact_key, deployment_id, pipeline_key
from conveyor.ledger import DeploymentRecord, DynamoLedger, StageEvent
from conveyor.limits import MAX_PIPELINE_SPEC_BYTES
from conveyor.manifest import MANIFEST_NAME, Manifest
from conveyor.pipeline import LambdaTarget, PipelineSpec
from conveyor.stages.validate import PushedObject
from pydantic import ValidationError

from conveyor_cli.context import CliError, Cloud
from conveyor_cli.status import wait_for


def read_manifest(bundle: bytes, source: str) -> Manifest:
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            return Manifest.from_json(archive.read(MANIFEST_NAME))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise CliError(f"{source}: not a Conveyor bundle ({exc})") from exc
    except ManifestInvalidError as exc:
        raise CliError(str(exc)) from exc


def push(cloud: Cloud, bundle_path: Path) -> dict[str, Any]:
    """Upload a bundle to ``artifacts/<app>/<version>.zip``; the returned id is the deployment's."""
    data = bundle_path.read_bytes()
    manifest = read_manifest(data, str(bundle_path))
    key = artifact_key(manifest.app, manifest.version)
    try:
        response = cloud.client("s3").put_object(
            Bucket=cloud.outputs.bucket,
            Key=key,
            Body=data,
            ContentType="application/zip",
            ServerSideEncryption="AES256",
        )
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"uploading {bundle_path} to s3://{cloud.outputs.bucket}/{key} failed: {exc}") from exc
    version_id = response.get("VersionId")
    return {
        "deployment_id": deployment_id(cloud.outputs.bucket, key, version_id, response.get("ETag")),
        "app": manifest.app,
        "version": manifest.version,
        "s3_uri": f"s3://{cloud.outputs.bucket}/{key}",
        "version_id": version_id,
    }


def apply_pipeline(cloud: Cloud, spec_path: Path) -> PipelineSpec:
    """Validate a spec file (size first, no YAML aliases, the schema) and register it."""
    if spec_path.stat().st_size > MAX_PIPELINE_SPEC_BYTES:
        raise CliError(
            f"{spec_path}: {spec_path.stat().st_size} bytes, more than the pipeline spec limit of "
            f"{MAX_PIPELINE_SPEC_BYTES}"
        )
    raw = spec_path.read_bytes()
    try:
        spec = PipelineSpec.from_yaml(raw, str(spec_path))
    except PipelineInvalidError as exc:
        raise CliError(str(exc)) from exc
    cloud.client("s3").put_object(
        Bucket=cloud.outputs.bucket,
        Key=pipeline_key(spec.app),
        Body=raw,
        ContentType="application/yaml",
        ServerSideEncryption="AES256",
    )
    return spec


def show_pipeline(cloud: Cloud, app: str) -> PipelineSpec:
    key = pipeline_key(app)
    try:
        raw = cloud.client("s3").get_object(Bucket=cloud.outputs.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        raise CliError(f"no pipeline registered for {app!r} at s3://{cloud.outputs.bucket}/{key}") from exc
    try:
        return PipelineSpec.from_yaml(raw, f"s3://{cloud.outputs.bucket}/{key}")
    except (PipelineInvalidError, ValidationError) as exc:
        raise CliError(str(exc)) from exc


def environment_target(cloud: Cloud, app: str, environment: str) -> LambdaTarget:
    """The target of ``environment`` in ``app``'s registered pipeline (a CliError naming the others if none)."""
    spec = show_pipeline(cloud, app)
    try:
        return spec.environment(environment).target
    except KeyError as exc:
        names = ", ".join(env.name for env in spec.environments)
        raise CliError(f"pipeline {app!r} has no environment {environment!r} (it has: {names})") from exc


def ledger(cloud: Cloud) -> DynamoLedger:
    return DynamoLedger(cloud.outputs.ledger_table)


def execution_status(cloud: Cloud, execution_arn: str) -> dict[str, Any]:
    try:
        response: dict[str, Any] = cloud.client("stepfunctions").describe_execution(executionArn=execution_arn)
    except (ClientError, BotoCoreError):
        return {"status": "UNKNOWN"}
    return response


RUNNING_EXECUTIONS_SCANNED = 100
"""How many running executions ``running_execution_of`` reads (the newest first) to find a deployment's."""


def running_execution_of(cloud: Cloud, deployment_id: str) -> str | None:
    """The running execution deploying ``deployment_id`` (its input names the pushed object), if any.

    Only asked when the ledger has no record of the deployment: between the push and ValidateArtifact
    (or ClaimDeployment) an execution exists that the ledger does not know yet.
    """
    client = cloud.client("stepfunctions")
    try:
        listed = client.list_executions(
            stateMachineArn=cloud.outputs.state_machine_arn,
            statusFilter="RUNNING",
            maxResults=RUNNING_EXECUTIONS_SCANNED,
        )["executions"]
        for summary in listed:
            described = client.describe_execution(executionArn=summary["executionArn"])
            try:
                pushed = PushedObject.from_event(json.loads(described.get("input") or "{}"))
            except (ValueError, ArtifactLayoutError):
                continue
            if pushed.deployment_id == deployment_id:
                return str(summary["executionArn"])
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"cannot list the executions of {cloud.outputs.state_machine_arn}: {exc}") from exc
    return None


def wait(
    cloud: Cloud,
    deployment_id: str,
    *,
    timeout: float,
    on_event: Callable[[StageEvent, float], None] | None = None,
) -> DeploymentRecord:
    """Follow a deployment until it has ended and its execution has stopped."""
    return wait_for(
        ledger(cloud),
        deployment_id,
        execution_status=lambda arn: str(execution_status(cloud, arn)["status"]),
        timeout=timeout,
        on_event=on_event,
    )
