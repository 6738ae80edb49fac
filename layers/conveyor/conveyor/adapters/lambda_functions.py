"""Lambda deployment targets: a function and its alias, changed only if Conveyor manages it."""

from __future__ import annotations

import json
import time
from typing import Any

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.adapters import aws
from conveyor.domain.contracts import PackageRef
from conveyor.domain.errors import (
    AliasChangedError,
    DeployFailedError,
    TargetInvokeError,
    TargetNotFoundError,
    TargetNotManagedError,
    TargetReadError,
    TrafficShiftError,
)
from conveyor.domain.manifest import FunctionConfig, base64_digest
from conveyor.domain.ports import AliasState, FunctionState, Invocation


class LambdaTargets:
    """``Targets`` on the Lambda API."""

    def __init__(self, session: Session) -> None:
        self._lambda = aws.client(session, "lambda")

    def ensure_managed(self, function_name: str, tag_key: str) -> str:
        """The function's ARN, if it exists and carries ``tag_key=true``."""
        return self.managed_function(function_name, tag_key).arn

    def managed_function(self, function_name: str, tag_key: str) -> FunctionState:
        """The function and what its ``$LATEST`` holds, if it exists and carries ``tag_key=true`` (one GetFunction)."""
        try:
            response = self._lambda.get_function(FunctionName=function_name)
        except ClientError as exc:
            if aws.error_code(exc) == "ResourceNotFoundException":
                raise TargetNotFoundError(f"target function {function_name!r} does not exist") from exc
            if aws.error_code(exc) == "AccessDeniedException":
                # Conveyor's lambda:GetFunction is conditioned on the tag (template.yaml): on AWS an untagged
                # (or missing) function answers AccessDenied, not a response without the tag.
                raise TargetNotManagedError(
                    f"target function {function_name!r} is not tagged {tag_key}=true (reading it was denied); "
                    "Conveyor may not change it"
                ) from exc
            raise TargetReadError(f"reading target function {function_name!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TargetReadError(f"reading target function {function_name!r} failed: {exc}") from exc
        if response.get("Tags", {}).get(tag_key) != "true":
            raise TargetNotManagedError(
                f"target function {function_name!r} is not tagged {tag_key}=true; Conveyor may not change it"
            )
        configuration = response["Configuration"]
        return FunctionState(
            arn=str(configuration["FunctionArn"]),
            code_sha256=str(configuration.get("CodeSha256", "")),
            memory_mb=configuration.get("MemorySize"),
            timeout_seconds=configuration.get("Timeout"),
            environment=dict((configuration.get("Environment") or {}).get("Variables") or {}),
        )

    def alias_version(self, function_name: str, alias: str) -> str | None:
        state = self.alias_state(function_name, alias)
        return None if state is None else state.version

    def alias_state(self, function_name: str, alias: str) -> AliasState | None:
        """The alias's version, extra weights and revision; None when it does not exist."""
        try:
            response = self._lambda.get_alias(FunctionName=function_name, Name=alias)
        except ClientError as exc:
            if aws.error_code(exc) == "ResourceNotFoundException":
                return None
            raise TargetReadError(f"reading alias {function_name}:{alias} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TargetReadError(f"reading alias {function_name}:{alias} failed: {exc}") from exc
        weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasState(
            version=str(response["FunctionVersion"]),
            weights={str(k): float(v) for k, v in weights.items()},
            revision_id=str(response.get("RevisionId", "")),
        )

    def version_description(self, function_name: str, version: str) -> str:
        try:
            response = self._lambda.get_function_configuration(FunctionName=function_name, Qualifier=version)
        except (ClientError, BotoCoreError) as exc:
            raise TargetReadError(f"reading version {version} of {function_name!r} failed: {exc}") from exc
        return str(response.get("Description", ""))

    def update_code(
        self,
        function_name: str,
        package: PackageRef,
        config: FunctionConfig | None,
        current: FunctionState | None = None,
    ) -> None:
        """Put the release's code (exactly the S3 object version ValidateArtifact stored) and configuration on
        ``$LATEST``. With ``current`` (what Deploy read of ``$LATEST``), only what differs is written, and the
        environment variables are merged into the ones it read instead of reading them again."""
        location = {"S3Bucket": package.bucket, "S3Key": package.key}
        if package.version_id is not None:
            location["S3ObjectVersion"] = package.version_id
        try:
            if current is None or current.code_sha256 != base64_digest(package.sha256):
                updated = self._lambda.update_function_code(FunctionName=function_name, **location)
                if updated.get("LastUpdateStatus") not in (None, "Successful"):
                    self._wait_updated(function_name)
            if config is not None and (current is None or not current.has_config(config)):
                self._update_configuration(function_name, config, current)
        except (ClientError, BotoCoreError) as exc:
            raise DeployFailedError(f"updating {function_name!r} failed: {exc}") from exc

    def _update_configuration(self, function_name: str, config: FunctionConfig, current: FunctionState | None) -> None:
        changes: dict[str, Any] = {}
        if config.memory_mb is not None:
            changes["MemorySize"] = config.memory_mb
        if config.timeout_seconds is not None:
            changes["Timeout"] = config.timeout_seconds
        if config.environment is not None:
            if current is not None and current.environment is not None:
                existing = current.environment
            else:
                configuration = self._lambda.get_function_configuration(FunctionName=function_name)
                existing = configuration.get("Environment", {}).get("Variables", {})
            changes["Environment"] = {"Variables": existing | config.environment}
        updated = self._lambda.update_function_configuration(FunctionName=function_name, **changes)
        if updated.get("LastUpdateStatus") not in (None, "Successful"):
            self._wait_updated(function_name)

    def _wait_updated(self, function_name: str, timeout_seconds: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        while True:
            status = self._lambda.get_function_configuration(FunctionName=function_name).get("LastUpdateStatus")
            if status in (None, "Successful"):
                return
            if status == "Failed":
                raise DeployFailedError(f"Lambda reported the update of {function_name!r} as Failed")
            if time.monotonic() > deadline:
                raise DeployFailedError(f"{function_name!r} still {status} after {timeout_seconds:.0f} s")
            time.sleep(1)

    def publish_version(self, function_name: str, code_sha256: str, description: str) -> str:
        """Publish ``$LATEST`` if it holds ``code_sha256``; Lambda answers with the version it last published
        when nothing changed since, so a re-run or redrive never publishes the same code twice."""
        try:
            response = self._lambda.publish_version(
                FunctionName=function_name, CodeSha256=code_sha256, Description=description[:256]
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeployFailedError(f"publishing a version of {function_name!r} failed: {exc}") from exc
        return str(response["Version"])

    def route_alias(
        self,
        function_name: str,
        alias: str,
        version: str,
        extra: dict[str, float] | None,
        *,
        revision_id: str | None = None,
    ) -> str:
        """Point ``alias`` at ``version``, with ``extra`` weights on other versions (cleared when None).

        With ``revision_id`` the update applies only if the alias is still in the state that revision
        names (Lambda's optimistic concurrency); otherwise ``AliasChangedError`` and nothing changed.
        A missing alias is created (only without ``revision_id``: a revision implies it existed).
        Answers the alias's new revision, which names exactly the state this call left it in.
        """
        routing = {"AdditionalVersionWeights": extra or {}}
        update: dict[str, Any] = {"RevisionId": revision_id} if revision_id else {}
        try:
            try:
                response = self._lambda.update_alias(
                    FunctionName=function_name, Name=alias, FunctionVersion=version, RoutingConfig=routing, **update
                )
            except ClientError as exc:
                if aws.error_code(exc) == "PreconditionFailedException":
                    raise AliasChangedError(
                        f"alias {function_name}:{alias} changed since revision {revision_id}; not moved to {version}"
                    ) from exc
                if aws.error_code(exc) != "ResourceNotFoundException" or revision_id:
                    raise
                response = self._create_alias(function_name, alias, version, routing)
        except AliasChangedError:
            raise
        except (ClientError, BotoCoreError) as exc:
            raise TrafficShiftError(f"moving alias {function_name}:{alias} to {version} failed: {exc}") from exc
        return str(response.get("RevisionId", ""))

    def _create_alias(self, function_name: str, alias: str, version: str, routing: dict[str, Any]) -> Any:
        """Create the alias ``route_alias`` found missing; a version that is not there either is named as such
        (UpdateAlias and CreateAlias both answer ResourceNotFoundException for it)."""
        try:
            return self._lambda.create_alias(
                FunctionName=function_name, Name=alias, FunctionVersion=version, RoutingConfig=routing
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ResourceNotFoundException":
                raise TargetNotFoundError(
                    f"moving alias {function_name}:{alias} to {version} failed: version {version} of {function_name} "
                    "does not exist"
                ) from exc
            raise

    def delete_alias(self, function_name: str, alias: str) -> None:
        try:
            self._lambda.delete_alias(FunctionName=function_name, Name=alias)
        except (ClientError, BotoCoreError) as exc:
            raise TrafficShiftError(f"deleting alias {function_name}:{alias} failed: {exc}") from exc

    def invoke(self, function_name: str, qualifier: str, payload: dict[str, Any]) -> Invocation:
        started = time.perf_counter()
        # A qualified name, not ``Qualifier=``: the same on AWS, and the local cloud honours it.
        try:
            response = self._lambda.invoke(
                FunctionName=f"{function_name}:{qualifier}", Payload=json.dumps(payload).encode()
            )
            raw = response["Payload"].read()  # the answer streams: reading it can fail too
        except (ClientError, BotoCoreError) as exc:
            raise TargetInvokeError(f"invoking {function_name}:{qualifier} failed: {exc}") from exc
        elapsed = (time.perf_counter() - started) * 1000
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        return Invocation(
            payload=body,
            function_error=response.get("FunctionError"),
            executed_version=response.get("ExecutedVersion"),
            duration_ms=round(elapsed, 1),
        )
