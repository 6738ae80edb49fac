"""End-to-end fixtures: the real template, ASL and handlers on the local cloud, in its own process.

Deployments start the way they do on AWS, with an upload to the artifact bucket.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conveyor.domain.layout import deployment_id
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.ports import ExecutionState
from conveyor.domain.records import DeploymentRecord

from conveyor_cli import operations
from conveyor_cli.context import Cloud
from conveyor_cli.packaging import build_bundle
from conveyor_cli.sample import EXAMPLES, ROOT, SampleTargets, alias_versions, drain_inbox, set_up_sample
from conveyor_local.faults import write_plan
from conveyor_local.server import start_background, stop
from tests.conftest import xdist_group


@dataclass
class Deployed:
    record: DeploymentRecord
    before: dict[str, dict]
    after: dict[str, dict]
    notifications: list[dict[str, str]]
    execution: ExecutionState


@dataclass
class Stage:
    """The local cloud with the sample app's targets and pipeline registered."""

    cloud: Cloud
    targets: SampleTargets
    workdir: Path
    state_dir: Path

    def bundle(self, source: Path, version: str) -> Path:
        data, _ = build_bundle(
            source, app="hello", version=version, function_config=FunctionConfig(environment={"RELEASE": version})
        )
        path = self.workdir / f"hello-{version}.zip"
        path.write_bytes(data)
        return path

    def upload(self, key: str, body: bytes) -> str:
        """Put raw bytes in the artifact bucket, as any CI could; returns the deployment id."""
        response = self.cloud.client("s3").put_object(Bucket=self.cloud.outputs.bucket, Key=key, Body=body)
        return deployment_id(self.cloud.outputs.bucket, key, response.get("VersionId"), response.get("ETag"))

    def follow(self, deployment_id: str) -> Deployed:
        before = alias_versions(self.cloud, self.targets.functions)
        record = operations.wait(self.cloud, deployment_id, timeout=120)
        assert record.execution_arn is not None
        return Deployed(
            record=record,
            before=before,
            after=alias_versions(self.cloud, self.targets.functions),
            notifications=self.notifications_naming(deployment_id),
            execution=operations.execution_state(self.cloud, record.execution_arn),
        )

    def notifications_naming(self, deployment_id: str) -> list[dict[str, Any]]:
        """The inbox's notifications about ``deployment_id``. One cloud serves many modules, and a reconciler
        may still be telling about an earlier module's execution: those are set aside, never counted here."""
        return [n for n in drain_inbox(self.cloud, self.targets.inbox_url) if deployment_id in n["message"]]

    def await_notifications(self, deployment_id: str, what: str, timeout: float = 90) -> list[dict[str, Any]]:
        """Wait until the inbox has a notification about ``deployment_id``; all of them so far."""
        deadline = time.monotonic() + timeout
        while not (found := self.notifications_naming(deployment_id)):
            assert time.monotonic() < deadline, f"never happened: {what}"
            time.sleep(0.05)
        return found

    def follow_many(self, deployment_ids: list[str]) -> dict[str, Deployed]:
        """Follow deployments running side by side; each gets the notifications that name its id."""
        before = alias_versions(self.cloud, self.targets.functions)
        records = {d: operations.wait(self.cloud, d, timeout=120) for d in deployment_ids}
        inbox = drain_inbox(self.cloud, self.targets.inbox_url)
        after = alias_versions(self.cloud, self.targets.functions)
        followed = {}
        for deployment, record in records.items():
            assert record.execution_arn is not None
            followed[deployment] = Deployed(
                record=record,
                before=before,
                after=after,
                notifications=[note for note in inbox if deployment in note["message"]],
                execution=operations.execution_state(self.cloud, record.execution_arn),
            )
        return followed

    def locks_of(self, deployment_ids: set[str] | None = None) -> list[dict]:
        """Lock holders and queue entries (``LOCK#...`` items of the ledger table) of these deployments (None: all)."""
        table = self.cloud.client("dynamodb")
        pages = table.get_paginator("scan").paginate(
            TableName=self.cloud.outputs.ledger_table,
            FilterExpression="begins_with(pk, :lock)",
            ExpressionAttributeValues={":lock": {"S": "LOCK#"}},
        )
        return [
            item
            for page in pages
            for item in page["Items"]
            if "holder" in item and (deployment_ids is None or item.get("deployment_id", {}).get("S") in deployment_ids)
        ]

    def versions(self, function: str) -> list[str]:
        pages = self.cloud.client("lambda").get_paginator("list_versions_by_function").paginate(FunctionName=function)
        return [v["Version"] for page in pages for v in page["Versions"]]


@pytest.fixture(scope="session")
def _clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stage]]:
    """The local clouds this process started, one per e2e group it ran; all stopped at the end of the session."""
    clouds: dict[str, Stage] = {}
    try:
        yield clouds
    finally:
        for started in clouds.values():
            stop(started.state_dir)


@pytest.fixture(scope="module")
def stage(request: pytest.FixtureRequest, _clouds: dict[str, Stage], tmp_path_factory: pytest.TempPathFactory) -> Stage:
    """The local cloud of this module's e2e group (``tests/conftest.py``), started for the group's first module."""
    group = xdist_group(request.path.relative_to(ROOT).as_posix())
    if group not in _clouds:
        state_dir = tmp_path_factory.mktemp("local-cloud")
        # Snapshots of the state every 5 s, not 0.5 s: no e2e test crashes its cloud (tests/local_cloud does), and
        # a snapshot of a cloud that served hundreds of deployments costs a tenth of a second of its server.
        start_background(
            port=0, template=ROOT / "template.yaml", state_dir=state_dir, time_scale=0.01, snapshot_interval=5.0
        )
        try:
            cloud = Cloud(local=True, local_state=state_dir)
            targets = set_up_sample(cloud).targets  # `conveyor local sample`, as a new user runs it
            drain_inbox(cloud, targets.inbox_url)
        except BaseException:
            stop(state_dir)
            raise
        workdir = tmp_path_factory.mktemp("bundles")
        _clouds[group] = Stage(cloud=cloud, targets=targets, workdir=workdir, state_dir=state_dir)
    return _clouds[group]


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_FAILED] = report.failed


@pytest.fixture(autouse=True)
def _failures_do_not_cascade(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that failed on the shared cloud, stop what it left running and wait for its locks to go.

    Every module shares one local cloud: a deployment a failed test left paused holds its environment's lock, and
    each later test's deployment would queue behind it, so one failure would read as many."""
    yield
    if request.node.stash.get(_FAILED, False) and "stage" in request.fixturenames:
        settle(request.getfixturevalue("stage"))


def settle(stage: Stage, timeout: float = 120) -> None:
    """Stop every running execution (the reconciler restores traffic and releases the lock of each) and wait until
    no lock is held; a lock still held then is deleted, and said."""
    sfn = stage.cloud.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=stage.cloud.outputs.state_machine_arn, statusFilter="RUNNING"
    )
    for execution in [e for page in pages for e in page["executions"]]:
        sfn.stop_execution(executionArn=execution["executionArn"], cause="the test that started it failed")
    deadline = time.monotonic() + timeout
    while (locks := stage.locks_of()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for item in locks:
        warnings.warn(f"lock {item['pk']['S']} still held after a failed test: deleted", stacklevel=1)
        stage.cloud.client("dynamodb").delete_item(
            TableName=stage.cloud.outputs.ledger_table, Key={"pk": item["pk"], "sk": item["sk"]}
        )


@pytest.fixture
def faults(stage: Stage) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Switch on local-cloud fault rules (``conveyor_local.faults``) for one test; all off afterwards."""
    yield lambda rules: write_plan(stage.state_dir, rules)
    write_plan(stage.state_dir, [])


@pytest.fixture
def pipeline(stage: Stage) -> Iterator[Callable[..., None]]:
    """Register the sample app's pipeline with changes for one test; the example pipeline again afterwards."""

    def register(**changes: Any) -> None:
        spec = yaml.safe_load((EXAMPLES / "pipelines" / "hello.yaml").read_text())
        for path, value in changes.items():
            node = spec
            *parents, leaf = path.split("__")
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            node[leaf] = value
        path = stage.workdir / "pipeline.yaml"
        path.write_text(yaml.safe_dump(spec))
        operations.apply_pipeline(stage.cloud, path)

    yield register
    operations.apply_pipeline(stage.cloud, EXAMPLES / "pipelines" / "hello.yaml")
