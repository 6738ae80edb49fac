"""ValidateArtifact: from the S3 event to a checked, recorded deployment ready to roll out."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.artifacts import ArtifactStore
from conveyor.bundle import open_bundle
from conveyor.contracts import ArtifactRef, Deployment, ExecutionOptions, Outcome, PackageRef, ValidateRequest
from conveyor.errors import (
    ArtifactLayoutError,
    ArtifactRejectedError,
    DowngradeRefusedError,
    ManifestInvalidError,
    PipelineInvalidError,
)
from conveyor.layout import ArtifactKey, deployment_id, pipeline_key, release_key
from conveyor.ledger import DeploymentRecord, Ledger, TargetOwners, timed_stage, utcnow
from conveyor.manifest import Manifest
from conveyor.observability import MetricUnit, logger, metrics
from conveyor.ownership import claim_targets, resolve_targets, with_canonical_targets
from conveyor.pipeline import PipelineSpec
from conveyor.target_identity import Home
from conveyor.targets import Targets
from conveyor.validation import describe


class _Bucket(BaseModel):
    name: str


class _Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = Field(default=None, alias="version-id")


class _Detail(BaseModel):
    bucket: _Bucket
    object: _Object
    requester: str | None = None


class ObjectCreatedEvent(BaseModel):
    """The EventBridge ``aws.s3 / Object Created`` event that is the execution's input."""

    model_config = ConfigDict(populate_by_name=True)

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: _Detail


class PushedObject(BaseModel):
    """The object a deployment is about, and the deployment id derived from it."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    requester: str | None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> PushedObject:
        try:
            parsed = ObjectCreatedEvent.model_validate(event)
        except ValidationError as exc:
            raise ArtifactLayoutError(describe("execution input (S3 Object Created event)", exc)) from exc
        obj = parsed.detail.object
        bucket = parsed.detail.bucket.name
        return cls(
            deployment_id=deployment_id(bucket, obj.key, obj.version_id, obj.etag),
            bucket=bucket,
            key=obj.key,
            version_id=obj.version_id,
            etag=obj.etag,
            size=obj.size,
            requester=parsed.detail.requester,
        )

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def artifact(self) -> ArtifactRef:
        return ArtifactRef(bucket=self.bucket, key=self.key, version_id=self.version_id, etag=self.etag, size=self.size)

    def ledger_record(self, execution_arn: str, app: str, version: str) -> DeploymentRecord:
        now = utcnow()
        return DeploymentRecord(
            deployment_id=self.deployment_id,
            app=app,
            version=version,
            status=Outcome.IN_PROGRESS,
            created_at=now,
            updated_at=now,
            execution_arn=execution_arn,
            artifact=self.artifact().model_dump(mode="json"),
            pushed_by=self.requester,
        )


def version_key(version: str) -> tuple[Any, ...]:
    """Order of manifest versions: numeric parts numerically, a pre-release (``-rc1``) before its release.

    ``1.10.0 > 1.9.2``, ``2.0.0 > 2.0.0-rc.1``; build metadata (``+...``) is ignored.
    """

    def parts(text: str) -> tuple[tuple[int, int | str], ...]:
        return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[._-]", text) if p)

    release, _, prerelease = version.split("+", 1)[0].partition("-")
    return parts(release), 0 if prerelease else 1, parts(prerelease)


def live_deployment(ledger: Ledger, app: str, exclude: str) -> DeploymentRecord | None:
    """The app's most recently finished successful deployment (what its environments serve)."""
    # The newest two successes: one of them may be this deployment itself (a forced re-run).
    succeeded = [
        r
        for r in ledger.history(app, limit=2, status=Outcome.SUCCEEDED)
        if r.deployment_id != exclude and r.finished_at
    ]
    return max(succeeded, key=lambda r: r.finished_at or r.created_at, default=None)


def check_not_downgrade(manifest: Manifest, live: DeploymentRecord | None, *, allowed: bool, where: str) -> None:
    """Refuse an artifact older than the live one: lower version, or the same version built earlier."""
    if live is None or allowed:
        return
    new, old = version_key(manifest.version), version_key(live.version)
    older = new < old or (new == old and live.built_at is not None and manifest.created_at < live.built_at)
    if older:
        raise DowngradeRefusedError(
            f"{where}: {manifest.app} {manifest.version} (built {manifest.created_at.isoformat()}) is older than "
            f"the live {live.version} (deployment {live.deployment_id}"
            f"{f', built {live.built_at.isoformat()}' if live.built_at else ''}); refused as a downgrade. "
            'To allow it: pipeline allow_downgrade: true, or start the execution with {"conveyor": '
            '{"allow_downgrade": true}} beside the event (or use conveyor rollback)'
        )


def validate_artifact(
    request: ValidateRequest,
    *,
    artifacts: ArtifactStore,
    ledger: Ledger,
    targets: Targets,
    managed_tag_key: str,
    home: Home,
    owners: TargetOwners,
) -> Deployment:
    pushed = PushedObject.from_event(request.event)
    try:
        options = ExecutionOptions.from_input(request.event)
    except ValidationError as exc:
        raise ArtifactRejectedError(describe("execution input 'conveyor'", exc)) from exc
    logger.set_correlation_id(pushed.deployment_id)
    logger.append_keys(deployment_id=pushed.deployment_id, bucket=pushed.bucket, key=pushed.key)
    where = ArtifactKey.parse(pushed.key)
    logger.append_keys(app=where.app, version=where.version)
    ledger.start(pushed.ledger_record(request.execution_arn, where.app, where.version))
    metrics.add_metric(name="DeploymentsStarted", unit=MetricUnit.Count, value=1)

    with timed_stage(ledger, pushed.deployment_id, "ValidateArtifact") as detail:
        bundle = open_bundle(artifacts.read_bundle(pushed.bucket, pushed.key, pushed.version_id), pushed.uri)
        manifest = bundle.manifest
        if (manifest.app, manifest.version) != (where.app, where.version):
            raise ManifestInvalidError(
                f"{pushed.uri}: manifest.json says app={manifest.app!r} version={manifest.version!r} "
                f"but the key says app={where.app!r} version={where.version!r}"
            )
        source = f"s3://{pushed.bucket}/{pipeline_key(where.app)}"
        pipeline = PipelineSpec.from_yaml(artifacts.read_pipeline(pushed.bucket, where.app), source)
        if pipeline.app != where.app:
            raise PipelineInvalidError(f"{source}: app is {pipeline.app!r}, expected {where.app!r}")
        resolved = resolve_targets(pipeline, home, source=source)  # functions of our own account and region only
        for environment in pipeline.environments:
            targets.ensure_managed(resolved[environment.name].name, managed_tag_key)
        claim_targets(pipeline, home, owners, source=source)  # one owner per function
        recorded = {"built_at": manifest.created_at.isoformat()}
        if manifest.commit is not None:
            recorded["commit_time"] = manifest.commit.time.isoformat()  # lead time for changes (DORA)
        ledger.set_fields(pushed.deployment_id, recorded)
        check_not_downgrade(
            manifest,
            live_deployment(ledger, where.app, exclude=pushed.deployment_id),
            allowed=pipeline.allow_downgrade or options.allow_downgrade,
            where=pushed.uri,
        )

        package_key = release_key(where.app, where.version)
        artifacts.put_release(pushed.bucket, package_key, bundle.package, manifest.package.sha256)
        detail.update(
            package_sha256=manifest.package.sha256,
            package_size=manifest.package.size,
            environments=[env.name for env in pipeline.environments],
            commit=manifest.commit.sha if manifest.commit else None,
        )
    logger.info("artifact accepted", extra={"environments": [env.name for env in pipeline.environments]})
    return Deployment(
        deployment_id=pushed.deployment_id,
        app=where.app,
        version=where.version,
        artifact=pushed.artifact(),
        package=PackageRef(
            bucket=pushed.bucket, key=package_key, sha256=manifest.package.sha256, size=manifest.package.size
        ),
        manifest=manifest,
        environments=with_canonical_targets(pipeline, resolved),
        notifications=pipeline.notifications,
        execution_arn=request.execution_arn,
        pushed_by=pushed.requester,
        started_at=request.started_at,
        home=home,
        # an execution started with allow_downgrade carries it to the lock's outdated check too
        policy=pipeline.policy.model_copy(update={"allow_downgrade": True})
        if options.allow_downgrade
        else pipeline.policy,
    )


__all__ = ["PushedObject", "check_not_downgrade", "validate_artifact", "version_key"]
