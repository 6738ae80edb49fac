"""The Elastic Beanstalk sample on the local cloud: what a team's own IaC would have created for ``examples/webapp``.

Application ``webapp`` with version 1.0.0 (``examples/webapp``) running on ``webapp-blue``, which holds the
production CNAME ``webapp-prod.<region>.elasticbeanstalk.com``; ``webapp-green`` is created by the first
blue/green release. The pipeline ``examples/pipelines/webapp.yaml`` is registered. ``conveyor local sample
--webapp`` runs ``set_up_webapp`` (so do ``conveyor demo`` and the end-to-end tests): idempotent, it creates
what is missing and says what already existed.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.settings import MANAGED_TAG_KEY

from conveyor_cli.context import CliError, Cloud
from conveyor_cli.packaging import build_bundle, zip_directory
from conveyor_cli.sample import EXAMPLES, register_unless_registered

WEBAPP_APP = "webapp"
WEBAPP_PIPELINE = EXAMPLES / "pipelines" / "webapp.yaml"
WEBAPP_BUNDLE_VERSION = "1.1.0"
LIVE_ENVIRONMENT = "webapp-blue"
CNAME_PREFIX = "webapp-prod"
BUNDLE_BUCKET = "webapp-sample-bundles"
HEALTH_PATH = "/health"
BEANSTALK_FRONT_ENV = "CONVEYOR_BEANSTALK_FRONT"


@dataclass
class WebappSetup:
    cname: str
    created: list[str] = field(default_factory=list)
    existed: list[str] = field(default_factory=list)

    def note(self, resource: str, *, created: bool) -> None:
        (self.created if created else self.existed).append(resource)


def release_source(source: Path, version: str, into: Path) -> Path:
    """A copy of the app's folder that names its release (``release.txt``, what ``GET /`` answers with)."""
    target = into / f"{source.name}-{version}"
    shutil.copytree(source, target, dirs_exist_ok=True)
    (target / "release.txt").write_text(version + "\n", encoding="utf-8")
    return target


def webapp_bundle(source: Path, version: str, out_dir: Path) -> Path:
    """A bundle of the web app at ``source`` as release ``version``, as a team's CI would build it."""
    with tempfile.TemporaryDirectory() as scratch:
        data, _ = build_bundle(release_source(source, version, Path(scratch)), app=WEBAPP_APP, version=version)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{WEBAPP_APP}-{version}.zip"
    path.write_bytes(data)
    return path


def _first_version(cloud: Cloud, setup: WebappSetup, release: str) -> None:
    eb, s3 = cloud.client("elasticbeanstalk"), cloud.client("s3")
    if not eb.describe_applications(ApplicationNames=[WEBAPP_APP])["Applications"]:
        eb.create_application(ApplicationName=WEBAPP_APP)
        setup.note(f"Elastic Beanstalk application {WEBAPP_APP}", created=True)
    if eb.describe_application_versions(ApplicationName=WEBAPP_APP, VersionLabels=[release])["ApplicationVersions"]:
        setup.note(f"version {release} of {WEBAPP_APP}", created=False)
        return
    s3.create_bucket(Bucket=BUNDLE_BUCKET)
    key = f"{WEBAPP_APP}/{release}.zip"
    with tempfile.TemporaryDirectory() as scratch:
        s3.put_object(
            Bucket=BUNDLE_BUCKET,
            Key=key,
            Body=zip_directory(release_source(EXAMPLES / "webapp", release, Path(scratch))),
        )
    eb.create_application_version(
        ApplicationName=WEBAPP_APP, VersionLabel=release, SourceBundle={"S3Bucket": BUNDLE_BUCKET, "S3Key": key}
    )
    setup.note(f"version {release} of {WEBAPP_APP} (examples/webapp)", created=True)


def _live_environment(cloud: Cloud, setup: WebappSetup, release: str) -> str:
    eb = cloud.client("elasticbeanstalk")
    found = eb.describe_environments(
        ApplicationName=WEBAPP_APP, EnvironmentNames=[LIVE_ENVIRONMENT], IncludeDeleted=False
    )["Environments"]
    if found:
        setup.note(f"environment {LIVE_ENVIRONMENT}", created=False)
        return str(found[0]["CNAME"])
    created = eb.create_environment(
        ApplicationName=WEBAPP_APP,
        EnvironmentName=LIVE_ENVIRONMENT,
        CNAMEPrefix=CNAME_PREFIX,
        VersionLabel=release,
        SolutionStackName="64bit Amazon Linux 2023 v4.6.0 running Python 3.11",
        OptionSettings=[
            {
                "Namespace": "aws:elasticbeanstalk:application",
                "OptionName": "Application Healthcheck URL",
                "Value": HEALTH_PATH,
            }
        ],
        Tags=[{"Key": MANAGED_TAG_KEY, "Value": "true"}],  # Conveyor may change only managed targets
    )
    setup.note(f"environment {LIVE_ENVIRONMENT} serving {release} on {created['CNAME']}", created=True)
    return str(created["CNAME"])


def set_up_webapp(cloud: Cloud, *, release: str = "1.0.0", pipeline: Path = WEBAPP_PIPELINE) -> WebappSetup:
    """The web app's production environment serving ``release`` and its pipeline registered (idempotent)."""
    setup = WebappSetup(cname="")
    _first_version(cloud, setup, release)
    setup.cname = _live_environment(cloud, setup, release)
    if register_unless_registered(cloud, WEBAPP_APP, pipeline):
        setup.note(f"pipeline {WEBAPP_APP} ({pipeline.name}) registered", created=True)
    else:
        setup.note(
            f"pipeline {WEBAPP_APP} (the one registered; `conveyor pipeline apply` registers another)", created=False
        )
    return setup


def production_cname(cloud: Cloud) -> str:
    return f"{CNAME_PREFIX}.{cloud.session.region_name}.elasticbeanstalk.com"


def fetch(cloud: Cloud, cname: str, path: str = "/") -> tuple[int, dict[str, Any] | str]:
    """GET ``path`` on ``cname`` through the local cloud's front, as a browser would reach the CNAME on AWS."""
    if cloud.beanstalk_front is None:
        raise CliError("this cloud has no Elastic Beanstalk front (a local cloud started before it existed?)")
    front = urllib.parse.urlsplit(cloud.beanstalk_front)
    connection = http.client.HTTPConnection(front.hostname or "127.0.0.1", front.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": cname})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        connection.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body


def serving(cloud: Cloud, environment: str) -> dict[str, str | None]:
    """Which release an environment runs and which CNAME it holds."""
    found = cloud.client("elasticbeanstalk").describe_environments(
        ApplicationName=WEBAPP_APP, EnvironmentNames=[environment], IncludeDeleted=False
    )["Environments"]
    if not found:
        return {"version": None, "cname": None, "health": None}
    env = found[0]
    return {"version": env.get("VersionLabel"), "cname": env.get("CNAME"), "health": env.get("Health")}
