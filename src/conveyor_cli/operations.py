"""What the CLI does against a Conveyor deployment (local or AWS): push, register pipelines, read the ledger."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.adapters.cloudwatch import CloudWatchAlarms
from conveyor.adapters.dynamodb_ledger import DynamoLedger
from conveyor.adapters.dynamodb_locks import DynamoLocks, DynamoTargetOwners
from conveyor.adapters.lambda_functions import LambdaTargets
from conveyor.adapters.s3 import S3Artifacts
from conveyor.adapters.stepfunctions import StepFunctionsExecutions
from conveyor.domain.errors import (
    ArtifactLayoutError,
    LedgerError,
    ManifestInvalidError,
    PipelineInvalidError,
    PipelineNotFoundError,
    PipelineNotReadyError,
    TargetClaimedError,
    TargetIdentityError,
)
from conveyor.domain.layout import ARTIFACT_PREFIX, PIPELINE_PREFIX, artifact_key, deployment_id, pipeline_key
from conveyor.domain.limits import MAX_PIPELINE_SPEC_BYTES
from conveyor.domain.manifest import MANIFEST_NAME, Manifest
from conveyor.domain.ownership import (
    TargetId,
    canonical_lambda_target,
    claim_targets,
    member_field,
    resolve_all_members,
    resolve_target,
    resolve_targets,
    target_field,
)
from conveyor.domain.pipeline import ElasticBeanstalkTarget, LambdaTarget, PipelineSpec
from conveyor.domain.ports import ExecutionState
from conveyor.domain.pushed_object import PushedObject
from conveyor.domain.readiness import require_resources
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.target_identity import Home, resolve_function
from conveyor.settings import MANAGED_TAG_KEY
from pydantic import ValidationError

from conveyor_cli.context import CliError, Cloud
from conveyor_cli.status import wait_for

if TYPE_CHECKING:
    from conveyor.adapters.elasticbeanstalk import BeanstalkTargets


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
    try:
        data = bundle_path.read_bytes()
    except OSError as exc:  # a folder, a path through a file, no permission
        raise CliError(f"cannot read the bundle {bundle_path}: {exc.strerror or exc}") from exc
    manifest = read_manifest(data, str(bundle_path))
    key = artifact_key(manifest.app, manifest.version)
    try:
        stored = artifacts(cloud).put_bundle(cloud.outputs.bucket, key, data)
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"uploading {bundle_path} to s3://{cloud.outputs.bucket}/{key} failed: {exc}") from exc
    version_id = stored.version_id
    return {
        "deployment_id": deployment_id(cloud.outputs.bucket, key, version_id, stored.etag),
        "app": manifest.app,
        "version": manifest.version,
        "s3_uri": f"s3://{cloud.outputs.bucket}/{key}",
        "version_id": version_id,
    }


def read_pipeline_file(spec_path: Path) -> tuple[PipelineSpec, bytes]:
    """A spec file validated (size first, no YAML aliases, the schema), and its bytes: a CliError naming the file or
    field (an ``OSError`` naming a path that cannot be read), before any AWS call."""
    if spec_path.stat().st_size > MAX_PIPELINE_SPEC_BYTES:
        raise CliError(
            f"{spec_path}: {spec_path.stat().st_size} bytes, more than the pipeline spec limit of "
            f"{MAX_PIPELINE_SPEC_BYTES}"
        )
    raw = spec_path.read_bytes()
    try:
        return PipelineSpec.from_yaml(raw, str(spec_path)), raw
    except PipelineInvalidError as exc:
        raise CliError(str(exc)) from exc


def apply_pipeline(cloud: Cloud, spec_path: Path, *, read: tuple[PipelineSpec, bytes] | None = None) -> PipelineSpec:
    """Validate a spec file (size first, no YAML aliases, the schema), claim its targets for its app (one
    owner per function), then register it.

    A refused claim registers nothing and lets go of the targets this call newly claimed; once
    registered, the targets the app's previous spec named and this one does not are let go.
    """
    spec, raw = read or read_pipeline_file(spec_path)  # ``read``: the file as the caller read it already
    home, owners = cloud.home(), target_owners(cloud)
    before = _registered_targets(cloud, spec.app, home)
    wanted = resolve_or_refuse(spec, home, source=str(spec_path))
    refuse_targets_of_other_pipelines(cloud, spec, home, owners, source=str(spec_path))
    require_ready(cloud, spec, home, source=str(spec_path))
    try:
        claim_targets(spec, home, owners, source=str(spec_path))
        artifacts(cloud).put_pipeline(cloud.outputs.bucket, spec.app, raw)
    except (TargetClaimedError, LedgerError, ClientError, BotoCoreError) as exc:
        for target in wanted - before:
            owners.release(target, app=spec.app)
        raise CliError(str(exc)) from exc
    for target in before - wanted:
        owners.release(target, app=spec.app)
    return spec


def require_ready(cloud: Cloud, spec: PipelineSpec, home: Home, *, source: str) -> None:
    """A CliError naming each target, hook or alarm of ``spec`` that is missing or not managed (see
    ``conveyor.domain.readiness``): registered, the spec would fail every deployment."""
    try:
        require_resources(
            spec,
            resolve_targets(spec, home, source=source),
            targets=targets(cloud),
            alarms=CloudWatchAlarms(cloud.session),
            tag_key=MANAGED_TAG_KEY,
            source=source,
            beanstalk=_beanstalk(cloud, spec),
        )
    except PipelineNotReadyError as exc:
        hint = (
            "; the sample app's are created by `conveyor local sample`" if cloud.local and spec.app == "hello" else ""
        )
        raise CliError(f"{exc}{hint}") from exc
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"{source}: cannot check the functions and alarms it names: {exc}") from exc


def _beanstalk(cloud: Cloud, spec: PipelineSpec) -> BeanstalkTargets | None:
    """The Elastic Beanstalk adapter, for a spec that targets Beanstalk (none is built otherwise)."""
    if not any(isinstance(env.target, ElasticBeanstalkTarget) for env in spec.environments):
        return None
    return beanstalk(cloud)


def beanstalk(cloud: Cloud) -> BeanstalkTargets:
    from conveyor.adapters.elasticbeanstalk import BeanstalkTargets

    return BeanstalkTargets(cloud.session)


def resolve_or_refuse(spec: PipelineSpec, home: Home, *, source: str) -> set[str]:
    """The canonical ARNs of the spec's targets; a CliError naming the field if one is not Conveyor's to use."""
    try:
        return {member.arn for members in resolve_all_members(spec, home, source=source).values() for member in members}
    except TargetIdentityError as exc:
        raise CliError(str(exc)) from exc


def refuse_targets_of_other_pipelines(
    cloud: Cloud, spec: PipelineSpec, home: Home, owners: DynamoTargetOwners, *, source: str
) -> None:
    """A CliError naming both (and the spec's field) if another app owns one of ``spec``'s functions.

    A function's ownership record decides: another app's refuses it, this app's lets it apply again whatever
    other spec names the function. For a function without one, a pipeline registered before the records existed
    (or copied into the bucket by hand) that has not deployed since decides, so the clash is refused here and not
    only at its next deployment.
    """
    wanted = {  # each function of spec, by ARN: its environment and where it is written
        member.arn: (env, member_field(target_field(spec, env, source), env.target, position))
        for env in spec.environments
        for position, member in enumerate(resolve_all_members(spec, home, source=source)[env.name])
    }
    for target, claim in owners.owners(wanted).items():
        env, field = wanted.pop(target)
        if claim.app != spec.app:
            raise CliError(
                f"{field}: {_kind(target)} {target} belongs to app {claim.app!r} (environment {claim.environment!r}, "
                f"by its ownership record); app {spec.app!r} (environment {env.name!r}) may not deploy to it. One "
                "target has one owner"
            )
    if not wanted:
        return
    for app in registered_apps(cloud):
        if app == spec.app:
            continue
        key = pipeline_key(app)
        for env_name, members in _registered_targets_by_environment(cloud, app, home).items():
            for function in members:
                if function.arn in wanted:
                    env, field = wanted[function.arn]
                    raise CliError(
                        f"{field}: {_kind(function.arn)} {function.arn} belongs to app {app!r} (environment "
                        f"{env_name!r}, registered at s3://{cloud.outputs.bucket}/{key}); app {spec.app!r} "
                        f"(environment {env.name!r}) may not deploy to it. One target has one owner"
                    )


def registered_apps(cloud: Cloud) -> list[str]:
    """The apps whose pipeline is registered in the bucket, by name."""
    keys = (stored.key for stored in artifacts(cloud).listed(cloud.outputs.bucket, PIPELINE_PREFIX))
    return sorted(key.removeprefix(PIPELINE_PREFIX).removesuffix(".yaml") for key in keys if key.endswith(".yaml"))


def _kind(arn: str) -> str:
    return "Elastic Beanstalk environment" if ":elasticbeanstalk:" in arn else "function"


def _registered_targets_by_environment(cloud: Cloud, app: str, home: Home) -> dict[str, list[TargetId]]:
    """What the targets of ``app``'s registered spec move, by environment; none for a spec that can never deploy
    (one that does not parse, or names another app than its key: ValidateArtifact refuses both)."""
    try:
        spec = show_pipeline(cloud, app)
        return resolve_all_members(spec, home, source="registered") if spec.app == app else {}
    except (CliError, TargetIdentityError):
        return {}


def _registered_targets(cloud: Cloud, app: str, home: Home) -> set[str]:
    """The targets of ``app``'s registered spec (none if it has none, or none that still parses)."""
    return {
        member.arn for members in _registered_targets_by_environment(cloud, app, home).values() for member in members
    }


def environment_lock(cloud: Cloud, app: str, environment: str) -> tuple[LambdaTarget, str]:
    """The target of ``environment`` in ``app``'s registered pipeline (its function as a plain name, as the
    stages call it) and its lock key (the function's canonical ARN)."""
    target = environment_target(cloud, app, environment)
    field = f"pipeline {app}: environment {environment}: target.function_name"
    try:
        function = resolve_function(target.function_name, cloud.home(), field=field)
    except TargetIdentityError as exc:
        raise CliError(str(exc)) from exc
    return canonical_lambda_target(target, function.name), function.arn


def lock_key(cloud: Cloud, app: str, environment: str) -> str:
    """The lock key of ``environment``'s target in ``app``'s registered pipeline, of any kind (a function's
    canonical ARN, or an Elastic Beanstalk environment's)."""
    target = _registered_target(cloud, app, environment)
    try:
        return resolve_target(target, cloud.home(), field=f"pipeline {app}: environment {environment}: target").arn
    except TargetIdentityError as exc:
        raise CliError(str(exc)) from exc


def show_pipeline(cloud: Cloud, app: str) -> PipelineSpec:
    key = pipeline_key(app)
    try:
        raw = artifacts(cloud).read_pipeline(cloud.outputs.bucket, app)
    except (PipelineNotFoundError, ClientError) as exc:
        raise CliError(f"no pipeline registered for {app!r} at s3://{cloud.outputs.bucket}/{key}") from exc
    except PipelineInvalidError as exc:
        raise CliError(str(exc)) from exc
    try:
        return PipelineSpec.from_yaml(raw, f"s3://{cloud.outputs.bucket}/{key}")
    except (PipelineInvalidError, ValidationError) as exc:
        raise CliError(str(exc)) from exc


def _registered_target(cloud: Cloud, app: str, environment: str) -> LambdaTarget | ElasticBeanstalkTarget:
    """The target of ``environment`` in ``app``'s registered pipeline (a CliError naming the others if none)."""
    spec = show_pipeline(cloud, app)
    try:
        return spec.environment(environment).target
    except KeyError as exc:
        names = ", ".join(env.name for env in spec.environments)
        raise CliError(f"pipeline {app!r} has no environment {environment!r} (it has: {names})") from exc


def environment_target(cloud: Cloud, app: str, environment: str) -> LambdaTarget:
    """The Lambda target of ``environment`` in ``app``'s registered pipeline (a CliError for another kind)."""
    target = _registered_target(cloud, app, environment)
    if not isinstance(target, LambdaTarget):
        raise CliError(
            f"pipeline {app!r}: environment {environment!r} targets Elastic Beanstalk ({target.label}); this command "
            "works on Lambda targets only (a failed Beanstalk release is swapped or updated back by its deployment)"
        )
    return target


def ledger(cloud: Cloud) -> DynamoLedger:
    return DynamoLedger(cloud.session, cloud.outputs.ledger_table)


def locks(cloud: Cloud) -> DynamoLocks:
    return DynamoLocks(cloud.session, cloud.outputs.ledger_table)


def target_owners(cloud: Cloud) -> DynamoTargetOwners:
    return DynamoTargetOwners(cloud.session, cloud.outputs.ledger_table)


def targets(cloud: Cloud) -> LambdaTargets:
    return LambdaTargets(cloud.session)


def artifacts(cloud: Cloud) -> S3Artifacts:
    return S3Artifacts(cloud.session)


def executions(cloud: Cloud) -> StepFunctionsExecutions:
    return StepFunctionsExecutions(cloud.session)


def execution_state(cloud: Cloud, execution_arn: str) -> ExecutionState:
    """The execution as Step Functions describes it; status UNKNOWN when it cannot be described."""
    try:
        return executions(cloud).describe(execution_arn)
    except (ClientError, BotoCoreError):
        return ExecutionState(execution_arn=execution_arn, state_machine_arn="", name="", status="UNKNOWN")


RUNNING_EXECUTIONS_SCANNED = 100
"""How many running executions ``running_execution_of`` reads (the newest first) to find a deployment's."""


def running_execution_of(cloud: Cloud, deployment_id: str) -> str | None:
    """The running execution deploying ``deployment_id`` (its input names the pushed object), if any.

    Only asked when the ledger has no record of the deployment: between the push and ValidateArtifact
    (or ClaimDeployment) an execution exists that the ledger does not know yet.
    """
    try:
        for running in executions(cloud).running(cloud.outputs.state_machine_arn, limit=RUNNING_EXECUTIONS_SCANNED):
            try:
                pushed = PushedObject.from_event(json.loads(running.input or "{}"))
            except (ValueError, ArtifactLayoutError):
                continue
            if pushed.deployment_id == deployment_id:
                return running.execution_arn
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"cannot list the executions of {cloud.outputs.state_machine_arn}: {exc}") from exc
    return None


def wait(
    cloud: Cloud,
    deployment_id: str,
    *,
    timeout: float,
    on_event: Callable[[StageEvent, float], None] | None = None,
    appear_within: float | None = None,
) -> DeploymentRecord:
    """Follow a deployment until it has ended and its execution has stopped.

    With ``appear_within``, a deployment that no execution recorded by then, and that no running execution is
    deploying, ends the wait with ``NotStartedError`` (a push nothing picked up) instead of waiting ``timeout``.
    """
    return wait_for(
        ledger(cloud),
        deployment_id,
        execution_status=lambda arn: execution_state(cloud, arn).status,
        timeout=timeout,
        on_event=on_event,
        appear_within=appear_within,
        still_starting=lambda: running_execution_of(cloud, deployment_id) is not None,
    )


S3_TIME_PRECISION = timedelta(seconds=1)
"""S3's ``LastModified`` is to the second: a push in the same second as the newest record may be the newer."""


@dataclass(frozen=True)
class Latest:
    """The latest deployment, and the pushed object it comes from when the ledger does not know it yet."""

    deployment_id: str
    pushed_object: str | None = None
    """``s3://bucket/key (version ...)`` when the deployment was found by its push, not in the ledger."""


def newest_push(cloud: Cloud) -> tuple[str, datetime] | None:
    """The key and time of the newest bundle under ``artifacts/`` (None if none, or the bucket cannot be listed:
    a CI role may push without the right to list)."""
    newest: tuple[str, datetime] | None = None
    try:
        for stored in artifacts(cloud).listed(cloud.outputs.bucket, ARTIFACT_PREFIX):
            if stored.last_modified is not None and (newest is None or stored.last_modified > newest[1]):
                newest = (stored.key, stored.last_modified)
    except (ClientError, BotoCoreError):
        return None
    return newest


def latest_deployment(cloud: Cloud) -> Latest | None:
    """The deployment of the newest push, or the newest in the ledger if that is newer (a console re-run).

    Every deployment starts with a push, and its id is derived from the pushed object, so the newest object
    under ``artifacts/`` names the latest deployment even before its execution has recorded it (``aws s3 cp``
    then ``conveyor status --wait``). The ledger answers when the bucket cannot be listed.
    """
    records = ledger(cloud).history(limit=1)
    newest = records[0] if records else None
    pushed = newest_push(cloud)
    if pushed is not None and (newest is None or pushed[1] >= newest.created_at - S3_TIME_PRECISION):
        key = pushed[0]
        try:
            head = artifacts(cloud).head(cloud.outputs.bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise CliError(f"cannot read s3://{cloud.outputs.bucket}/{key}: {exc}") from exc
        version_id = head.version_id
        derived = deployment_id(cloud.outputs.bucket, key, version_id, head.etag)
        if newest is None or derived != newest.deployment_id:
            return Latest(derived, f"s3://{cloud.outputs.bucket}/{key} (version {version_id}), deployment {derived}")
    return Latest(newest.deployment_id) if newest is not None else None
