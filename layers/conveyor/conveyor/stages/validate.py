"""ValidateArtifact: from the S3 event to a checked, recorded deployment ready to roll out."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from conveyor.domain.bundle import open_bundle
from conveyor.domain.contracts import Deployment, ExecutionOptions, PackageRef, ValidateRequest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import (
    ArtifactRejectedError,
    DeploymentNotOwnedError,
    DeploymentSupersededError,
    DowngradeRefusedError,
    ManifestInvalidError,
    PipelineInvalidError,
    VersionConflictError,
)
from conveyor.domain.layout import ArtifactKey, pipeline_key, release_key
from conveyor.domain.manifest import Manifest
from conveyor.domain.outcome import UNFINISHED, Outcome
from conveyor.domain.ownership import claim_targets, resolve_all_members, resolve_targets, with_canonical_targets
from conveyor.domain.pipeline import LambdaTarget, PipelineSpec
from conveyor.domain.ports import ArtifactStore, Executions, Ledger, TargetOwners, Targets
from conveyor.domain.pushed_object import PushedObject
from conveyor.domain.records import DeploymentRecord, ReleaseRecord
from conveyor.domain.target_identity import Home
from conveyor.domain.timing import timed_stage, utcnow
from conveyor.domain.trust import require_bounded_input, require_managed_hooks, require_own_bucket
from conveyor.domain.validation import describe
from conveyor.domain.versions import BuiltVersion, VersionOrder, check_version, is_newer
from conveyor.observability import MetricUnit, logger, metrics

LIVE_LOOKBACK = 5
"""Successes read to find the live one: this deployment itself (a forced re-run) and releases an operator rolled back
everywhere since are passed over."""


def live_deployment(ledger: Ledger, app: str, exclude: str) -> DeploymentRecord | None:
    """The app's most recently finished successful deployment that still serves (what its environments run): one an
    operator rolled back in every environment (``conveyor rollback``) is no longer live, so is not named as such."""
    succeeded = [
        r
        for r in ledger.history(app, limit=LIVE_LOOKBACK, status=Outcome.SUCCEEDED)
        if r.deployment_id != exclude and r.finished_at
    ]
    serving = [
        r
        for r in succeeded
        if not (r.environments and all(e.status is EnvironmentStatus.ROLLED_BACK for e in r.environments.values()))
    ]
    # All of the newest rolled back by hand: the newest success still judges (a downgrade check never goes off).
    return max(serving or succeeded, key=lambda r: r.finished_at or r.created_at, default=None)


def built_version(manifest: Manifest) -> BuiltVersion:
    """The manifest's place in the version order: its version, build time and commit time."""
    return BuiltVersion(version=manifest.version, built_at=manifest.created_at, committed_at=manifest.commit_time)


def recorded_version(record: DeploymentRecord) -> BuiltVersion:
    """A ledger record's place in the version order (a record made before built_at was kept: its creation)."""
    return BuiltVersion(
        version=record.version, built_at=record.built_at or record.created_at, committed_at=record.commit_time
    )


def _conflict(manifest: Manifest, by_whom: str, bound_sha256: str) -> VersionConflictError:
    return VersionConflictError(
        f"{manifest.app} {manifest.version} is immutable: {by_whom} with package sha256 {bound_sha256}, and this "
        f"push carries sha256 {manifest.package.sha256}. Nothing was deployed; push the new build as a new version"
    )


def check_not_downgrade(
    manifest: Manifest,
    live: DeploymentRecord | None,
    *,
    order: VersionOrder,
    allowed: bool,
    where: str,
    started_at: datetime | None = None,
) -> None:
    """Refuse an artifact older than the live one in the pipeline's version order (``conveyor.versions``).

    An older artifact pushed before the newer one went live (``started_at``, its execution's start, is
    earlier than the live deployment's end) is not a downgrade someone asked for but the loser of a race
    of pushes: it ends SUPERSEDED (``DeploymentSupersededError``), changing nothing and paging nobody.
    The live version itself with other content is refused as a ``VersionConflictError``, downgrades allowed or not.
    """
    if live is None:
        return
    if live.version == manifest.version and live.package_sha256 not in (None, manifest.package.sha256):
        # The same version with other content is a conflict however the race went, not a downgrade: the same
        # version is only ordered by build time, so which build went live would decide otherwise.
        raise _conflict(manifest, f"deployment {live.deployment_id} made it live", live.package_sha256)
    if allowed:
        return
    if not is_newer(recorded_version(live), built_version(manifest), order):
        return
    if started_at is not None and live.finished_at is not None and live.finished_at > started_at:
        raise DeploymentSupersededError(
            f"{where}: {manifest.app} {manifest.version} was overtaken: the newer {live.version} (deployment "
            f"{live.deployment_id}) went live at {live.finished_at.isoformat()}, after this push arrived; "
            "nothing was changed"
        )
    raise DowngradeRefusedError(
        f"{where}: {manifest.app} {manifest.version} (built {manifest.created_at.isoformat()}) is older than "
        f"the live {live.version} (deployment {live.deployment_id}"
        f"{f', built {live.built_at.isoformat()}' if live.built_at else ''}) in version_order {order}; "
        "refused as a downgrade. To allow it: pipeline allow_downgrade: true, or start the execution with "
        '{"conveyor": {"allow_downgrade": true}} beside the event (or use conveyor rollback)'
    )


def bind_version(
    manifest: Manifest,
    deployment_id: str,
    *,
    ledger: Ledger,
    executions: Executions,
    live: DeploymentRecord | None,
    force: bool,
) -> tuple[str, str] | None:
    """Bind the app version to its package's sha256, forever; ``(carrier, reason)`` when this push is a duplicate.

    The first deployment of an app version records its content with one conditional write
    (``ReleaseRecord``). After that, a push of the same version:

    - with other content is refused (``VersionConflictError``, both sha256 and the first deployment named);
    - with the same content is the same release. It proceeds when it is the deployment carrying the
      release (a retry or re-run of it), when the carrier ended without making it live (FAILED,
      ROLLED_BACK, ROLLBACK_FAILED, SUPERSEDED, or its execution stopped: this push becomes the carrier,
      a new attempt), when the carrier succeeded but is no longer the app's ``live`` deployment (a newer
      one went live since: deploying it again is a downgrade, which the downgrade check allowed) or an operator
      rolled one of its environments back since (``conveyor rollback``: pushing it again deploys it again), or
      when ``force`` is asked. Otherwise it is a duplicate (SKIPPED_DUPLICATE): the carrier is the live
      deployment, or still in progress.
    """
    mine = ReleaseRecord(
        app=manifest.app,
        version=manifest.version,
        sha256=manifest.package.sha256,
        config_sha256=manifest.config_sha256,
        first_deployment_id=deployment_id,
        deployment_id=deployment_id,
        claimed_at=utcnow(),
    )
    while True:
        bound = ledger.claim_release(mine)
        if bound.sha256 != mine.sha256:
            raise _conflict(manifest, f"it was first deployed by deployment {bound.first_deployment_id}", bound.sha256)
        if bound.config_sha256 not in (None, mine.config_sha256):
            raise VersionConflictError(
                f"{manifest.app} {manifest.version} is immutable: it was first deployed by deployment "
                f"{bound.first_deployment_id} with the same package and another function_config (configuration "
                f"sha256 {bound.config_sha256}; this push's is {mine.config_sha256}). Nothing was deployed; push "
                "the new configuration as a new version"
            )
        if bound.deployment_id == deployment_id:
            return None
        carrier = ledger.get(bound.deployment_id)
        if carrier is not None and not force:
            running = carrier.status in UNFINISHED and (
                carrier.execution_arn is None or executions.ended(carrier.execution_arn) is None
            )
            # Live: the app's newest success, and no environment of it rolled back since (``conveyor rollback``).
            is_live = (
                carrier.status is Outcome.SUCCEEDED
                and live is not None
                and live.deployment_id == carrier.deployment_id
                and all(entry.status is not EnvironmentStatus.ROLLED_BACK for entry in carrier.environments.values())
            )
            if is_live or running:
                state = "already live" if is_live else carrier.status.value
                return carrier.deployment_id, (
                    f"{manifest.app} {manifest.version} with package sha256 {mine.sha256} is the release of "
                    f"deployment {carrier.deployment_id}, which is {state}; nothing to do. "
                    'To deploy it again, start an execution with {"conveyor": {"force": true}} beside the event'
                )
        if ledger.move_release(manifest.app, manifest.version, carrier=bound.deployment_id, to=deployment_id):
            logger.info("new attempt of a release", extra={"previous_carrier": bound.deployment_id})
            return None
        # Another push of the same content moved the carrier first: judge again against it.


def end_as_duplicate(ledger: Ledger, deployment_id: str, carrier: str, reason: str, execution_arn: str) -> None:
    """The push is the same release as ``carrier``'s: recorded on both, nothing deployed, nobody paged.

    Listed on the carrier first (once per execution), then this deployment is closed, only while it is this
    execution's: a retry after either write judges again and writes the same.
    """
    ledger.record_skip(
        carrier,
        {
            "execution_arn": execution_arn,
            "deployment_id": deployment_id,
            "at": utcnow().isoformat(),
            "outcome": Outcome.SKIPPED_DUPLICATE.value,
            "reason": reason,
        },
    )
    if not ledger.set_status(
        deployment_id,
        Outcome.SKIPPED_DUPLICATE,
        owner=execution_arn,
        expected=(Outcome.IN_PROGRESS, Outcome.SKIPPED_DUPLICATE),
        fields={"failure": {"reason": reason, "duplicate_of": carrier}, "finished_at": utcnow().isoformat()},
    ):
        raise DeploymentNotOwnedError(
            f"deployment {deployment_id} is no longer this execution's (closed or claimed by another execution while "
            f"it was validated): not recorded as a duplicate of {carrier}"
        )
    metrics.add_metric(name="DuplicateReleases", unit=MetricUnit.Count, value=1)
    logger.info("duplicate release", extra={"duplicate_of": carrier})


def validate_artifact(
    request: ValidateRequest,
    *,
    artifacts: ArtifactStore,
    ledger: Ledger,
    targets: Targets,
    executions: Executions,
    managed_tag_key: str,
    artifact_bucket: str,
    home: Home,
    owners: TargetOwners,
) -> Deployment:
    require_bounded_input(request.event)  # before it is parsed
    pushed = PushedObject.from_event(request.event)
    require_own_bucket(pushed.bucket, pushed.key, artifact_bucket=artifact_bucket)  # before anything is read
    try:
        options = ExecutionOptions.from_input(request.event)
    except ValidationError as exc:
        raise ArtifactRejectedError(describe("execution input 'conveyor'", exc)) from exc
    logger.set_correlation_id(pushed.deployment_id)
    logger.append_keys(deployment_id=pushed.deployment_id, bucket=pushed.bucket, key=pushed.key)
    where = ArtifactKey.parse(pushed.key)
    logger.append_keys(app=where.app, version=where.version)
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
        members = resolve_all_members(pipeline, home, source=source)
        for environment in pipeline.environments:
            if isinstance(environment.target, LambdaTarget):
                for member in members[environment.name]:
                    targets.ensure_managed(member.name, managed_tag_key)
            require_managed_hooks(environment, targets, tag_key=managed_tag_key, source=source)
        claim_targets(pipeline, home, owners, source=source)  # one owner per function
        check_version(manifest.version, pipeline.version_order, where=pushed.uri)
        environments = with_canonical_targets(pipeline, resolved)
        # The attempt starts here, in one write (ClaimDeployment reset the record and counted the attempt): what the
        # manifest says (built_at for the downgrade checks, commit_time for DORA's lead time) and every environment
        # the release will go through, so each later stage updates its entry in one write and `conveyor status`
        # shows the environments not reached yet.
        started = pushed.ledger_record(request.execution_arn, where.app, where.version).model_copy(
            update={
                "built_at": manifest.created_at,
                "package_sha256": manifest.package.sha256,
                "commit_time": manifest.commit.time if manifest.commit is not None else None,
            }
        )
        if not ledger.start(
            started,
            environments={
                env.name: {"status": EnvironmentStatus.PENDING, **env.target.ledger_fields()} for env in environments
            },
        ):
            raise DeploymentNotOwnedError(
                f"deployment {pushed.deployment_id} is no longer this execution's running attempt (it was closed or "
                "claimed by another execution while it was validated): nothing was started"
            )
        live = live_deployment(ledger, where.app, exclude=pushed.deployment_id)
        check_not_downgrade(
            manifest,
            live,
            order=pipeline.version_order,
            allowed=pipeline.allow_downgrade or options.allow_downgrade,
            where=pushed.uri,
            started_at=request.started_at,
        )
        duplicate = bind_version(
            manifest, pushed.deployment_id, ledger=ledger, executions=executions, live=live, force=options.force
        )
        if duplicate is not None:
            detail.update(package_sha256=manifest.package.sha256, duplicate_of=duplicate[0], status="duplicate")

        package_key = release_key(where.app, manifest.package.sha256)
        package_version = (
            None
            if duplicate is not None
            else artifacts.put_release(pushed.bucket, package_key, bundle.package, manifest.package.sha256)
        )
        detail.update(
            package_sha256=manifest.package.sha256,
            package_key=package_key,
            package_version_id=package_version,
            package_size=manifest.package.size,
            environments=[env.name for env in pipeline.environments],
            commit=manifest.commit.sha if manifest.commit else None,
        )
    if duplicate is not None:
        end_as_duplicate(ledger, pushed.deployment_id, *duplicate, execution_arn=request.execution_arn)
    else:
        logger.info("artifact accepted", extra={"environments": [env.name for env in pipeline.environments]})
    return Deployment(
        deployment_id=pushed.deployment_id,
        app=where.app,
        version=where.version,
        artifact=pushed.artifact(),
        package=PackageRef(
            bucket=pushed.bucket,
            key=package_key,
            sha256=manifest.package.sha256,
            size=manifest.package.size,
            version_id=package_version,
        ),
        manifest=manifest,
        environments=environments,
        notifications=pipeline.notifications,
        execution_arn=request.execution_arn,
        pushed_by=pushed.requester,
        duplicate_of=duplicate[0] if duplicate is not None else None,
        started_at=request.started_at,
        home=home,
        # an execution started with allow_downgrade carries it to the lock's outdated check too
        policy=pipeline.policy.model_copy(update={"allow_downgrade": True})
        if options.allow_downgrade
        else pipeline.policy,
    )


__all__ = ["built_version", "check_not_downgrade", "recorded_version", "validate_artifact"]
