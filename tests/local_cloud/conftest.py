"""One local cloud per test session, in a subprocess, so tests cross the same process boundary users do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from local_cloud_support import FIXTURES, TIME_SCALE

from conveyor_local.server import client_env, start_background, stop


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("local-cloud")
    state = start_background(port=0, template=FIXTURES / "template.yaml", state_dir=state_dir, time_scale=TIME_SCALE)
    yield {**state, "state_dir": str(state_dir)}
    stop(state_dir)


@pytest.fixture(scope="session")
def aws(local_cloud: dict[str, Any]) -> Callable[[str], Any]:
    """``aws("lambda")`` -> a boto3 client bound to the session's local cloud."""
    env = client_env(local_cloud)
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=env["AWS_ENDPOINT_URL"])
        return clients[service]

    return client


@pytest.fixture(autouse=True)
def _no_other_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test names its own endpoint: none inherited from a session-wide cloud of another suite
    (the e2e fixtures point ``AWS_ENDPOINT_URL`` at theirs until the session ends), so in-process
    moto tests really talk to moto."""
    for name in ("AWS_ENDPOINT_URL", "CONVEYOR_LOCAL"):
        monkeypatch.delenv(name, raising=False)
