"""The bundle's ``manifest.json``: what was built, from which commit, and its package's digest."""

import base64
import hashlib
import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from conveyor.domain.errors import ManifestInvalidError
from conveyor.domain.layout import AppName, Version
from conveyor.domain.limits import MAX_MANIFEST_BYTES, json_bytes
from conveyor.domain.validation import describe

MANIFEST_NAME = "manifest.json"
PACKAGE_NAME = "package.zip"

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,127}$")]

RESERVED_ENVIRONMENT_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
"""Lambda's reserved variables ("Defined runtime environment variables", AWS Lambda developer guide):
UpdateFunctionConfiguration refuses them, after ``$LATEST``'s code has already changed."""
MAX_ENVIRONMENT_BYTES = 4096
"""Lambda's limit on a function's variables, measured as it measures them: the map as compact JSON."""


def environment_bytes(variables: dict[str, str]) -> int:
    """The size Lambda counts against ``MAX_ENVIRONMENT_BYTES`` (its error shows this "string measured")."""
    return len(json.dumps(variables, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def base64_digest(sha256_hex: str) -> str:
    """AWS reports digests (Lambda ``CodeSha256``, S3 ``ChecksumSHA256``) as base64; manifests carry hex."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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

    @field_validator("environment", mode="before")
    @classmethod
    def _no_reserved_variables(cls, environment: object) -> object:
        # Refused here, at `conveyor package` and at validation, before anything is touched: Lambda
        # refuses them only in UpdateFunctionConfiguration, after UpdateFunctionCode changed $LATEST.
        # Checked before the names' pattern, so `_HANDLER` is refused as reserved, not as a bad name.
        if isinstance(environment, dict):
            reserved = sorted(set(environment) & RESERVED_ENVIRONMENT_VARIABLES)
            if reserved:
                raise ValueError(f"sets reserved Lambda variables: {', '.join(reserved)}")
        return environment

    @field_validator("environment")
    @classmethod
    def _within_lambda_limit(cls, environment: dict[str, str] | None) -> dict[str, str] | None:
        size = environment_bytes(environment or {})
        if size > MAX_ENVIRONMENT_BYTES:
            raise ValueError(
                f"the variables are {size} bytes (as JSON), more than Lambda's limit of {MAX_ENVIRONMENT_BYTES}"
            )
        return environment


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object whose keys are each written once: with two, which one counts would be the parser's choice."""
    document: dict[str, object] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKeyError(f"duplicate key {key!r} in one object: write each key once")
        document[key] = value
    return document


class Manifest(_Strict):
    schema_version: Literal[1]
    app: AppName
    version: Version
    package: PackageInfo
    created_at: AwareDatetime
    commit: CommitInfo | None = None
    build: BuildInfo | None = None
    function_config: FunctionConfig | None = None

    @property
    def config_sha256(self) -> str:
        """The digest of the function configuration the release carries (canonical JSON; none is ``null``): with
        the package's sha256, what an app version is bound to."""
        config = None if self.function_config is None else self.function_config.model_dump(mode="json")
        canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @model_validator(mode="after")
    def _fits_the_state(self) -> "Manifest":
        # The manifest rides in every state of the execution (``Deployment.manifest``).
        size = json_bytes(self.model_dump(mode="json"))
        if size > MAX_MANIFEST_BYTES:
            raise ValueError(f"the manifest is {size} bytes as JSON, more than the limit of {MAX_MANIFEST_BYTES}")
        return self

    @classmethod
    def from_json(cls, raw: bytes) -> "Manifest":
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ManifestInvalidError(
                f"{MANIFEST_NAME}: {len(raw)} bytes, more than the limit of {MAX_MANIFEST_BYTES}"
            )
        try:
            document = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestInvalidError(f"{MANIFEST_NAME}: not valid JSON ({exc})") from exc
        except _DuplicateKeyError as exc:
            raise ManifestInvalidError(f"{MANIFEST_NAME}: {exc}") from exc
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise ManifestInvalidError(describe(MANIFEST_NAME, exc)) from exc

    @property
    def commit_time(self) -> datetime | None:
        return self.commit.time if self.commit else None
