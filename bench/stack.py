"""The local cloud a benchmark runs on, and target apps created on it like the sample app, N at a time.

``Bench`` starts a local cloud of its own (port 0, its own state dir), creates target apps
(``<app>-<env>`` functions tagged as managed, alias ``live`` on a bootstrap version 1, a registered
pipeline), pushes bundles and follows the executions they start. The sample app itself
(``hello``) comes from ``conveyor_cli.sample`` unchanged; every other app is generated here.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from botocore.config import Config
from conveyor.adapters.dynamodb_ledger import DynamoLedger
from conveyor.domain.layout import artifact_key, deployment_id, pipeline_key
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.records import DeploymentRecord

from conveyor_cli import operations
from conveyor_cli.context import Cloud
from conveyor_cli.packaging import build_bundle, zip_directory
from conveyor_cli.sample import (
    ALIAS,
    EXAMPLES,
    ROOT,
    SAMPLE_APP,
    create_sample_targets,
    create_target_function,
    execution_role_arn,
)
from conveyor_local.server import read_state, start_background, stop

GOOD_SOURCE = EXAMPLES / "hello"
BROKEN_SOURCE = EXAMPLES / "hello-broken"
ENVIRONMENTS = ("staging", "production")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
_ROLE = "bench-target-execution"
#: The SDK app id every client of the bench process carries, so the local cloud's request log tells its calls apart.
BENCH_APP_ID = "conveyor-bench"
_CLIENT_CONFIG = Config(max_pool_connections=64, retries={"mode": "standard", "max_attempts": 6})


class BenchError(Exception):
    """A benchmark could not produce its figure (a deployment hung or ended wrongly)."""


@dataclass
class Pushed:
    """One bundle upload: its deployment id and when the upload had completed (wall clock, UTC)."""

    app: str
    version: str
    deployment_id: str
    uploaded_at: datetime


@dataclass
class Finished:
    pushed: Pushed
    record: DeploymentRecord
    execution: dict[str, Any]

    @property
    def seconds(self) -> float:
        """Upload completed -> execution stopped, from the execution's own stop time."""
        return (self.execution["stopDate"] - self.pushed.uploaded_at).total_seconds()


@dataclass
class Bench:
    cloud: Cloud
    state_dir: Path
    workdir: Path
    clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str, app_id: str = BENCH_APP_ID) -> Any:
        """A client whose requests carry ``app/<app_id>`` in their User-Agent, so the local cloud's
        request log tells the bench's own calls (and each script's) from Conveyor's."""
        with self._lock:
            if (service, app_id) not in self.clients:
                config = _CLIENT_CONFIG.merge(Config(user_agent_appid=app_id))
                self.clients[service, app_id] = self.cloud.session.client(service, config=config)
            return self.clients[service, app_id]

    @property
    def endpoint(self) -> str:
        return str(read_state(self.state_dir)["endpoint"])

    @property
    def server_pid(self) -> int:
        return int(read_state(self.state_dir)["pid"])

    @property
    def ledger(self) -> DynamoLedger:
        return operations.ledger(self.cloud)

    # ------------------------------------------------------------------ targets

    def role_arn(self) -> str:
        return execution_role_arn(self.client("iam"), _ROLE)

    def create_app(
        self, app: str, strategy: Mapping[str, Any], environments: tuple[str, ...] = ENVIRONMENTS
    ) -> dict[str, str]:
        """Functions ``<app>-<env>`` (alias ``live`` on version 1) and a registered pipeline; env -> function."""
        lam, role, code = self.client("lambda"), self.role_arn(), zip_directory(GOOD_SOURCE)
        functions = {env: f"{app}-{env}" for env in environments}
        for function in functions.values():
            create_target_function(lam, name=function, app=app, role=role, code=code, release="0")
        spec = {
            "schema_version": 1,
            "app": app,
            "environments": [
                {
                    "name": env,
                    "target": {"kind": "lambda", "function_name": function, "alias": ALIAS},
                    "strategy": dict(strategy),
                    "health": {"synthetic": {"payload": {"probe": "health"}, "expect": {"status": "ok"}}},
                }
                for env, function in functions.items()
            ],
        }
        PipelineSpec.model_validate(spec)  # fail here, naming the field, rather than inside a deployment
        self.client("s3").put_object(
            Bucket=self.cloud.outputs.bucket, Key=pipeline_key(app), Body=yaml.safe_dump(spec).encode()
        )
        return functions

    def create_sample(self) -> dict[str, str]:
        targets = create_sample_targets(self.cloud)
        operations.apply_pipeline(self.cloud, EXAMPLES / "pipelines" / f"{SAMPLE_APP}.yaml")
        return targets.functions

    # ------------------------------------------------------------------ deployments

    def bundle(self, app: str, version: str, *, broken: bool = False) -> bytes:
        data, _ = build_bundle(
            BROKEN_SOURCE if broken else GOOD_SOURCE,
            app=app,
            version=version,
            function_config=FunctionConfig(environment={"RELEASE": version}),
            commit={"sha": "0" * 40, "time": "2020-01-01T00:00:00+00:00"},
        )
        return data

    def push(self, app: str, version: str, data: bytes) -> Pushed:
        key = artifact_key(app, version)
        response = self.client("s3").put_object(Bucket=self.cloud.outputs.bucket, Key=key, Body=data)
        uploaded = datetime.now(UTC)
        ident = deployment_id(self.cloud.outputs.bucket, key, response.get("VersionId"), response.get("ETag"))
        return Pushed(app=app, version=version, deployment_id=ident, uploaded_at=uploaded)

    def follow(self, pushed: Pushed, *, timeout: float = 120.0, poll: float = 0.05) -> Finished:
        """Wait until the deployment's execution has stopped and its ledger record has ended."""
        deadline = time.monotonic() + timeout
        sfn, ledger = self.client("stepfunctions"), self.ledger
        arn = None
        while time.monotonic() < deadline:
            record = ledger.get(pushed.deployment_id)
            if record is not None and record.execution_arn:
                arn = record.execution_arn
                break
            time.sleep(poll)
        while arn is not None and time.monotonic() < deadline:
            execution = sfn.describe_execution(executionArn=arn)
            if execution["status"] in TERMINAL:
                record = ledger.get(pushed.deployment_id)
                if record is not None and record.finished_at is not None:
                    return Finished(pushed=pushed, record=record, execution=execution)
            time.sleep(poll)
        raise BenchError(
            f"deployment {pushed.app} {pushed.version} ({pushed.deployment_id}) not done in {timeout:.0f}s"
        )

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        pages = self.client("stepfunctions").get_paginator("get_execution_history")
        return [event for page in pages.paginate(executionArn=execution_arn) for event in page["events"]]

    def alias(self, function: str) -> dict[str, Any]:
        alias = self.client("lambda").get_alias(FunctionName=function, Name=ALIAS)
        return {
            "version": alias["FunctionVersion"],
            "routing": alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}),
        }


SNAPSHOT_INTERVAL_SECONDS = 3600.0


@contextlib.contextmanager
def local_cloud(time_scale: float = 0.01) -> Iterator[Bench]:
    """A fresh local cloud (own port, own state dir) for the length of the block."""
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    state_dir = workdir / "cloud"
    # The state is snapshotted once an hour, i.e. at the end: a snapshot costs the server in proportion to all the
    # state the runs before it left, not to the deployment being measured, and it lands in whichever contender's
    # window it falls (on AWS no contender pays for it).
    start_background(
        port=0,
        template=ROOT / "template.yaml",
        state_dir=state_dir,
        time_scale=time_scale,
        timeout=180,
        snapshot_interval=SNAPSHOT_INTERVAL_SECONDS,
    )
    try:
        yield Bench(cloud=Cloud(local=True, local_state=state_dir), state_dir=state_dir, workdir=workdir)
    finally:
        stop(state_dir)
        shutil.rmtree(workdir, ignore_errors=True)
