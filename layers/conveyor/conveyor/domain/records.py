"""What the ledger stores: deployments, their stage events, releases, locks and target owners.

These are the domain's records, read and written through the ports in ``conveyor.domain.ports``;
how they sit in DynamoDB (keys, attribute names) is the adapters' business
(``conveyor.adapters.dynamodb_ledger``, ``conveyor.adapters.dynamodb_locks``).
"""

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conveyor.domain.environment import EnvironmentEntry
from conveyor.domain.outcome import Outcome
from conveyor.domain.versions import BuiltVersion

FAILED = "failed"
"""A stage event's status when the stage failed (``timed_stage`` records every other status as it is given)."""


class StageEvent(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    deployment_id: str
    stage: str
    environment: str | None = None
    status: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    detail: dict[str, Any] = Field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether the stage failed: ``failed``, the one spelling stages write (``fail`` is how EvaluateHealth
        recorded a failed verdict before, still read from older records)."""
        return self.status in (FAILED, "fail")


class DeploymentRecord(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    deployment_id: str
    app: str
    version: str
    status: Outcome
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    attempts: int = 1
    execution_arn: str | None = None
    artifact: dict[str, Any] = Field(default_factory=dict)
    package_sha256: str | None = None
    pushed_by: str | None = None
    commit_time: datetime | None = None
    environments: dict[str, EnvironmentEntry] = Field(default_factory=dict)
    failure: dict[str, Any] | None = None
    built_at: datetime | None = Field(default=None, description="the manifest's created_at (for downgrade checks)")
    skipped_count: int = Field(default=0, description="executions of this object that ended without acting")
    skipped: list[dict[str, Any]] = Field(default_factory=list, description="each skipped execution and why")
    events: list[StageEvent] = Field(default_factory=list)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()


class ReleaseRecord(BaseModel):
    """One app version and the only content it may ever carry (``pk=RELEASE#<app>#<version>``).

    ``first_deployment_id`` took the version (never changes); ``deployment_id`` is the deployment that
    carries it now: the first, or a later push of the same content that made a new attempt after it failed.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    app: str
    version: str
    sha256: str
    config_sha256: str | None = Field(
        default=None, description="the digest of its function configuration (Manifest.config_sha256); none if older"
    )
    first_deployment_id: str
    deployment_id: str
    claimed_at: datetime = Field(description="not created_at: the by-app index must list deployments only")


class LockState(BaseModel):
    """The lock of one target function: who holds it, until when, and its fencing token."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    holder: str | None = Field(default=None, description="the holding execution's ARN; None when free")
    deployment_id: str | None = None
    app: str | None = Field(default=None, description="the holder's app (for status and history)")
    environment: str | None = Field(default=None, description="the holder's environment of that app")
    token: int = Field(default=0, description="incremented on every acquisition; never reused")
    expires_at: float = Field(default=0.0, description="lease end, epoch seconds")

    def free_at(self, now: float) -> bool:
        return self.holder is None or self.expires_at < now


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Waiter(BaseModel):
    """One execution waiting in a target's queue; ``key`` is its arrival (start time, then execution ARN)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    key: str
    holder: str
    deployment_id: str
    app: str
    environment: str
    version: str
    built_at: datetime | None = Field(default=None, description="the release's build time (version_order: build_time)")
    committed_at: datetime | None = None
    first_seen: float
    last_seen: float
    superseded_by: str | None = None

    @property
    def built_version(self) -> BuiltVersion:
        """The waiter's place in the version order (a waiter stored without a build time sorts as built at 0)."""
        return BuiltVersion(version=self.version, built_at=self.built_at or _EPOCH, committed_at=self.committed_at)


class TargetClaim(BaseModel):
    """Which app's pipeline (and which of its environments) owns a target function."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    target: str = Field(description="the function's canonical ARN")
    app: str
    environment: str
    claimed_at: datetime | None = None
