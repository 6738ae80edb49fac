"""What flows between the states of ``statemachine/deployment.asl.json``.

Each stage function parses its input into one of these models and returns one; the ASL
places results with ``ResultPath``. Request models ignore keys they do not use (the state
carries more than any one stage needs); results are exact.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.manifest import Manifest
from conveyor.pipeline import EnvironmentSpec, Notifications, RolloutPolicy, TrafficStep
from conveyor.target_identity import Home


class Outcome(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    QUEUED = "QUEUED"
    """Waiting for an environment's lock held by another deployment (not terminal)."""
    SUPERSEDED = "SUPERSEDED"
    """A newer artifact arrived while this one waited for a lock; nothing was deployed."""
    SKIPPED_DUPLICATE = "SKIPPED_DUPLICATE"
    """Only ever on a skipped execution's entry (``DeploymentRecord.skipped``), never a deployment's status."""


Verdict = Literal["pass", "fail", "inconclusive"]

AWAITING_APPROVAL = "AWAITING_APPROVAL"
"""An environment entry's status while its execution waits for a person (``conveyor approve``/``reject``)."""


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ArtifactRef(_Result):
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None


class PackageRef(_Result):
    """The extracted ``package.zip`` under ``releases/``, which Lambda is updated from."""

    bucket: str
    key: str
    sha256: str
    size: int


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


class Release(_Result):
    """The new version published on an environment's target, and what its alias served before."""

    environment: str
    function_name: str
    alias: str
    version_before: str | None
    version_after: str
    code_sha256: str
    reused: bool = Field(description="an existing version with the same code and configuration was reused")


class TrafficState(_Result):
    steps: list[TrafficStep]
    index: int
    weight: int
    wait_seconds: int
    complete: bool
    started_at: datetime | None = Field(default=None, description="when the alias took this step's weight")


class CheckResult(_Result):
    name: str
    kind: Literal["synthetic", "alarm", "metrics", "http", "hook"]
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
    rolled_back_from: str
    duration_ms: float
    reason: str


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
    def from_input(cls, execution_input: dict[str, Any]) -> ExecutionOptions:
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
