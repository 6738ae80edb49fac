"""The CLI finds the local cloud from any folder: its state lives in the user's data directory, not in ./.conveyor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conveyor_cli import main as cli
from conveyor_cli.context import REPOSITORY_ROOT, STATE_DIR_ENV, Cloud, resolve_state_dir, state_dir
from conveyor_local.server import STATE_FILE

OUTPUTS = {
    "ArtifactBucketName": "artifacts",
    "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:Deployment",
    "LedgerTableName": "ledger",
    "NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:notices",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user whose data directory is under ``tmp_path``, working in a folder that is not the repository."""
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    elsewhere = tmp_path / "some" / "project"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    return tmp_path


def running_cloud(where: Path, endpoint: str = "http://127.0.0.1:4599") -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / STATE_FILE).write_text(json.dumps({"endpoint": endpoint, "region": "us-east-1", "outputs": OUTPUTS}))
    return where


def test_the_state_lives_in_the_users_data_directory_whatever_the_working_directory(home: Path) -> None:
    # Given a user working in some project folder
    # When the CLI asks where the local cloud's state is
    # Then it is the data directory, an absolute path that does not depend on the folder
    assert state_dir() == home / "data" / "conveyor"
    assert state_dir().is_absolute()


def test_a_command_run_from_another_folder_finds_the_running_local_cloud(home: Path) -> None:
    # Given a local cloud started earlier (its state in the data directory)
    running_cloud(home / "data" / "conveyor")
    # When a command opens the local cloud from a folder that is not the repository
    cloud = Cloud(local=True)
    # Then it finds it, instead of saying the local cloud is not running
    assert cloud.endpoint_url == "http://127.0.0.1:4599"


def test_conveyor_state_dir_wins_and_local_env_exports_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a local cloud whose state is in a directory named by CONVEYOR_STATE_DIR
    chosen = running_cloud(home / "elsewhere" / "state")
    monkeypatch.setenv(STATE_DIR_ENV, str(chosen))
    # When the user asks for the shell exports
    assert cli.main(["local", "env"]) == 0
    # Then they name that directory, so every later command (from any folder) uses the same cloud
    exports = capsys.readouterr().out
    assert f"export {STATE_DIR_ENV}={chosen}" in exports
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4599" in exports


def test_a_state_directory_left_in_dot_conveyor_by_an_earlier_conveyor_is_still_found_and_reported(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a ./.conveyor from before, holding a saved cloud, and nothing in the data directory yet
    legacy = running_cloud(Path.cwd() / ".conveyor")
    # When the CLI resolves the state directory
    found = resolve_state_dir()
    # Then it uses the old one, and `local up` says so and how to move it
    assert (found.path, found.legacy) == (legacy, True)
    started: dict[str, Any] = {}
    monkeypatch.setattr(cli, "start_background", lambda *a, **k: started.update(args=a) or {"endpoint": "x", "pid": 1})
    assert cli.main(["local", "up"]) == 0
    assert started["args"][2] == legacy
    note = capsys.readouterr().err
    assert str(legacy) in note
    assert STATE_DIR_ENV in note


def test_local_up_provisions_conveyors_own_template_from_any_folder(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a folder with no template.yaml (or another project's)
    (Path.cwd() / "template.yaml").write_text("Resources: {}\n")
    started: dict[str, Any] = {}
    monkeypatch.setattr(cli, "start_background", lambda *a, **k: started.update(args=a) or {"endpoint": "x", "pid": 1})
    # When the user starts the local cloud without --template
    assert cli.main(["local", "up"]) == 0
    # Then the template is this Conveyor's, and the state goes to the data directory
    template, where = Path(started["args"][1]), Path(started["args"][2])
    assert template == REPOSITORY_ROOT / "template.yaml"
    assert where == home / "data" / "conveyor"


def test_local_up_on_a_running_cloud_does_not_say_what_its_first_start_restored(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cloud already running, whose state file still says what its own start restored (nothing)
    state = {"endpoint": "x", "pid": 1, "already_running": True, "restored": {"restored": False}}
    monkeypatch.setattr(cli, "start_background", lambda *a, **k: state)
    # When `local up` runs again, Then it says the cloud is running, not that it started empty
    assert cli.main(["local", "up"]) == 0
    out = capsys.readouterr().out
    assert "already running" in out
    assert "started empty" not in out
