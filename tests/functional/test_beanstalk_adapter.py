"""The Elastic Beanstalk adapter against the local cloud's emulation (moto in-process, Conveyor's patches on), and an
all-at-once rollout through the real stages with it: versions from S3, updates, swaps, health, named errors."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from conveyor.adapters.elasticbeanstalk import BeanstalkTargets
from conveyor.domain.errors import DeployFailedError, TargetNotManagedError, TargetReadError, TrafficShiftError
from conveyor.domain.ports import BeanstalkEnvironment
from moto import mock_aws

from conveyor_local import moto_patches
from tests.fakes import FakeAlarms, FakeTargets
from tests.unit.conftest import build_step, started_ledger
from tests.unit.test_beanstalk_target import eb_spec

APP = "webapp"
MANAGED = [{"Key": "conveyor:managed", "Value": "true"}]
HEALTH = [
    {"Namespace": "aws:elasticbeanstalk:application", "OptionName": "Application Healthcheck URL", "Value": "/health"}
]
GOOD = """def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [open(__file__.replace("application.py", "release.txt")).read().encode()]
"""
SICK = """def application(environ, start_response):
    start_response("503 Service Unavailable" if environ["PATH_INFO"] == "/health" else "200 OK", [])
    return [b"sick"]
"""


def bundle(app: str, release: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("application.py", app)
        archive.writestr("release.txt", release)
    return out.getvalue()


class Beanstalk:
    def __init__(self) -> None:
        self.session = boto3.session.Session(region_name="us-east-1")
        self.eb = self.session.client("elasticbeanstalk")
        self.s3 = self.session.client("s3")
        self.s3.create_bucket(Bucket="bundles")
        self.eb.create_application(ApplicationName=APP)
        self.adapter = BeanstalkTargets(self.session)

    def upload(self, label: str, app: str = GOOD) -> str:
        key = f"{label}.zip"
        self.s3.put_object(Bucket="bundles", Key=key, Body=bundle(app, label))
        return key

    def version(self, label: str, app: str = GOOD) -> None:
        self.adapter.create_version(APP, label, "bundles", self.upload(label, app), "test")


@pytest.fixture
def beanstalk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Beanstalk]:
    for name in ("AWS_ENDPOINT_URL", "CONVEYOR_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        moto_patches.apply(moto_patches.Settings(endpoint_url="http://127.0.0.1:1", cache_dir=tmp_path / "cache"))
        try:
            yield Beanstalk()
        finally:
            moto_patches.restore()


def test_an_environment_is_read_with_its_cname_version_and_health(beanstalk: Beanstalk) -> None:
    beanstalk.version("1.0.0")
    beanstalk.eb.create_environment(
        ApplicationName=APP,
        EnvironmentName="webapp-blue",
        CNAMEPrefix="webapp-prod",
        VersionLabel="1.0.0",
        OptionSettings=HEALTH,
    )

    env = beanstalk.adapter.environment(APP, "webapp-blue")

    assert env is not None
    assert (env.version_label, env.ready, env.holds("webapp-prod")) == ("1.0.0", True, True)
    assert beanstalk.adapter.environment(APP, "webapp-green") is None
    assert beanstalk.adapter.version_exists(APP, "1.0.0")
    assert not beanstalk.adapter.version_exists(APP, "2.0.0")


def test_a_version_whose_bundle_is_missing_is_a_named_deploy_failure(beanstalk: Beanstalk) -> None:
    with pytest.raises(
        DeployFailedError, match=r"creating version 1\.0\.0 of Elastic Beanstalk app webapp from s3://bundles/none\.zip"
    ):
        beanstalk.adapter.create_version(APP, "1.0.0", "bundles", "none.zip", "test")


class _Unreachable:
    """A waiter (or call) whose endpoint cannot be reached: botocore raises, it does not answer."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://elasticbeanstalk.us-east-1.amazonaws.com")

    wait = __call__


@pytest.mark.parametrize(
    ("operation", "unreachable", "error"),
    [
        ("ensure_managed", "list_tags_for_resource", TargetReadError),
        ("deploy_version", "get_waiter", DeployFailedError),
        ("swap_cnames", "get_waiter", TrafficShiftError),
    ],
)
def test_an_unreachable_elastic_beanstalk_is_a_named_error(
    beanstalk: Beanstalk, monkeypatch: pytest.MonkeyPatch, operation: str, unreachable: str, error: type[Exception]
) -> None:
    # Given Elastic Beanstalk cannot be reached at the step the operation needs (its change itself went through)
    client = beanstalk.adapter._eb
    for accepted in ("update_environment", "swap_environment_cnames"):
        monkeypatch.setattr(client, accepted, lambda **kwargs: {})
    monkeypatch.setattr(
        client, unreachable, _Unreachable() if unreachable != "get_waiter" else lambda name: _Unreachable()
    )
    calls = {
        "ensure_managed": lambda: beanstalk.adapter.ensure_managed(
            BeanstalkEnvironment(
                name="web-blue", application=APP, cname="", status="Ready", version_label=None, health="Green"
            ),
            "conveyor:managed",
        ),
        "deploy_version": lambda: beanstalk.adapter.deploy_version(APP, "web-blue", "1.0.1"),
        "swap_cnames": lambda: beanstalk.adapter.swap_cnames(APP, "web-blue", "web-green"),
    }
    # Then the stage gets the port's error, naming the environment, never botocore's
    with pytest.raises(error, match=r"Elastic Beanstalk environment webapp/web-blue .*Could not connect"):
        calls[operation]()


def test_idle_environment_creation_deploy_and_swap(beanstalk: Beanstalk) -> None:
    beanstalk.version("1.0.0")
    beanstalk.version("1.1.0")
    beanstalk.eb.create_environment(
        ApplicationName=APP,
        EnvironmentName="webapp-blue",
        CNAMEPrefix="webapp-prod",
        VersionLabel="1.0.0",
        OptionSettings=HEALTH,
    )
    live = beanstalk.adapter.environment(APP, "webapp-blue")
    assert live is not None

    green = beanstalk.adapter.create_environment(
        APP, "webapp-green", "1.1.0", like=live, health_path="/health", tag_key="conveyor:managed"
    )
    assert (green.version_label, green.health) == ("1.1.0", "Green")
    beanstalk.adapter.ensure_managed(green, "conveyor:managed")  # Conveyor tagged what it created
    with pytest.raises(TargetNotManagedError, match="webapp/webapp-blue is not tagged conveyor:managed=true"):
        beanstalk.adapter.ensure_managed(live, "conveyor:managed")

    beanstalk.adapter.swap_cnames(APP, "webapp-green", "webapp-blue")
    swapped = beanstalk.adapter.environment(APP, "webapp-green")
    assert swapped is not None
    assert swapped.holds("webapp-prod")


def test_health_reports_red_with_eb_s_cause(beanstalk: Beanstalk) -> None:
    beanstalk.version("1.0.0", SICK)
    beanstalk.eb.create_environment(
        ApplicationName=APP, EnvironmentName="webapp-blue", VersionLabel="1.0.0", OptionSettings=HEALTH
    )

    health = beanstalk.adapter.health(APP, "webapp-blue")

    assert (health.color, health.status) == ("Red", "Severe")
    assert health.causes == ["Health check URL /health failed: HTTP 503"]


def test_an_all_at_once_rollout_through_the_stages_updates_and_restores(beanstalk: Beanstalk) -> None:
    from conveyor.stages.deploy import deploy
    from conveyor.stages.health import evaluate_health
    from conveyor.stages.rollback import roll_back
    from conveyor.stages.traffic import shift_traffic

    # Given webapp-blue serving 0.9.0, and the release 1.0.0 (sick) in the release store
    beanstalk.version("0.9.0")
    beanstalk.eb.create_environment(
        ApplicationName=APP, EnvironmentName="webapp-blue", VersionLabel="0.9.0", OptionSettings=HEALTH, Tags=MANAGED
    )
    step = build_step(eb_spec("all_at_once"), release=None)
    beanstalk.s3.create_bucket(Bucket=step.deployment.package.bucket)
    beanstalk.s3.put_object(
        Bucket=step.deployment.package.bucket, Key=step.deployment.package.key, Body=bundle(SICK, "1.0.0")
    )
    ledger = started_ledger(step)
    adapter: Any = beanstalk.adapter

    # When it is deployed, promoted and judged
    step = step.model_copy(
        update={
            "release": deploy(
                step, targets=FakeTargets(), ledger=ledger, managed_tag_key="conveyor:managed", beanstalk=adapter
            )
        }
    )
    step = step.model_copy(
        update={"traffic": shift_traffic(step, targets=FakeTargets(), ledger=ledger, beanstalk=adapter)}
    )
    promoted = beanstalk.adapter.environment(APP, "webapp-blue")
    verdict = evaluate_health(step, targets=FakeTargets(), alarms=FakeAlarms(), ledger=ledger, beanstalk=adapter)

    # Then the environment ran 1.0.0, the verdict failed on EB's health, and RollBack put 0.9.0 back
    assert promoted is not None
    assert promoted.version_label == "1.0.0"
    assert verdict.status == "fail"
    assert "webapp/webapp-blue is Red (Severe): Health check URL /health failed: HTTP 503" in verdict.reason
    result = roll_back(
        step.model_copy(update={"health": verdict}), targets=FakeTargets(), ledger=ledger, beanstalk=adapter
    )
    restored = beanstalk.adapter.environment(APP, "webapp-blue")
    assert restored is not None
    assert (result.restored_version, restored.version_label, restored.health) == ("0.9.0", "0.9.0", "Green")
