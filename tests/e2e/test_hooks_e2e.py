"""Migrations and long hooks end to end: task-token hooks on the local cloud, from an S3 upload.

The hooks are the samples in ``examples/hooks`` (``migrate``: a schema kept in S3, ``smoke_test_async``: health
probes of the version being released), deployed as managed functions. Each run of a hook is journaled by the
hook itself (``runs/<deployment>/...`` in its bucket), so "invoked once" is counted, not assumed.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.records import DeploymentRecord

from conveyor_cli import operations
from conveyor_cli.packaging import build_bundle, zip_directory
from conveyor_cli.sample import EXAMPLES, create_hook_function, drain_inbox

from .conftest import Stage
from .test_safety_e2e import until

pytestmark = pytest.mark.e2e

ALARM = "hello-production-errors"  # created OK by the sample setup; judges every step without a probe
LINEAR = {"type": "linear", "step_percent": 25, "interval_seconds": 60}


class HookedService:
    """One managed function (alias ``live`` on version 1), its own app, and a bucket for its hooks' state."""

    def __init__(self, stage: Stage, app: str) -> None:
        self.stage, self.app, self.function = stage, app, f"{app}-fn"
        self.bucket = f"{app}-hooks-{uuid.uuid4().hex[:6]}"[:63]
        self.s3 = stage.cloud.client("s3")
        self.s3.create_bucket(Bucket=self.bucket)
        self.role = stage.cloud.client("iam").get_role(RoleName="hello-sample-execution")["Role"]["Arn"]
        lam = stage.cloud.client("lambda")
        self._create(self.function, EXAMPLES / "hello", {"RELEASE": "1.0.0"})
        version = lam.publish_version(FunctionName=self.function)["Version"]
        lam.create_alias(FunctionName=self.function, Name="live", FunctionVersion=version)

    def _create(self, name: str, source: Path, environment: dict[str, str]) -> str:
        self.stage.cloud.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=self.role,
            Handler="app.handler",
            Code={"ZipFile": zip_directory(source)},
            Timeout=10,
            Environment={"Variables": environment},
            Tags={"conveyor:managed": "true", "app": self.app},
        )
        return name

    def hook(self, sample: str, **environment: str) -> str:
        """A sample hook of ``examples/hooks`` as a managed function (15 minutes, like a real migration)."""
        return create_hook_function(
            self.stage.cloud.client("lambda"),
            name=f"{self.app}-{sample.replace('_', '-')}",
            app=self.app,
            role=self.role,
            sample=sample,
            environment={"MIGRATION_BUCKET": self.bucket, "POLL_SECONDS": "0.1", **environment},
        )

    def register(self, strategy: dict[str, Any], health: dict[str, Any], **environment: Any) -> None:
        spec = {
            "app": self.app,
            "environments": [
                {
                    "name": "production",
                    "target": {"function_name": self.function, "alias": "live"},
                    "strategy": strategy,
                    "health": health,
                    **environment,
                }
            ],
        }
        path = self.stage.workdir / f"{self.app}.yaml"
        path.write_text(json.dumps(spec))
        operations.apply_pipeline(self.stage.cloud, path)

    def push(self, source: Path, version: str) -> str:
        data, _ = build_bundle(
            source, app=self.app, version=version, function_config=FunctionConfig(environment={"RELEASE": version})
        )
        path = self.stage.workdir / f"{self.app}-{version}.zip"
        path.write_bytes(data)
        return str(operations.push(self.stage.cloud, path)["deployment_id"])

    def alias(self) -> dict[str, Any]:
        alias = self.stage.cloud.client("lambda").get_alias(FunctionName=self.function, Name="live")
        return {
            "version": alias["FunctionVersion"],
            "routing": alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}),
        }

    def runs(self, deployment_id: str, hook: str, phase: str) -> int:
        """How many times the hook ran for this deployment (each run journals itself)."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"runs/{deployment_id}/{hook}/{phase}/")
        return int(listed.get("KeyCount", 0))

    def progress(self, deployment_id: str) -> int:
        """How many times the holding migration polled its gate so far."""
        try:
            return int(self.s3.get_object(Bucket=self.bucket, Key=f"progress/{deployment_id}")["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return 0

    def schema(self) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=f"schema/{self.app}/production")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)  # type: ignore[no-any-return]

    def execution_arn(self, deployment_id: str) -> str | None:
        record = operations.ledger(self.stage.cloud).get(deployment_id)
        return None if record is None else record.execution_arn

    def history(self, execution_arn: str | None) -> list[dict[str, Any]]:
        if execution_arn is None:
            return []
        sfn = self.stage.cloud.client("stepfunctions")
        return sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]  # type: ignore[no-any-return]

    def state_entered(self, deployment_id: str) -> list[str]:
        """The states the deployment's execution entered so far, in order."""
        events = self.history(self.execution_arn(deployment_id))
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


@pytest.fixture
def service(stage: Stage, request: pytest.FixtureRequest) -> HookedService:
    drain_inbox(stage.cloud, stage.targets.inbox_url)
    app = request.node.name.removeprefix("test_").replace("_", "-")[:30].rstrip("-")
    return HookedService(stage, app)


def _events(record: DeploymentRecord, stage: str) -> list[Any]:
    return [e for e in record.events if e.stage == stage]


def test_a_long_migration_runs_once_before_any_traffic_and_its_output_is_in_the_ledger(service: HookedService) -> None:
    # Given a canary pipeline with a migration that holds until its backfill gate opens, heartbeating as it waits
    migrate = service.hook("migrate", HOLD_PREFIX="gates/")
    service.register(
        {"type": "canary", "weight": 10, "bake_seconds": 60},
        {"alarms": [ALARM]},
        migrate={"name": "schema", "function_name": migrate, "timeout_seconds": 900, "heartbeat_seconds": 300},
    )

    # When a build is pushed
    deployment = service.push(EXAMPLES / "hello", "2.0.0")

    # Then the migration runs while the execution waits on its token, with the alias still all on version 1
    until(lambda: service.runs(deployment, "schema", "migrate") == 1, "the migration started")
    until(lambda: "InvokeMigration" in service.state_entered(deployment), "the execution waits on the migration")
    # (10 polls of at least 0.1 s each, heartbeating: longer than the SDK's 60 s read timeout on the 0.01 scale)
    until(lambda: service.progress(deployment) >= 10, "the migration held for 10 polls")
    assert service.alias() == {"version": "1", "routing": {}}
    assert "ShiftTraffic" not in service.state_entered(deployment)

    # And once the backfill gate opens, the deployment finishes
    opened = datetime.now(UTC)
    service.s3.put_object(Bucket=service.bucket, Key=f"gates/{deployment}", Body=b"open")
    record = operations.wait(service.stage.cloud, deployment, timeout=180)
    assert record.status.value == "SUCCEEDED"
    assert service.alias() == {"version": "2", "routing": {}}
    # The hook ran exactly once, and its answer and output are in the ledger, before the first traffic step
    assert service.runs(deployment, "schema", "migrate") == 1
    (migrated,) = _events(record, "Migrate")
    assert migrated.status == "succeeded"
    assert migrated.detail["output"] == {"schema_before": None, "schema_after": "2.0.0"}
    assert "migration hook 'schema'" in migrated.detail["reason"]
    # (its event spans the hook's run, from its invocation to its answer, not only the answer's recording)
    assert migrated.started_at < opened < migrated.finished_at
    stages = [e.stage for e in record.events]
    assert stages.index("Migrate") < stages.index("ShiftTraffic")
    assert service.schema() == {"release": "2.0.0", "previous": None}


def test_a_failing_hook_at_a_middle_step_rolls_back_and_runs_the_down_migration(service: HookedService) -> None:
    # Given a linear rollout (25, 50, 75, 100) with a migration, its down-migration, and a smoke test at 50%
    migrate, smoke = service.hook("migrate"), service.hook("smoke_test_async")
    service.s3.put_object(
        Bucket=service.bucket, Key=f"schema/{service.app}/production", Body=json.dumps({"release": "1.0.0"}).encode()
    )
    service.register(
        LINEAR,
        {"alarms": [ALARM], "hooks": [{"name": "smoke", "function_name": smoke, "at": [50]}]},
        migrate={"name": "schema", "function_name": migrate, "down": {"name": "schema-down", "function_name": migrate}},
    )

    # When the broken build is pushed (its health probe answers "degraded")
    deployment = service.push(EXAMPLES / "hello-broken", "2.1.0")
    record = operations.wait(service.stage.cloud, deployment, timeout=180)

    # Then the smoke test failed at 50%, the alias went back to version 1, and the down-migration ran once
    assert record.status.value == "ROLLED_BACK"
    assert service.alias() == {"version": "1", "routing": {}}
    assert [e.detail["weight"] for e in _events(record, "ShiftTraffic")] == [25, 50]
    (failed,) = _events(record, "RunStepHooks")
    assert failed.failed
    assert "hook 'smoke'" in failed.detail["reason"]
    assert "at 50% traffic (step 2)" in failed.detail["reason"]
    (down,) = _events(record, "MigrateDown")
    assert down.status == "succeeded"
    assert down.detail["output"] == {"schema_before": "2.1.0", "schema_after": "1.0.0"}
    assert service.schema() == {"release": "1.0.0", "previous": "2.1.0"}
    assert service.runs(deployment, "schema", "migrate") == 1
    assert service.runs(deployment, "schema-down", "migrate_down") == 1
    # And the rollback notice names the failed hook and reports the down-migration
    (notice,) = service.stage.notifications_naming(deployment)
    assert "hook 'smoke'" in notice["message"]
    assert "down-migration hook 'schema-down'" in notice["message"]
    assert "passed" in notice["message"]
