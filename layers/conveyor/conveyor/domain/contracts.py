"""What flows between the states of ``statemachine/deployment.asl.json``.

Each stage function parses its input into one of these models and returns one; the ASL
places results with ``ResultPath``. Request models ignore keys they do not use (the state
carries more than any one stage needs); results are exact.
"""

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.domain.hooks import HookCall
from conveyor.domain.limits import MAX_CHECK_REASON_BYTES, MAX_VERDICT_BYTES, clip, json_bytes
from conveyor.domain.manifest import Manifest
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import EnvironmentSpec, Notifications, RolloutPolicy, TrafficStep
from conveyor.domain.target_identity import Home
from conveyor.domain.versions import BuiltVersion

Verdict = Literal["pass", "fail", "inconclusive"]


class _Result(BaseModel):
    # Every model of the library defers building its validator to its first use: a stage function builds
    # only the models of the stages it serves, when it first serves them, not all of them at cold start.
    model_config = ConfigDict(frozen=True, defer_build=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class ArtifactRef(_Result):
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None


class PackageRef(_Result):
    """The extracted ``package.zip`` under ``releases/<app>/<sha256>/``, which Lambda is updated from.

    ``version_id`` is the S3 object version validated: Deploy reads exactly it (``S3ObjectVersion``).
    """

    bucket: str
    key: str
    sha256: str
    size: int
    version_id: str | None = Field(default=None, description="None only in a bucket without versioning")


class Deployment(_Result):
    """Produced by ValidateArtifact; carried through the whole execution."""

    deployment_id: str
    app: str
    version: str
    artifact: ArtifactRef
    package: PackageRef
    manifest: Manifest
    environments: list[EnvironmentSpec]
    notifications: Notifications
    execution_arn: str
    pushed_by: str | None = None
    started_at: datetime
    policy: RolloutPolicy = Field(default_factory=RolloutPolicy)
    home: Home = Field(description="the account and region Conveyor runs in: every target resolves against it")
    duplicate_of: str | None = Field(
        default=None,
        description="the deployment carrying the same release (app version and content) when this push is a "
        "duplicate of it: the execution ends at once (DuplicateRelease), nothing deployed",
    )

    @property
    def built_version(self) -> BuiltVersion:
        """This release's place in the pipeline's version order."""
        return BuiltVersion(
            version=self.version, built_at=self.manifest.created_at, committed_at=self.manifest.commit_time
        )


class ServedRelease(BaseModel):
    """What one alias serves (``pk=SERVED#<function>#<alias>``): written when Conveyor moves it to a release.

    The source of truth for "which release is live here" (the lock's outdated check reads it); the Lambda
    version's description is informative only. ``lambda_version`` is the version the alias pointed at when
    this was written: a record whose ``lambda_version`` is not what the alias serves now is stale (the alias
    was moved outside Conveyor) and says nothing.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    function_name: str
    alias: str
    app: str
    version: str
    deployment_id: str
    sha256: str
    lambda_version: str
    built_at: datetime
    committed_at: datetime | None = None
    recorded_at: datetime
    recorded_by: str = Field(description="the stage or operator action that moved the alias")

    @classmethod
    def of(cls, deployment: Deployment, release: "Release", *, recorded_by: str) -> "ServedRelease":
        """What ``release``'s alias serves once ``deployment`` moved it to its new version at 100%."""
        return cls(
            function_name=release.function_name,
            alias=release.alias,
            app=deployment.app,
            version=deployment.version,
            deployment_id=deployment.deployment_id,
            sha256=deployment.package.sha256,
            lambda_version=release.version_after,
            built_at=deployment.manifest.created_at,
            committed_at=deployment.manifest.commit_time,
            recorded_at=datetime.now(UTC),
            recorded_by=recorded_by,
        )

    @property
    def built_version(self) -> BuiltVersion:
        return BuiltVersion(version=self.version, built_at=self.built_at, committed_at=self.committed_at)

    def serves(self, lambda_version: str | None) -> bool:
        """Whether this record still describes an alias that points at ``lambda_version`` (else it is stale)."""
        return lambda_version == self.lambda_version


class BeanstalkRelease(_Result):
    """Where an Elastic Beanstalk release runs: which environment served production when Deploy read it, and
    which one the new application version was deployed to (the same one for ``all_at_once``; the idle one for
    ``blue_green``, whose CNAME is swapped with the live one's at 100%)."""

    application: str
    live_environment: str
    deployed_environment: str
    cname_prefix: str | None = Field(default=None, description="blue_green: the production CNAME's prefix")

    @property
    def blue_green(self) -> bool:
        return self.deployed_environment != self.live_environment


class Release(_Result):
    """The new version published on an environment's target, and what its alias served before.

    For an Elastic Beanstalk target, ``function_name`` and ``alias`` are the spec's application and
    environment (the ledger's names for the target), the versions are application version labels, and
    ``beanstalk`` says which environment serves and which one was deployed to.
    """

    environment: str
    function_name: str
    alias: str
    version_before: str | None
    version_after: str
    code_sha256: str
    reused: bool = Field(
        description="the target already held this code and configuration: nothing was uploaded, and Lambda answered "
        "with the version it had published for it"
    )
    served_before: ServedRelease | None = Field(
        default=None, description="the release the alias served before (from the ledger); RollBack records it again"
    )
    alias_revision: str | None = Field(
        default=None,
        description="the alias's RevisionId when version_before was read: the first ShiftTraffic moves the alias "
        "only if nobody else did since",
    )
    already_serving: bool = Field(
        default=False,
        description="the alias already served version_after when it was read (a re-run, or a re-push, of a release "
        "live there): the rollout moves no traffic back, and a failed check still restores version_before",
    )
    beanstalk: BeanstalkRelease | None = None
    companions: "list[Release]" = Field(
        default_factory=list,
        description="a target of several functions: the release of each function after the first (same environment "
        "and alias), moved, judged and restored with it",
    )

    @property
    def members(self) -> "list[Release]":
        """Every function's release: this one (the target's first function), then its companions."""
        return [self, *self.companions]

    def member(self, function_name: str) -> "Release":
        """The release of one of the target's functions."""
        return next(release for release in self.members if release.function_name == function_name)


class TrafficState(_Result):
    steps: list[TrafficStep]
    index: int
    weight: int
    wait_seconds: int
    complete: bool
    started_at: datetime | None = Field(default=None, description="when the alias took this step's weight")
    alias_revision: str | None = Field(
        default=None, description="the alias's RevisionId after this step: the next step's write is conditioned on it"
    )
    companion_revisions: dict[str, str | None] = Field(
        default_factory=dict, description="alias_revision of each companion function (Release.companions), by name"
    )
    hooks: list[HookCall] = Field(
        default_factory=list, description="the step hooks due at this step (RunStepHooks runs them, in order)"
    )


class CheckResult(_Result):
    name: str
    kind: Literal["synthetic", "alarm", "metrics", "http", "hook", "environment"]
    status: Verdict
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class HealthVerdict(_Result):
    status: Verdict
    reason: str
    weight: int
    checks: list[CheckResult]
    evaluated_at: datetime
    step: int | None = Field(default=None, description="the traffic step judged (1-based)")
    inconclusive_count: int = Field(default=0, description="inconclusive verdicts in a row at this step")
    retry_after_seconds: int = Field(default=0, description="when inconclusive: wait this long, then judge again")

    def within(self, max_bytes: int = MAX_VERDICT_BYTES) -> "HealthVerdict":
        """This verdict as the state may carry it: at most ``max_bytes`` as JSON.

        Every environment's last verdict stays in the execution's state, and checks answer with what
        others wrote (a hook's detail, a response): evidence goes first (the ledger keeps it), then
        the reasons are clipped, each to an equal share of what is left.
        """
        if json_bytes(self.model_dump(mode="json")) <= max_bytes:
            return self
        checks = [c.model_copy(update={"evidence": {}, "reason": ""}) for c in self.checks]
        bare = self.model_copy(update={"checks": checks, "reason": ""})
        share = max(0, (max_bytes - json_bytes(bare.model_dump(mode="json"))) // (len(checks) + 1))
        share = min(share, MAX_CHECK_REASON_BYTES)
        clipped = [
            check.model_copy(update={"reason": clip(original.reason, share)})
            for check, original in zip(checks, self.checks, strict=True)
        ]
        return bare.model_copy(update={"reason": clip(self.reason, share), "checks": clipped})


class HookPayload(_Result):
    """What a pre-traffic or post-traffic hook Lambda receives."""

    phase: Literal["pre_traffic", "post_traffic"]
    deployment_id: str
    app: str
    version: str = Field(description="the app's release version (from the manifest)")
    environment: str
    function_name: str
    alias: str
    function_version: str = Field(description="the Lambda version under test")
    previous_version: str | None
    weight: int = Field(description="percent of the alias's traffic on the new version right now")


class HookResult(_Request):
    """What a hook must answer."""

    status: Literal["pass", "fail"]
    detail: str = ""


class RollbackResult(_Result):
    environment: str
    function_name: str
    alias: str
    restored_version: str | None
    rolled_back_from: str | None = Field(
        description="the version the target was moved off; null: traffic had not moved (the new version never served)"
    )
    duration_ms: float
    reason: str
    recorded: bool = Field(default=True, description="false: the alias was restored but the ledger could not say so")
    companions: "list[RollbackResult]" = Field(
        default_factory=list, description="the companion functions restored with this one (Release.companions)"
    )


class Failure(_Request):
    """What a ``Catch`` with ``ResultPath`` puts in the state: the error name and its cause."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str = Field(default="", alias="Cause")

    @field_validator("cause", mode="before")
    @classmethod
    def _no_cause(cls, value: Any) -> Any:
        # SendTaskFailure's cause is optional: a Catch then carries "Cause": null.
        return "" if value is None else value

    @property
    def message(self) -> str:
        """The human part of the cause: a Lambda error's ``errorMessage`` or the cause itself."""
        try:
            document = json.loads(self.cause)
        except (json.JSONDecodeError, TypeError):
            return self.cause
        if isinstance(document, dict) and "errorMessage" in document:
            return str(document["errorMessage"])
        return self.cause


# --- requests ----------------------------------------------------------------------------
class ExecutionOptions(_Request):
    """What an operator may add to the execution input, beside the S3 event: ``{"conveyor": {...}}``.

    A console re-run of a live artifact is a no-op unless ``force``; an artifact older than what is
    live is refused unless ``allow_downgrade`` (or the pipeline's ``allow_downgrade``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    force: bool = False
    allow_downgrade: bool = False

    @classmethod
    def from_input(cls, execution_input: dict[str, Any]) -> "ExecutionOptions":
        return cls.model_validate(execution_input.get("conveyor") or {})


class ValidateRequest(_Request):
    event: dict[str, Any]
    execution_arn: str
    started_at: datetime


class ClaimRequest(_Request):
    event: dict[str, Any]
    execution_arn: str
    started_at: datetime


class Claim(_Result):
    """ClaimDeployment's decision: go on, or end this execution at once without notifying anyone."""

    deployment_id: str
    decision: Literal["proceed", "duplicate", "already_live"]
    reason: str
    owner_execution_arn: str | None = Field(default=None, description="the execution that owns the deployment")


class GateResult(_Result):
    """CheckGates' decision for one environment, under its lock: ``open`` goes on to Deploy, ``wait``
    waits ``wait_seconds`` (WaitForGate) and asks again, ``frozen`` and ``alarm`` end the deployment
    (DeploymentFrozenError, AlarmFiringError) with ``reason`` as the cause. Nothing is touched before ``open``."""

    decision: "GateDecision"
    environment: str
    reason: str = ""
    checked_at: datetime
    waiting_since: datetime | None = Field(
        default=None, description="when this environment's gate first found it frozen (the wait budget counts from it)"
    )
    frozen_until: datetime | None = Field(default=None, description="when the freeze ends; None: until unfrozen")
    wait_seconds: int = Field(default=0, description="when waiting: ask again after this long")
    checks: int = Field(default=1, description="how many times the gate was asked in this environment")


class LockGrant(_Result):
    """AcquireLock's answer for one environment's target; ``token`` fences every mutating stage."""

    status: Literal["acquired", "waiting", "superseded"]
    app: str
    environment: str
    target: str = Field(description="the lock's key: the target function's canonical ARN")
    holder: str = Field(description="the execution this grant belongs to")
    token: int | None = None
    lease_seconds: int = 0
    wait_seconds: int = Field(default=0, description="when waiting: poll again after this long")
    position: int | None = Field(default=None, description="when waiting: 1 = next in line")
    waiting_for: str | None = Field(default=None, description="the deployment holding the lock")
    alias_version: str | None = Field(
        default=None, description="when acquired: the version the target's alias served (None: no alias yet)"
    )
    alias_revision: str | None = Field(
        default=None, description="when acquired: the alias's RevisionId then; Deploy and ShiftTraffic build on it"
    )
    served: ServedRelease | None = Field(
        default=None, description="when acquired: the release the ledger says the alias served then, if any"
    )
    alias_read: bool = Field(
        default=False, description="when acquired: the alias and what it served were read under the lock (above)"
    )
    companion_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="when acquired, a target of several functions: the lock of each companion function (by key) and "
        "its token, held with this one and fenced with it",
    )
    gate: GateResult | None = Field(
        default=None,
        description="when acquired: CheckGates' decision, asked in the same call; CheckGates replaces it when it "
        "asks again after WaitForGate",
    )


GateDecision = Literal["open", "wait", "frozen", "alarm"]


class EnvironmentStep(_Request):
    """The state of one environment's iteration of the rollout loop."""

    deployment: Deployment
    environment: EnvironmentSpec
    release: Release | None = None
    traffic: TrafficState | None = None
    health: HealthVerdict | None = None
    failure: Failure | None = None
    lock: LockGrant | None = None


class ApprovalRequest(_Request):
    """What RequestApproval receives from a ``lambda:invoke.waitForTaskToken`` task.

    ``approval``: the environment's gate, before its lock. ``decision``: a rollout paused on an
    inconclusive verdict (``on_inconclusive: pause``), traffic already moved. The task token is a
    credential to resume the execution: stored in the ledger, never logged or shown.
    """

    kind: Literal["approval", "decision"]
    task_token: str = Field(min_length=1, repr=False)
    deployment: Deployment
    environment: EnvironmentSpec
    release: Release | None = None
    traffic: TrafficState | None = None
    health: HealthVerdict | None = None


class ApprovalTicket(_Result):
    """RequestApproval's answer (the state machine waits for the person's decision, not for this)."""

    deployment_id: str
    environment: str
    kind: Literal["approval", "decision"]
    requested_at: datetime
    expires_at: datetime
    message_id: str


class ApprovalDecision(_Result):
    """What ``conveyor approve`` sends back through ``SendTaskSuccess`` (the task's result)."""

    decision: Literal["approve", "promote"]
    by: str
    reason: str | None = None


class EnvironmentResult(_Request):
    """What an environment's iteration returns when its new version is live."""

    release: Release
    traffic: TrafficState
    health: HealthVerdict


class FinalizeRequest(_Request):
    deployment: Deployment
    environments: list[EnvironmentResult]


class FailureRequest(_Request):
    execution_input: dict[str, Any]
    execution_arn: str
    failure: Failure
    started_at: datetime | None = Field(default=None, description="the execution's start (its place in lock queues)")


class Report(_Result):
    """The end of a deployment: what NotifyFailure and Finalize return."""

    deployment_id: str
    outcome: Outcome
    reason: str = ""
    error: str | None = None
    notified: bool = False


class ExecutionEnded(_Request):
    """The ``detail`` of a Step Functions "Execution Status Change" event (AWS's field names)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    execution_arn: str = Field(alias="executionArn", min_length=1)
    state_machine_arn: str = Field(alias="stateMachineArn", min_length=1)
    name: str = ""
    status: str
    start_date: datetime | None = Field(default=None, alias="startDate", description="epoch milliseconds on AWS")
    stop_date: datetime | None = Field(default=None, alias="stopDate")
    input: str | None = Field(default=None, repr=False, description="the execution input, as a JSON string")
    error: str | None = None
    cause: str | None = None


class ExecutionStatusChange(_Request):
    """The EventBridge event ``aws.states / Step Functions Execution Status Change`` that Reconcile receives."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    detail: ExecutionEnded
    by_operator: bool = Field(
        default=False,
        alias="conveyor-operator",
        description="set by `conveyor reconcile`, which invokes the reconciler and shows its answer to the operator",
    )


class Reconciliation(_Result):
    """What Reconcile did about an execution that ended (idempotent: a second run finds nothing left to do)."""

    execution_arn: str
    status: str
    action: Literal["ignored", "not_owner", "reconciled"]
    deployment_id: str | None = None
    outcome: Outcome | None = None
    restored: list[str] = Field(default_factory=list, description="environments whose alias was restored now")
    left_alone: dict[str, str] = Field(default_factory=dict, description="environments not touched, and why")
    released: list[str] = Field(default_factory=list, description="environments whose lock was released")
    closed: bool = Field(default=False, description="the ledger record was closed by this run")
    message_id: str | None = None
