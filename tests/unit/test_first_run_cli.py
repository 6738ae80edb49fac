"""The CLI a new user meets first: it runs from any folder, and the traffic recipe lasts the whole rollout."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor_cli import main as cli
from conveyor_cli.sample import ROOT


def test_local_up_provisions_conveyor_s_own_template_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli._template(None) == ROOT / "template.yaml"


def test_local_up_never_takes_another_project_s_template_from_the_folder_it_runs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    assert cli._template(None) == ROOT / "template.yaml"


def test_local_up_names_a_template_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert cli.main(["local", "up", "--template", str(missing)]) == 1
    assert f"{missing}: no such template" in capsys.readouterr().err


def test_background_traffic_runs_until_stopped_so_a_rollout_never_runs_out_of_it() -> None:
    # `conveyor local traffic hello staging --rps 40 &`, as the progressive example says: no 60 s cut-off
    args = cli.build_parser().parse_args(["local", "traffic", "hello", "staging", "--rps", "40"])
    assert args.duration is None  # cmd_local_traffic runs it for MAX_DURATION_SECONDS unless stopped
