"""A new user's first run, as the README tells it: `conveyor local up`, `conveyor local sample`, a push.

On a cloud of its own (the suite's shared cloud already holds the sample app and higher versions), driven
through the CLI's own entry point with the state directory a user's shell would export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_cli import main as cli
from conveyor_cli.context import STATE_DIR_ENV
from conveyor_cli.sample import ALARM, EXAMPLES, ROOT, SAMPLE_BUNDLE_VERSION
from conveyor_local.server import start_background, stop

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fresh_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("first-run")
    start_background(port=0, template=ROOT / "template.yaml", state_dir=state_dir, time_scale=0.01, fresh=True)
    try:
        yield state_dir
    finally:
        stop(state_dir)


@pytest.fixture
def shell(fresh_cloud: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A user's shell in a folder of their own, pointed at the fresh cloud; returns that folder."""
    monkeypatch.setenv(STATE_DIR_ENV, str(fresh_cloud))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_apply_refuses_a_spec_whose_targets_do_not_exist_naming_each(
    shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a fresh local cloud with nothing in it
    # When the sample pipeline is applied before its functions and alarm exist
    code = cli.main(["--local", "pipeline", "apply", str(EXAMPLES / "pipelines" / "hello.yaml")])

    # Then it is refused, naming every missing resource by its field, and says how to create them
    error = capsys.readouterr().err
    assert code == 1
    assert "environments[0] (staging).target.function_name: target function 'hello-staging' does not exist" in error
    assert "environments[1] (production).target.function_name: target function 'hello-production'" in error
    assert f"environments[1] (production).health.alarms[0]: alarm '{ALARM}' does not exist" in error
    assert "`conveyor local sample`" in error


def test_three_commands_take_a_new_user_to_a_first_deployment(shell: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given `conveyor local up` (the fixture), When the sample is set up, twice
    assert cli.main(["local", "sample"]) == 0
    first = capsys.readouterr().out
    assert cli.main(["local", "sample"]) == 0
    second = capsys.readouterr().out

    # Then the first run created the functions, the alarm, the pipeline and a bundle, and the second created
    # nothing and said what already existed
    assert "created  function hello-staging" in first
    assert f"created  alarm {ALARM}" in first
    assert "created  pipeline hello (hello.yaml) registered" in first
    bundle = shell / f"hello-{SAMPLE_BUNDLE_VERSION}.zip"
    assert bundle.exists()
    assert "created" not in second
    for resource in ("function hello-staging", "function hello-production", f"alarm {ALARM}", "pipeline hello"):
        assert f"existed  {resource}" in second
    # and a spec the user registered since is kept by a third run, not replaced by the sample's
    progressive = EXAMPLES / "pipelines" / "hello-progressive.yaml"
    assert cli.main(["--local", "pipeline", "apply", str(progressive), "--json"]) == 0
    applied = json.loads(capsys.readouterr().out)  # one document under --json, as every command gives
    assert (applied["app"], applied["environments"]) == ("hello", ["staging", "production"])
    assert cli.main(["local", "sample"]) == 0
    assert "existed  pipeline hello (the one registered" in capsys.readouterr().out
    assert cli.main(["--local", "pipeline", "show", "hello"]) == 0
    assert "canary" in capsys.readouterr().out
    assert cli.main(["local", "sample", "--pipeline", str(EXAMPLES / "pipelines" / "hello.yaml")]) == 0
    capsys.readouterr()

    # When the user pushes the bundle and follows it
    assert cli.main(["--local", "push", bundle.name]) == 0
    deployment = capsys.readouterr().out.strip()
    code = cli.main(["--local", "status", deployment, "--wait", "--timeout", "120"])

    # Then it went live in staging and production
    assert code == 0, capsys.readouterr()
    assert "SUCCEEDED" in capsys.readouterr().out
    # And the sample run again does not suggest pushing that bundle again (a no-op), but a newer build; its bundle
    # goes to a folder not made yet as to any other
    assert cli.main(["local", "sample", "--out", str(shell / "new" / "sub")]) == 0
    assert (shell / "new" / "sub" / bundle.name).exists()
    assert (
        f"is live already, so push a newer build: conveyor package {EXAMPLES / 'hello'} --app hello --version 1.1.1"
        in (capsys.readouterr().out)
    )


def test_up_refuses_to_change_the_time_scale_of_a_running_cloud(
    shell: Path, fresh_cloud: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the cloud runs at time scale 0.01
    # When it is asked to run at 0.5
    code = cli.main(["local", "up", "--time-scale", "0.5"])

    # Then it is refused, naming the running scale and how to restart; the cloud still runs as it did
    error = capsys.readouterr().err
    assert code == 1
    assert "already running at time scale 0.01" in error
    assert "--restart" in error
    assert cli.main(["local", "up", "--time-scale", "0.01"]) == 0
    assert "already running" in capsys.readouterr().out
    # and so is another port: the cloud answers where it did
    assert cli.main(["local", "up", "--port", "1"]) == 1
    assert "already running on port" in capsys.readouterr().err
