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

from pydantic import BaseModel, ConfigDict, Field

from conveyor.manifest import Manifest
from conveyor.pipeline import EnvironmentSpec, Notifications, TrafficStep


class Outcome(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"


Verdict = Literal["pass", "fail", "inconclusive"]


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


class CheckResult(_Result):
    name: str
    kind: Literal["synthetic", "alarm"]
    status: Verdict
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class HealthVerdict(_Result):
    status: Verdict
    reason: str
    weight: int
    checks: list[CheckResult]
    evaluated_at: datetime


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
class ValidateRequest(_Request):
    event: dict[str, Any]
    execution_arn: str
    started_at: datetime


class EnvironmentStep(_Request):
    """The state of one environment's iteration of the rollout loop."""

    deployment: Deployment
    environment: EnvironmentSpec
    release: Release | None = None
    traffic: TrafficState | None = None
    health: HealthVerdict | None = None
    failure: Failure | None = None


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


class Report(_Result):
    """The end of a deployment: what NotifyFailure and Finalize return."""

    deployment_id: str
    outcome: Outcome
    reason: str = ""
    error: str | None = None
    notified: bool = False
