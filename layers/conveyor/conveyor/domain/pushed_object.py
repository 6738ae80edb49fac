"""The pushed object a deployment starts from: the S3 Object Created event, parsed and bounded."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.domain.contracts import ArtifactRef
from conveyor.domain.errors import (
    ArtifactLayoutError,
)
from conveyor.domain.layout import ArtifactKey, deployment_id
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow
from conveyor.domain.validation import describe


class _Bucket(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str


class _Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = Field(default=None, alias="version-id")


class _Detail(BaseModel):
    model_config = ConfigDict(defer_build=True)

    bucket: _Bucket
    object: _Object
    requester: str | None = None


class ObjectCreatedEvent(BaseModel):
    """The EventBridge ``aws.s3 / Object Created`` event that is the execution's input."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: _Detail


class PushedObject(BaseModel):
    """The object a deployment is about, and the deployment id derived from it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    deployment_id: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    requester: str | None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "PushedObject":
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

    def layout(self) -> ArtifactKey | None:
        """The app and version its key names; None for a key outside ``artifacts/<app>/<version>.zip``."""
        try:
            return ArtifactKey.parse(self.key)
        except ArtifactLayoutError:
            return None

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


def unclaimed_record(pushed: PushedObject | None, deployment_id: str, execution_arn: str) -> DeploymentRecord:
    """The record of a deployment that ended before any stage recorded it: the pushed object's, with the app and
    version its key names (``-`` for a key outside the layout); an execution whose input was no S3 event has only
    its deployment id."""
    seed = pushed or PushedObject(
        deployment_id=deployment_id, bucket="", key="", version_id=None, etag=None, size=None, requester=None
    )
    where = seed.layout()
    return seed.ledger_record(execution_arn, where.app if where else "-", where.version if where else "-")
