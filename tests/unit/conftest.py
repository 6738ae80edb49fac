"""Unit tests: pure logic. The network is blocked and AWS credentials are bogus, so nothing can reach AWS."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conveyor.domain.contracts import Deployment, EnvironmentStep, Release
from conveyor.domain.manifest import Manifest
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.pushed_object import PushedObject
from conveyor.domain.target_identity import Home
from conveyor.observability import metrics

from tests.fakes import DEFAULT_SPEC, FakeLedger, make_manifest, make_package


class NetworkBlockedError(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "unit-tests-have-no-credentials")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise NetworkBlockedError(f"unit tests may not open network connections ({args!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    """Stage code adds metrics to the one process-wide Metrics; no handler flushes them in unit tests."""
    yield
    metrics.clear_metrics()


HOME = Home(account="123456789012", region="us-east-1")
"""Where the unit tests' Conveyor runs (the fakes' functions are there)."""


def build_step(
    spec: dict[str, Any] | None = None,
    *,
    version_before: str | None = "1",
    version_after: str = "2",
    **fields: Any,
) -> EnvironmentStep:
    """An EnvironmentStep for the first environment of ``spec``, with a release unless ``release=None``."""
    pipeline = PipelineSpec.model_validate(spec or DEFAULT_SPEC)
    environment = pipeline.environments[0]
    package = make_package()
    manifest = Manifest.model_validate(make_manifest(package))
    deployment = Deployment(
        deployment_id="d-unit",
        app=pipeline.app,
        version=manifest.version,
        artifact={"bucket": "bucket", "key": "artifacts/hello/1.0.0.zip", "version_id": "v1"},
        package={
            "bucket": "bucket",
            "key": "releases/hello/1.0.0/package.zip",
            "sha256": manifest.package.sha256,
            "size": manifest.package.size,
        },
        manifest=manifest,
        environments=pipeline.environments,
        notifications=pipeline.notifications,
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:deployments:unit",
        started_at=datetime(2024, 5, 14, 9, 21, tzinfo=UTC),
        home=HOME,
    )
    release = Release(
        environment=environment.name,
        function_name=environment.target.ledger_fields()["function_name"],
        alias=environment.target.ledger_fields()["alias"],
        version_before=version_before,
        version_after=version_after,
        code_sha256="c2hh",
        reused=False,
    )
    values: dict[str, Any] = {"deployment": deployment, "environment": environment, "release": release}
    values.update(fields)
    return EnvironmentStep(**values)


def started_ledger(step: EnvironmentStep) -> FakeLedger:
    """A fake ledger holding the deployment of ``step``, as ValidateArtifact leaves it."""
    pushed = PushedObject(
        deployment_id=step.deployment.deployment_id,
        bucket="bucket",
        key="artifacts/hello/1.0.0.zip",
        version_id="v1",
        etag=None,
        size=None,
        requester="arn:aws:iam::123456789012:user/ci",
    )
    ledger = FakeLedger()
    ledger.start(pushed.ledger_record(step.deployment.execution_arn, step.deployment.app, step.deployment.version))
    return ledger
