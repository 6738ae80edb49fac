"""Every failure Conveyor names.

Lambda reports an unhandled exception by its class name, and the state machine's ``Retry``
and ``Catch`` clauses match on that name, so each class here is part of the contract with
``statemachine/deployment.asl.json``. A test checks that every ``ErrorEquals`` in the ASL is
a ``States.*`` name or a class defined in this module.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class: a failure Conveyor understands and can explain to a person."""


class ConfigurationError(ConveyorError):
    """The stage function's environment is missing or has an invalid setting."""


class UnknownStageError(ConveyorError):
    """A state invoked a stage function with a stage it does not serve (the ASL and template.yaml disagree)."""


# --- the artifact and its contracts ------------------------------------------------------
class ArtifactRejectedError(ConveyorError):
    """The pushed object cannot be deployed; nothing was changed."""


class ArtifactLayoutError(ArtifactRejectedError):
    """The object key is not ``artifacts/<app>/<version>.zip``."""


class BundleInvalidError(ArtifactRejectedError):
    """The bundle is not a safe, well-formed zip with ``manifest.json`` and ``package.zip``."""


class ManifestInvalidError(ArtifactRejectedError):
    """``manifest.json`` is missing, not JSON, or violates the manifest schema."""


class DigestMismatchError(ArtifactRejectedError):
    """``package.zip`` does not match the sha256 or size the manifest declares."""


class PipelineNotFoundError(ArtifactRejectedError):
    """No pipeline spec is registered for the app at ``pipelines/<app>.yaml``."""


class PipelineInvalidError(ArtifactRejectedError):
    """The registered pipeline spec is not valid YAML or violates the spec schema."""


class ForeignBucketError(ArtifactRejectedError):
    """The execution's S3 event names a bucket other than Conveyor's own artifact bucket: nothing is read from it."""


class ExecutionInputTooLargeError(ArtifactRejectedError):
    """The execution input is larger than an S3 event can be: refused before it grows the state toward 256 KiB."""


class DowngradeRefusedError(ArtifactRejectedError):
    """The artifact is older than what is live (in the pipeline's version order) and no one allowed a downgrade."""


class VersionInvalidError(ArtifactRejectedError):
    """The version cannot be placed in the pipeline's version order (``semver`` needs a SemVer 2.0 version)."""


class VersionConflictError(ArtifactRejectedError):
    """The app version was first deployed with other content: a version is immutable (both sha256 are named)."""


class ReleaseStoreError(ConveyorError):
    """The release could not be stored at its content address (``releases/<app>/<sha256>/package.zip``)."""


# --- targets -------------------------------------------------------------------------------
class TargetError(ConveyorError):
    """A deployment target cannot be used."""


class TargetNotFoundError(TargetError):
    """The target function named in the pipeline does not exist."""


class TargetNotManagedError(TargetError):
    """The target function does not carry Conveyor's managed tag, so Conveyor may not change it."""


class TargetIdentityError(TargetError):
    """A target's ``function_name`` is not one unqualified function (name, partial ARN or full ARN)."""


class ForeignTargetError(TargetIdentityError):
    """A target's ARN names another account, region or partition than the one Conveyor runs in."""


class TargetClaimedError(TargetError):
    """The target function is claimed by another app's (or environment's) pipeline: one owner per function."""


class TargetReadError(TargetError):
    """Reading the target's alias or a version failed (throttled past the SDK's retries, unavailable, denied)."""


class TargetInvokeError(TargetError):
    """Invoking a function (a synthetic check, a hook) failed: Lambda refused the call, throttled it past the SDK's
    retries, or could not be reached. The function's own error is not this: it is the invocation's answer."""


class DeployFailedError(TargetError):
    """Updating the function's code or publishing its version failed."""


class TrafficShiftError(TargetError):
    """The alias could not be moved to the planned weights."""


class AliasChangedError(TrafficShiftError):
    """The alias changed since it was read (its ``RevisionId`` moved): someone else moved it, so this write did not."""


# --- health and rollback -----------------------------------------------------------------
class MetricsUnavailableError(ConveyorError):
    """CloudWatch could not be read for the per-version Lambda metrics of a health check."""


class AlarmsUnavailableError(ConveyorError):
    """CloudWatch DescribeAlarms failed (throttled past the SDK's retries, unavailable, denied): states unknown."""


class RollbackFailedError(ConveyorError):
    """Restoring the alias failed: a person must act (the notification says what to run)."""


class RestoreIncompleteError(ConveyorError):
    """Restoring a target of several functions failed for some of them (the others were restored)."""

    def __init__(self, restored: dict[str, str | None], failed: dict[str, Exception]) -> None:
        self.restored, self.failed = restored, failed
        done = f"; restored {', '.join(restored)}" if restored else ""
        super().__init__("; ".join(f"{name}: {exc}" for name, exc in failed.items()) + done)


class HookFailedError(ConveyorError):
    """A task-token hook (``migrate`` or a step hook) failed, timed out or stopped sending heartbeats: the
    environment rolls back. The message names the hook, its function and the traffic step."""


class DownMigrationFailedError(RollbackFailedError):
    """The alias was restored, but the down-migration (``migrate.down``) failed: the data is not back where it
    was, so a person must act (the deployment ends ROLLBACK_FAILED)."""


# --- the execution's final errors (raised by the state machine's Fail states) --------------
class DeploymentRolledBackError(ConveyorError):
    """The deployment was rolled back after a failed health check."""


class DeploymentFailedError(ConveyorError):
    """The deployment failed before any traffic moved; nothing was deployed."""


class DeploymentSupersededError(ConveyorError):
    """A newer artifact for the same environment arrived while this deployment waited for the lock."""


class NothingAwaitsDecisionError(ConveyorError):
    """``conveyor approve``/``reject`` named a deployment (or environment) that waits for no decision."""


class DecisionInvalidError(ConveyorError):
    """A decision that cannot be taken as given (a rejection without a reason)."""


class ApproverNotAllowedError(ConveyorError):
    """The caller's AWS identity is not among the environment's ``approval.approvers``."""


class SelfApprovalError(ConveyorError):
    """The identity that pushed a release tried to approve it (refused unless ``approval.allow_self_approval``)."""


class AlreadyApprovedError(ConveyorError):
    """The caller already approved this environment: ``required_approvals`` counts distinct approvers."""


class TaskAnswerError(ConveyorError):
    """Step Functions did not take a decision; ``gone`` when the execution no longer waits for it."""

    def __init__(self, message: str, *, gone: bool) -> None:
        super().__init__(message)
        self.gone = gone


class ApprovalRejectedError(ConveyorError):
    """A person rejected the environment's approval (nothing deployed there), or chose to roll back a paused rollout.

    Sent by ``conveyor reject`` through ``SendTaskFailure``; the cause is "rejected by <who>: <reason>".
    """


# --- locks ---------------------------------------------------------------------------------
class LockLostError(ConveyorError):
    """This execution no longer holds the environment's lock (its fencing token is stale): it must not act."""


class TargetLockedError(ConveyorError):
    """A manual rollback found the target's lock held by a deployment; nothing was changed."""


class NothingToRollBackError(ConveyorError):
    """A manual rollback found no earlier version in the ledger and was not told one; nothing was changed."""


class ReleaseNotFoundError(NothingToRollBackError):
    """A manual rollback was asked for an app version that never went live in that environment; nothing changed."""


class LockWaitTimeoutError(ConveyorError):
    """The environment's lock stayed held by another deployment longer than the pipeline allows to wait."""


class LedgerError(ConveyorError):
    """The deployment ledger could not be read or written."""


class DeploymentNotOwnedError(ConveyorError):
    """The deployment is no longer this execution's running attempt (its execution was stopped and the record
    closed, or another execution claimed it since): a late stage writes nothing into it."""


class EntryChangedError(ConveyorError):
    """An environment's entry changed since it was read (another decision was recorded first): nothing was written."""


class StatusMoveRefusedError(ConveyorError):
    """An environment's recorded status may not move to the one a stage wrote (``may_move``): a late or
    stale stage never writes over a later state, such as SHIFTING over ROLLED_BACK."""


class NotificationError(ConveyorError):
    """The notification could not be published."""


class PipelineNotReadyError(ConveyorError):
    """A pipeline spec names functions or alarms that do not exist, or functions Conveyor may not use
    (without the managed tag): ``pipeline apply`` registers nothing and names each by its field."""


class EventPublishError(ConveyorError):
    """Lifecycle events could not be put on the event bus (after retrying the entries EventBridge refused)."""


# --- gates before anything moves (CheckGates) ---------------------------------------------------
class GateClosedError(ConveyorError):
    """CheckGates stopped the deployment before its environment's lock: nothing was touched there."""


class DeploymentFrozenError(GateClosedError):
    """The environment is frozen (a spec freeze window or a ``conveyor freeze``) and ``on_freeze`` is ``refuse``,
    or the freeze lasts longer than ``freeze_wait_seconds`` allows to wait; the cause names the window or who froze."""


class AlarmFiringError(GateClosedError):
    """An alarm of the environment (``health.alarms``) is in ALARM, or missing, before the deployment touched it."""


class FreezeInvalidError(ConveyorError):
    """``conveyor freeze``/``unfreeze`` was given something it cannot record (no reason, an ``--until`` in the past)."""
