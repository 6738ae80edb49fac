"""Starting and stopping the local cloud in the background, as `conveyor local up/down` does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import boto3
import pytest
from local_cloud_support import FIXTURES, invoke

from conveyor_local.server import LocalCloudError, client_env, read_state, start_background, stop


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_up_is_idempotent_and_down_kills_server_and_workers(tmp_path: Path) -> None:
    # Given a local cloud started in the background
    state = start_background(port=0, template=FIXTURES / "template.yaml", state_dir=tmp_path)
    assert start_background(port=0, template=FIXTURES / "template.yaml", state_dir=tmp_path) == {
        **state,
        "already_running": True,
    }
    env = client_env(state)
    lambda_ = boto3.client(
        "lambda",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    payload, _ = invoke(lambda_, state["outputs"]["ProbeFunctionName"], {"action": "echo"})
    worker_pid = payload["pid"]

    # When it is stopped
    assert stop(tmp_path) is True

    # Then the server and its worker processes are gone and the state file is removed
    assert _gone(state["pid"])
    assert _gone(worker_pid)
    with pytest.raises(LocalCloudError, match="not running"):
        read_state(tmp_path)
    assert stop(tmp_path) is False


def test_a_failed_start_reports_the_server_log(tmp_path: Path) -> None:
    # Given a template the local cloud cannot provision
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  Net:\n    Type: AWS::EC2::VPC\n")

    # When started, Then the error carries the server's own explanation
    with pytest.raises(LocalCloudError, match=r"(?s)exited with status.*Net: resource type AWS::EC2::VPC"):
        start_background(port=0, template=template, state_dir=tmp_path / "state", timeout=60)
