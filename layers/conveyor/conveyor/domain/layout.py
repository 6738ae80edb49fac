"""The artifact bucket's layout, and the deployment id derived from a pushed object.

- ``artifacts/<app>/<version>.zip``       bundles; the only prefix that triggers a deployment
- ``pipelines/<app>.yaml``                registered pipeline specs
- ``releases/<app>/<sha256>/package.zip``  the extracted package Lambda is updated from, stored by
  content: written once (only if absent) and read by S3 object version, so nothing can change
  what a validated release deploys
"""

import hashlib
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from conveyor.domain.errors import ArtifactLayoutError

ARTIFACT_PREFIX = "artifacts/"
PIPELINE_PREFIX = "pipelines/"
RELEASE_PREFIX = "releases/"

APP_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$"

AppName = Annotated[str, StringConstraints(pattern=APP_PATTERN)]
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]

_ARTIFACT_KEY = re.compile(r"^artifacts/(?P<app>[^/]+)/(?P<version>[^/]+)\.zip$")


class ArtifactKey(BaseModel):
    """Where a bundle was pushed: ``artifacts/<app>/<version>.zip``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    app: AppName
    version: Version

    @classmethod
    def parse(cls, key: str) -> "ArtifactKey":
        match = _ARTIFACT_KEY.match(key)
        if match is None:
            raise ArtifactLayoutError(f"object key {key!r} is not of the form artifacts/<app>/<version>.zip")
        app, version = match["app"], match["version"]
        if not re.match(APP_PATTERN, app):
            raise ArtifactLayoutError(f"object key {key!r}: app {app!r} must match {APP_PATTERN}")
        if not re.match(VERSION_PATTERN, version):
            raise ArtifactLayoutError(f"object key {key!r}: version {version!r} must match {VERSION_PATTERN}")
        return cls(app=app, version=version)

    @property
    def key(self) -> str:
        return artifact_key(self.app, self.version)


def artifact_key(app: str, version: str) -> str:
    return f"{ARTIFACT_PREFIX}{app}/{version}.zip"


def pipeline_key(app: str) -> str:
    return f"{PIPELINE_PREFIX}{app}.yaml"


def release_key(app: str, sha256_hex: str) -> str:
    """Where the package with digest ``sha256_hex`` is stored: one object per content, whatever its versions."""
    return f"{RELEASE_PREFIX}{app}/{sha256_hex}/package.zip"


def deployment_id(bucket: str, key: str, version_id: str | None, etag: str | None) -> str:
    """The deployment id of one pushed object, the same for every delivery and re-run of it.

    A versioned bucket names the object by its version id; without one the etag (content
    digest) stands in, so identical re-uploads map to the same deployment.
    """
    identity = f"s3://{bucket}/{key}#{version_id or ''}#{'' if version_id else (etag or '').strip(chr(34))}"
    return "d-" + hashlib.sha256(identity.encode()).hexdigest()[:20]
