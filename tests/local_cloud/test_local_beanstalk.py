"""Elastic Beanstalk on the local cloud: versions from S3 bundles, environments that really serve them,
CNAMEs reachable through the front, swaps, health, and no instance left behind."""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from local_cloud_support import FIXTURES, REPO_ROOT, TIME_SCALE, wait_for

from conveyor_local.moto_patches import SEAM_SIGNATURES
from conveyor_local.server import client_env, start_background, stop

WEBAPP = REPO_ROOT / "examples" / "webapp"
FAILING_HEALTH = """def application(environ, start_response):
    ok = environ["PATH_INFO"] != "/health"
    start_response("200 OK" if ok else "500 Internal Server Error", [])
    return [b"database unreachable"]
"""
HEALTH = [
    {"Namespace": "aws:elasticbeanstalk:application", "OptionName": "Application Healthcheck URL", "Value": "/health"}
]
PID_APP = """import os


def application(environ, start_response):
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]
"""


def bundle(source: Path, release: str, extra: dict[str, str] | None = None) -> bytes:
    """An EB source bundle: the app's files at the root, plus its release.txt."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in source.glob("*.py"):
            if path.name not in (extra or {}):
                archive.write(path, path.name)
        archive.writestr("release.txt", release)
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return out.getvalue()


def fetch(front: str, cname: str, path: str = "/") -> tuple[int, str]:
    request = urllib.request.Request(front + path, headers={"Host": cname})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Beanstalk:
    """One application on the session's cloud, with versions uploaded to its own bucket."""

    def __init__(self, aws: Callable[[str], Any]) -> None:
        self.eb = aws("elasticbeanstalk")
        self.s3 = aws("s3")
        self.app = f"web-{uuid.uuid4().hex[:8]}"
        self.bucket = self.app
        self.s3.create_bucket(Bucket=self.bucket)
        self.eb.create_application(ApplicationName=self.app)

    def version(self, label: str, source: Path = WEBAPP, extra: dict[str, str] | None = None) -> str:
        key = f"bundles/{label}.zip"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=bundle(source, label, extra))
        self.eb.create_application_version(
            ApplicationName=self.app, VersionLabel=label, SourceBundle={"S3Bucket": self.bucket, "S3Key": key}
        )
        return label

    def environment(self, name: str, label: str, **extra: Any) -> dict[str, Any]:
        env: dict[str, Any] = self.eb.create_environment(
            ApplicationName=self.app,
            EnvironmentName=f"{self.app}-{name}",
            VersionLabel=label,
            OptionSettings=HEALTH,
            **extra,
        )
        return env

    def describe(self, name: str) -> dict[str, Any]:
        envs = self.eb.describe_environments(EnvironmentNames=[name], IncludeDeleted=False)["Environments"]
        return dict(envs[0]) if envs else {}


@pytest.fixture
def beanstalk(aws: Callable[[str], Any]) -> Beanstalk:
    return Beanstalk(aws)


@pytest.fixture
def front(local_cloud: dict[str, Any]) -> str:
    return str(local_cloud["beanstalk_front"])


def test_an_environment_serves_its_version_on_its_cname(beanstalk: Beanstalk, front: str) -> None:
    # Given an application version made from an S3 bundle
    label = beanstalk.version("1.0.0")

    # When an environment is created with it
    created = beanstalk.environment("blue", label, CNAMEPrefix=f"{beanstalk.app}-live")

    # Then it is Ready and Green on its CNAME, and the front serves the bundle's app there
    env = beanstalk.describe(created["EnvironmentName"])
    assert env["Status"] == "Ready"
    assert (env["Health"], env["HealthStatus"]) == ("Green", "Ok")
    assert env["VersionLabel"] == "1.0.0"
    assert env["CNAME"] == f"{beanstalk.app}-live.us-east-1.elasticbeanstalk.com"
    status, body = fetch(front, env["CNAME"])
    assert status == 200
    assert json.loads(body)["release"] == "1.0.0"


def test_update_environment_serves_the_new_version(beanstalk: Beanstalk, front: str) -> None:
    # Given an environment serving 1.0.0 and a second version
    env = beanstalk.environment("blue", beanstalk.version("1.0.0"))
    beanstalk.version("1.1.0")

    # When it is updated to the new version label
    beanstalk.eb.update_environment(EnvironmentName=env["EnvironmentName"], VersionLabel="1.1.0")

    # Then the same CNAME serves 1.1.0
    described = beanstalk.describe(env["EnvironmentName"])
    assert described["VersionLabel"] == "1.1.0"
    assert json.loads(fetch(front, env["CNAME"])[1])["release"] == "1.1.0"


def test_swapping_cnames_swaps_what_each_name_serves(beanstalk: Beanstalk, front: str) -> None:
    # Given a blue environment on 1.0.0 and a green one on 2.0.0
    blue = beanstalk.environment("blue", beanstalk.version("1.0.0"))
    green = beanstalk.environment("green", beanstalk.version("2.0.0"))

    # When their CNAMEs are swapped
    beanstalk.eb.swap_environment_cnames(
        SourceEnvironmentName=blue["EnvironmentName"], DestinationEnvironmentName=green["EnvironmentName"]
    )

    # Then blue's CNAME serves green's version, and each environment reports the other's CNAME
    assert json.loads(fetch(front, blue["CNAME"])[1])["release"] == "2.0.0"
    assert json.loads(fetch(front, green["CNAME"])[1])["release"] == "1.0.0"
    assert beanstalk.describe(green["EnvironmentName"])["CNAME"] == blue["CNAME"]


def test_an_app_whose_health_path_fails_is_red(beanstalk: Beanstalk) -> None:
    # Given a version whose health check URL answers 500
    env = beanstalk.environment("blue", beanstalk.version("1.0.0-broken", extra={"application.py": FAILING_HEALTH}))

    # When its health is read
    health = beanstalk.eb.describe_environment_health(EnvironmentName=env["EnvironmentName"], AttributeNames=["All"])

    # Then it is Red/Severe and the cause names the path and the status
    assert (health["Color"], health["HealthStatus"]) == ("Red", "Severe")
    assert "Health check URL /health failed: HTTP 500" in health["Causes"][0]
    assert beanstalk.describe(env["EnvironmentName"])["Health"] == "Red"


def test_an_app_that_does_not_start_is_red_with_its_error(beanstalk: Beanstalk) -> None:
    # Given a version whose application.py raises on import
    label = beanstalk.version("1.0.0-crash", extra={"application.py": "raise RuntimeError('no DATABASE_URL')\n"})

    # When an environment runs it
    env = beanstalk.environment("blue", label)

    # Then it is Red and the cause quotes the app's error
    health = beanstalk.eb.describe_environment_health(EnvironmentName=env["EnvironmentName"], AttributeNames=["All"])
    assert health["Color"] == "Red"
    assert "failed to start" in health["Causes"][0]
    assert "RuntimeError: no DATABASE_URL" in health["Causes"][0]


def test_a_terminated_environment_stops_serving_and_frees_its_cname(beanstalk: Beanstalk, front: str) -> None:
    # Given a serving environment
    env = beanstalk.environment("blue", beanstalk.version("1.0.0"))
    assert fetch(front, env["CNAME"])[0] == 200

    # When it is terminated
    beanstalk.eb.terminate_environment(EnvironmentName=env["EnvironmentName"])

    # Then its CNAME no longer serves, it is no longer live, and the CNAME can be taken again
    assert fetch(front, env["CNAME"])[0] == 502
    assert beanstalk.describe(env["EnvironmentName"]) == {}
    again = beanstalk.environment("blue", "1.0.0")
    assert again["CNAME"] == env["CNAME"]


def test_a_version_whose_bundle_is_missing_or_not_a_zip_is_refused(beanstalk: Beanstalk) -> None:
    # Given no object at the key, then an object that is not a zip
    source = {"S3Bucket": beanstalk.bucket, "S3Key": "bundles/absent.zip"}
    beanstalk.s3.put_object(Bucket=beanstalk.bucket, Key="bundles/text.zip", Body=b"not a zip")

    # When versions are created from them, Then each is refused naming the bundle
    with pytest.raises(ClientError, match=r"Unable to download from S3 location \(Bucket: .* Key: bundles/absent"):
        beanstalk.eb.create_application_version(ApplicationName=beanstalk.app, VersionLabel="a", SourceBundle=source)
    with pytest.raises(ClientError, match=r"bundles/text\.zip is not a valid zip file"):
        beanstalk.eb.create_application_version(
            ApplicationName=beanstalk.app, VersionLabel="b", SourceBundle={**source, "S3Key": "bundles/text.zip"}
        )


def test_a_taken_cname_and_an_unknown_version_are_refused(beanstalk: Beanstalk) -> None:
    # Given an environment holding a CNAME prefix
    beanstalk.environment("blue", beanstalk.version("1.0.0"), CNAMEPrefix=f"{beanstalk.app}-x")

    # When another asks for the same prefix, or for a version that does not exist, Then EB refuses
    with pytest.raises(ClientError, match="is not available"):
        beanstalk.environment("green", "1.0.0", CNAMEPrefix=f"{beanstalk.app}-x")
    with pytest.raises(ClientError, match=r"No Application Version named '9\.9\.9'"):
        beanstalk.environment("green", "9.9.9")


def test_a_cname_is_reachable_through_the_front_as_a_proxy(beanstalk: Beanstalk, front: str) -> None:
    # Given a serving environment
    env = beanstalk.environment("blue", beanstalk.version("1.0.0"))

    # When an HTTP client configured with the front as its proxy fetches http://<cname>/health
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": front}))
    with opener.open(f"http://{env['CNAME']}/health", timeout=10) as response:
        body = json.loads(response.read())

    # Then it reaches the environment, as the stages' HTTP probe does from a Lambda worker
    assert body == {"status": "ok", "release": "1.0.0"}


def test_the_seam_is_registered() -> None:
    assert "moto.elasticbeanstalk.responses.EBResponse.call_action" in SEAM_SIGNATURES


def test_local_down_reaps_every_environment(tmp_path: Path) -> None:
    # Given a cloud of its own with an environment whose app reports its process id
    state = start_background(port=0, template=FIXTURES / "template.yaml", state_dir=tmp_path, time_scale=TIME_SCALE)
    try:
        import boto3

        env = client_env(state)
        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        clients = {
            name: session.client(name, endpoint_url=env["AWS_ENDPOINT_URL"]) for name in ("s3", "elasticbeanstalk")
        }
        stack = Beanstalk(clients.__getitem__)
        created = stack.environment("blue", stack.version("1.0.0", extra={"application.py": PID_APP}))
        pid = int(fetch(state["beanstalk_front"], created["CNAME"])[1])
    finally:
        # When the cloud stops
        stop(tmp_path)

    # Then the environment's process is gone
    wait_for(lambda: not _alive(pid))


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_an_environment_s_tags_are_listed_by_its_arn(beanstalk: Beanstalk) -> None:
    # Given an environment created with the managed tag
    env = beanstalk.environment("blue", beanstalk.version("1.0.0"), Tags=[{"Key": "conveyor:managed", "Value": "true"}])

    # When its tags are listed, Then the tag is there (Conveyor changes only managed environments)
    tags = beanstalk.eb.list_tags_for_resource(ResourceArn=env["EnvironmentArn"])["ResourceTags"]
    assert tags == [{"Key": "conveyor:managed", "Value": "true"}]


def test_an_environment_survives_a_restart_and_serves_again(tmp_path: Path) -> None:
    import boto3

    def clients(state: dict[str, Any]) -> Callable[[str], Any]:
        env = client_env(state)
        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        return lambda name: session.client(name, endpoint_url=env["AWS_ENDPOINT_URL"])

    # Given a cloud of its own with an environment serving 1.0.0, stopped cleanly
    state = start_background(port=0, template=FIXTURES / "template.yaml", state_dir=tmp_path, time_scale=TIME_SCALE)
    try:
        stack = Beanstalk(clients(state))
        created = stack.environment("blue", stack.version("1.0.0"), Tags=[{"Key": "conveyor:managed", "Value": "true"}])
    finally:
        stop(tmp_path)

    # When it starts again on the same state
    state = start_background(port=0, template=FIXTURES / "template.yaml", state_dir=tmp_path, time_scale=TIME_SCALE)
    try:
        eb = clients(state)("elasticbeanstalk")
        described = eb.describe_environments(EnvironmentNames=[created["EnvironmentName"]], IncludeDeleted=False)

        # Then the environment, its version and tags are back, and its CNAME serves the app again
        env = described["Environments"][0]
        assert (env["VersionLabel"], env["CNAME"], env["Health"]) == ("1.0.0", created["CNAME"], "Green")
        assert eb.list_tags_for_resource(ResourceArn=env["EnvironmentArn"])["ResourceTags"] == [
            {"Key": "conveyor:managed", "Value": "true"}
        ]
        assert json.loads(fetch(state["beanstalk_front"], created["CNAME"])[1])["release"] == "1.0.0"
    finally:
        stop(tmp_path)


def test_an_instance_does_not_outlive_a_crashed_cloud(tmp_path: Path) -> None:
    import signal

    import boto3

    # Given a cloud of its own with an environment whose app reports its process id
    state = start_background(port=0, template=FIXTURES / "template.yaml", state_dir=tmp_path, time_scale=TIME_SCALE)
    try:
        env = client_env(state)
        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        stack = Beanstalk(lambda name: session.client(name, endpoint_url=env["AWS_ENDPOINT_URL"]))
        created = stack.environment("blue", stack.version("1.0.0", extra={"application.py": PID_APP}))
        pid = int(fetch(state["beanstalk_front"], created["CNAME"])[1])

        # When the server is killed with no chance to stop anything
        os.kill(int(state["pid"]), signal.SIGKILL)

        # Then the environment's process goes too
        wait_for(lambda: not _alive(pid), timeout=30)
    finally:
        stop(tmp_path)
