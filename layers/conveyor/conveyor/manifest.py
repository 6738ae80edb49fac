"""The bundle's ``manifest.json``: what was built, from which commit, and its package's digest."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from conveyor.errors import ManifestInvalidError
from conveyor.layout import AppName, Version
from conveyor.validation import describe

MANIFEST_NAME = "manifest.json"
PACKAGE_NAME = "package.zip"

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,127}$")]

# Lambda's own reserved variables may not be set by a function's configuration.
_RESERVED_ENV = frozenset(
    {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
)


def base64_digest(sha256_hex: str) -> str:
    """AWS reports digests (Lambda ``CodeSha256``, S3 ``ChecksumSHA256``) as base64; manifests carry hex."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageInfo(_Strict):
    sha256: Sha256Hex
    size: int = Field(gt=0, description="bytes of package.zip")


class CommitInfo(_Strict):
    sha: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{7,64}$")]
    time: AwareDatetime


class BuildInfo(_Strict):
    id: str | None = Field(default=None, max_length=256)
    url: str | None = Field(default=None, max_length=2048)


class FunctionConfig(_Strict):
    """Configuration deployed with the code, so a config-only change also publishes a new version."""

    environment: dict[EnvVarName, Annotated[str, StringConstraints(max_length=4096)]] | None = None
    memory_mb: int | None = Field(default=None, ge=128, le=10240)
    timeout_seconds: int | None = Field(default=None, ge=1, le=900)

    @field_validator("environment")
    @classmethod
    def _no_reserved_variables(cls, environment: dict[str, str] | None) -> dict[str, str] | None:
        reserved = sorted(set(environment or {}) & _RESERVED_ENV)
        if reserved:
            raise ValueError(f"sets reserved Lambda variables: {', '.join(reserved)}")
        return environment


class Manifest(_Strict):
    schema_version: Literal[1]
    app: AppName
    version: Version
    package: PackageInfo
    created_at: AwareDatetime
    commit: CommitInfo | None = None
    build: BuildInfo | None = None
    function_config: FunctionConfig | None = None

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestInvalidError(f"{MANIFEST_NAME}: not valid JSON ({exc})") from exc
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise ManifestInvalidError(describe(MANIFEST_NAME, exc)) from exc

    @property
    def commit_time(self) -> datetime | None:
        return self.commit.time if self.commit else None
