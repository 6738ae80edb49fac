"""One lock per target, one owner per target, the newest version wins (issue 8, part 4), on the local cloud.

Run alone: ``.venv/bin/pytest -q tests/e2e/test_locks_e2e.py``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conveyor.domain.layout import artifact_key, deployment_id, pipeline_key
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord

from conveyor_cli import operations
from conveyor_cli.context import CliError
from conveyor_cli.packaging import build_bundle
from conveyor_cli.sample import EXAMPLES, alias_versions

from .conftest import Stage

pytestmark = pytest.mark.e2e

STORM = 8
GATE = "arn:test:gate"
"""A holder of staging's lock that is no execution: it keeps every pushed version waiting until all have queued."""


def hello_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "pipelines" / "hello.yaml").read_text())
    return spec


def until(check: Callable[[], Any], what: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)
    return value


def billing_spec(stage: Stage, function_name: str) -> Path:
    """App ``billing``'s pipeline, one environment, its target written as ``function_name``."""
    spec = hello_spec()
    spec["app"] = "billing"
    spec["environments"] = [{**spec["environments"][0], "name": "prod"}]
    spec["environments"][0]["target"] = {"kind": "lambda", "function_name": function_name, "alias": "live"}
    path = stage.workdir / "billing.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def registered(stage: Stage, app: str) -> bool:
    listed = stage.cloud.client("s3").list_objects_v2(Bucket=stage.cloud.outputs.bucket, Prefix=pipeline_key(app))
    return bool(listed.get("Contents"))


def test_a_second_app_claiming_a_function_is_refused_at_apply_naming_both(stage: Stage) -> None:
    # Given hello owns hello-staging; billing's spec names the same function by its full ARN
    _, staging = operations.environment_lock(stage.cloud, "hello", "staging")

    # When billing's pipeline is applied
    with pytest.raises(CliError) as raised:
        operations.apply_pipeline(stage.cloud, billing_spec(stage, staging))

    # Then it is refused, naming the field and both claimants, and nothing is registered
    message = str(raised.value)
    assert "billing.yaml: environments[0] (prod).target.function_name" in message
    assert f"function {staging} belongs to app 'hello' (environment 'staging'" in message
    assert "app 'billing' (environment 'prod') may not deploy to it" in message
    assert not registered(stage, "billing")


def test_another_accounts_function_is_refused_at_apply(stage: Stage) -> None:
    foreign = "arn:aws:lambda:us-east-1:210987654321:function:hello-staging"
    with pytest.raises(CliError, match=r"environments\[0\] \(prod\)\.target\.function_name: .*account 210987654321"):
        operations.apply_pipeline(stage.cloud, billing_spec(stage, foreign))
    assert not registered(stage, "billing")


def test_a_function_named_by_a_pipeline_registered_by_hand_is_refused_at_apply(stage: Stage) -> None:
    # Given billing's spec copied straight into the bucket (no apply, no deployment: no ownership record yet)
    client, bucket = stage.cloud.client("s3"), stage.cloud.outputs.bucket
    client.put_object(Bucket=bucket, Key=pipeline_key("billing"), Body=billing_spec(stage, "ledger-fn").read_bytes())
    spec = hello_spec()
    spec["app"] = "orders"
    spec["environments"] = [{**spec["environments"][0], "target": {"function_name": "ledger-fn"}}]
    path = stage.workdir / "orders.yaml"
    path.write_text(yaml.safe_dump(spec))
    try:
        # When app orders, naming the same function, is applied
        with pytest.raises(CliError) as raised:
            operations.apply_pipeline(stage.cloud, path)
    finally:
        client.delete_object(Bucket=bucket, Key=pipeline_key("billing"))

    # Then it is refused, naming billing's registration and both environments; orders is not registered
    message = str(raised.value)
    assert "orders.yaml: environments[0] (staging).target.function_name" in message
    assert "belongs to app 'billing' (environment 'prod', registered at s3://" in message
    assert not registered(stage, "orders")


def test_a_pipeline_copied_by_hand_does_not_stop_the_owner_applying_its_own(stage: Stage) -> None:
    # Given billing's spec copied straight into the bucket, naming hello's staging function, which hello owns
    client, bucket = stage.cloud.client("s3"), stage.cloud.outputs.bucket
    spec = billing_spec(stage, "123456789012:function:hello-staging").read_bytes()
    client.put_object(Bucket=bucket, Key=pipeline_key("billing"), Body=spec)
    path = stage.workdir / "hello-again.yaml"
    path.write_text(yaml.safe_dump(hello_spec()))
    try:
        # When hello applies its own pipeline again, Then the ownership record decides: it is hello's
        assert operations.apply_pipeline(stage.cloud, path).app == "hello"
    finally:
        client.delete_object(Bucket=bucket, Key=pipeline_key("billing"))
    assert registered(stage, "hello")


def test_a_second_app_registered_by_hand_is_refused_at_deployment(stage: Stage) -> None:
    # Given billing's spec copied straight into the bucket (no apply), naming hello's staging function
    client, bucket = stage.cloud.client("s3"), stage.cloud.outputs.bucket
    spec = billing_spec(stage, "123456789012:function:hello-staging").read_bytes()
    client.put_object(Bucket=bucket, Key=pipeline_key("billing"), Body=spec)
    before = alias_versions(stage.cloud, stage.targets.functions)
    try:
        # When billing pushes a release
        data, _ = build_bundle(EXAMPLES / "hello", app="billing", version="1.0.0")
        key = artifact_key("billing", "1.0.0")
        put = client.put_object(Bucket=bucket, Key=key, Body=data)
        record = operations.wait(
            stage.cloud, deployment_id(bucket, key, put.get("VersionId"), put.get("ETag")), timeout=120
        )
    finally:
        client.delete_object(Bucket=bucket, Key=pipeline_key("billing"))

    # Then its deployment FAILED naming both claimants, and hello's functions were not touched
    assert record.status is Outcome.FAILED
    assert record.failure is not None
    assert record.failure["error"] == "TargetClaimedError"
    assert "belongs to app 'hello' (environment 'staging')" in record.failure["reason"]
    assert "app 'billing' (environment 'prod')" in record.failure["reason"]
    assert alias_versions(stage.cloud, stage.targets.functions) == before


@pytest.fixture
def concurrency(stage: Stage, request: pytest.FixtureRequest) -> Iterator[str]:
    """The sample pipeline with ``concurrency`` set for one test; the example pipeline again afterwards."""
    spec = hello_spec()
    spec["concurrency"] = request.param
    path = stage.workdir / "hello-storm.yaml"
    path.write_text(yaml.safe_dump(spec))
    operations.apply_pipeline(stage.cloud, path)
    yield str(request.param)
    # The storm leaves 9x.0.x live; a low release goes live after it (allow_downgrade), so the app's live
    # release refuses no later module's push as a downgrade.
    spec["allow_downgrade"] = True
    path.write_text(yaml.safe_dump(spec))
    operations.apply_pipeline(stage.cloud, path)
    reset = {"queue": "0.90.0", "supersede": "0.91.0"}[str(request.param)]
    assert stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", reset))["deployment_id"])
    operations.apply_pipeline(stage.cloud, EXAMPLES / "pipelines" / "hello.yaml")


def push_at_once(stage: Stage, versions: list[str]) -> dict[str, str]:
    """Push every version from its own thread, released together; version -> deployment id."""
    bundles = {}
    for version in versions:
        data, _ = build_bundle(
            EXAMPLES / "hello",
            app="hello",
            version=version,
            function_config=FunctionConfig(environment={"RELEASE": version}),
        )
        bundles[version] = data
    client, bucket = stage.cloud.client("s3"), stage.cloud.outputs.bucket
    start, pushed, lock = threading.Barrier(len(versions)), {}, threading.Lock()

    def push(version: str) -> None:
        start.wait()
        key = artifact_key("hello", version)
        put = client.put_object(Bucket=bucket, Key=key, Body=bundles[version])
        with lock:
            pushed[version] = deployment_id(bucket, key, put.get("VersionId"), put.get("ETag"))

    threads = [threading.Thread(target=push, args=(version,)) for version in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return pushed


def status_of(stage: Stage, deployment: str) -> Outcome | None:
    record = operations.ledger(stage.cloud).get(deployment)
    return None if record is None else record.status


@pytest.mark.parametrize(("concurrency", "major"), [("queue", 90), ("supersede", 91)], indirect=["concurrency"])
def test_versions_pushed_at_once_in_any_order_end_on_the_highest_and_none_fails(
    stage: Stage, concurrency: str, major: int
) -> None:
    # Given STORM versions in shuffled order (the highest not last: arriving last must not be what wins)
    versions = [f"{major}.0.{n}" for n in range(1, STORM + 1)]
    highest = versions[-1]
    random.Random(major).shuffle(versions)
    assert versions[-1] != highest
    # and staging held by a gate, so every one of them is validated and queued before any goes live
    locks = operations.locks(stage.cloud)
    _, staging = operations.environment_lock(stage.cloud, "hello", "staging")
    assert locks.try_acquire(
        staging,
        holder=GATE,
        deployment_id="d-gate",
        app="test",
        environment="gate",
        lease_seconds=3600,
        now=time.time(),
    )

    # When they are pushed at once, and the gate opens once all of them wait (or gave way)
    try:
        pushed = push_at_once(stage, versions)
        until(
            lambda: all(status_of(stage, d) in (Outcome.QUEUED, Outcome.SUPERSEDED) for d in pushed.values()),
            "every pushed version queued for staging",
        )
    finally:
        locks.release(staging, GATE)
    records: dict[str, DeploymentRecord] = {v: operations.wait(stage.cloud, d, timeout=600) for v, d in pushed.items()}

    # Then both environments serve the highest version, which SUCCEEDED
    winner = records[highest]
    assert winner.status is Outcome.SUCCEEDED, winner.failure
    aliases = alias_versions(stage.cloud, stage.targets.functions)
    assert {env: aliases[env]["version"] for env in aliases} == {
        env: winner.environments[env].version_after for env in aliases
    }
    # and every other one went live and was replaced, or ended SUPERSEDED: none FAILED
    outcomes = {version: record.status for version, record in records.items()}
    assert set(outcomes.values()) <= {Outcome.SUCCEEDED, Outcome.SUPERSEDED}, outcomes
    if concurrency == "supersede":
        # nothing lower than the highest went live: each one gave way to a higher version waiting
        assert [v for v, outcome in outcomes.items() if outcome is Outcome.SUCCEEDED] == [highest]
    # and no lock is held, nobody waits
    for env in ("staging", "production"):
        _, target = operations.environment_lock(stage.cloud, "hello", env)
        held = locks.get(target)
        assert held is None or held.holder is None, f"{env} still held by {held.deployment_id}"
        assert locks.waiters(target) == []
