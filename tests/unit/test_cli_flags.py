"""The CLI takes its global options anywhere on the line, as the AWS CLI does, and ends quietly on a closed pipe."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow

from conveyor_cli import main as cli
from conveyor_cli import operations
from conveyor_cli.context import CliError, Outputs
from tests.fakes import FakeLedger


class FakeCloud:
    outputs = Outputs(bucket="b", state_machine_arn="arn:sm", ledger_table="ledger", topic_arn="arn:topic")
    local = False


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """How the CLI opened the cloud (its keyword arguments), over a fake ledger with three deployments."""
    seen: dict[str, Any] = {}
    ledger = FakeLedger()
    for n in range(3):
        created = utcnow() - timedelta(minutes=10 - n)
        ledger.start(
            DeploymentRecord(
                deployment_id=f"d-{n}",
                app="hello",
                version=f"1.0.{n}",
                status=Outcome.SUCCEEDED,
                created_at=created,
                updated_at=created,
                finished_at=created + timedelta(seconds=95),
            )
        )

    def cloud(**kwargs: Any) -> FakeCloud:
        seen.update(kwargs)
        return FakeCloud()

    monkeypatch.setattr(cli, "Cloud", cloud)
    monkeypatch.setattr(operations, "ledger", lambda _: ledger)
    return seen


@pytest.mark.parametrize(
    "argv",
    [
        ["history", "--profile", "ops", "--region", "eu-west-1", "--output", "json"],
        ["--profile", "ops", "history", "--region", "eu-west-1", "--json"],
        ["--output", "json", "--region", "eu-west-1", "--profile", "ops", "history"],
    ],
    ids=["after", "mixed", "before"],
)
def test_global_options_are_taken_before_or_after_the_command(
    opened: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # When the global options are given anywhere on the line
    assert cli.main(argv) == 0
    # Then the cloud is opened with that profile and region, and the output is one JSON document
    assert (opened["profile"], opened["region"]) == ("ops", "eu-west-1")
    history = json.loads(capsys.readouterr().out)
    assert [record["deployment_id"] for record in history] == ["d-2", "d-1", "d-0"]


def test_the_table_output_names_times_and_durations_not_raw_seconds(
    opened: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["history", "--output", "table"]) == 0
    out = capsys.readouterr().out
    assert "1 min 35 s" in out  # 95 s, as a person reads it
    assert utcnow().strftime("%Y-%m-%d") in out  # when each started


def test_an_unknown_output_format_is_a_usage_error(opened: dict[str, Any]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["history", "--output", "yaml"])
    assert exited.value.code == 2


def test_output_cut_short_by_a_closed_pipe_ends_quietly(
    opened: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given stdout is a pipe whose reader has gone (`conveyor history | head -1` after head exited)
    read_end, write_end = os.pipe()
    os.close(read_end)
    pipe = io.TextIOWrapper(os.fdopen(write_end, "wb", buffering=0), write_through=True)
    monkeypatch.setattr("sys.stdout", pipe)
    try:
        # When the command writes its output
        code = cli.main(["history", "--limit", "3"])
        # Then it returns the closed-pipe code instead of raising a BrokenPipeError traceback
        assert code == cli.EXIT_BROKEN_PIPE
        pipe.write("the interpreter's last flush at exit goes nowhere, silently\n")
        pipe.flush()
    finally:
        monkeypatch.undo()
        pipe.close()
    assert capsys.readouterr().err == ""


def test_every_command_takes_the_global_options_after_its_name() -> None:
    # Given the whole parser (a command added later is walked the same way)
    parser = cli.build_parser()
    # Then each command's own parser knows every global option, so none is refused after the command
    commands = list(cli._parsers(parser))
    assert len(commands) > 20
    for command in commands:
        for flag in ("--local", "--stack-name", "--profile", "--region", "--output", "--json"):
            assert flag in command._option_string_actions, (command.prog, flag)


def test_an_unknown_profile_is_a_one_line_error_naming_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an AWS config without the profile asked for
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("CONVEYOR_LOCAL", raising=False)
    # When a command names it after the command
    assert cli.main(["outputs", "--profile", "nope"]) == 1
    # Then the reason names the profile, with no traceback
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["abc", "0", "$LATEST", "-1"])
def test_rollback_to_a_lambda_version_that_is_not_a_published_number_is_a_usage_error(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["rollback", "hello", "staging", "--lambda-version", given])
    assert exited.value.code == 2
    assert "is not a published Lambda version" in capsys.readouterr().err


def test_rollback_takes_a_lambda_version_as_its_number() -> None:
    args = cli.build_parser().parse_args(["rollback", "hello", "staging", "--lambda-version", "07"])
    assert args.lambda_version == "7"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["metrics", "--days", "0"], "--days: 0 is less than"),
        (["metrics", "--days", "-5"], "--days: -5 is less than"),
        (["history", "--limit", "0"], "--limit: 0 is less than 1"),
        (["history", "--limit", "ten"], "--limit: 'ten' is not a number"),
        (["package", ".", "--app", "hello", "--version", "1.0.0", "--env", "NOEQ"], "--env: 'NOEQ' is not KEY=VALUE"),
        (["ship", ".", "--app", "hello", "--version", "1.0.0", "--env", "=x"], "--env: '=x' is not KEY=VALUE"),
        (["local", "up", "--time-scale", "-1"], "--time-scale: -1 is less than 0"),
        (["local", "up", "--time-scale", "nan"], "--time-scale: 'nan' is not a finite number"),
    ],
)
def test_a_window_or_a_limit_that_cannot_be_one_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_package_into_a_folder_writes_the_bundle_in_it_under_its_name(tmp_path: Any) -> None:
    from conveyor_cli.sample import EXAMPLES

    assert (
        cli.main(["package", str(EXAMPLES / "hello"), "--app", "hello", "--version", "1.2.3", "--out", str(tmp_path)])
        == 0
    )
    assert [p.name for p in tmp_path.iterdir()] == ["hello-1.2.3.zip"]


@pytest.mark.parametrize(
    ("out", "written"),
    [
        ("builds/", "builds/hello-1.2.3.zip"),  # a folder not made yet: a trailing slash says so
        ("builds/release.zip", "builds/release.zip"),  # a file in a folder not made yet
        (None, "hello-1.2.3.zip"),
    ],
)
def test_a_bundle_goes_where_out_says_folders_made_as_needed(
    out: str | None, written: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor_cli.packaging import bundle_destination, write_bundle

    monkeypatch.chdir(tmp_path)
    path = bundle_destination(out, "hello", "1.2.3")
    write_bundle(path, b"zip")
    assert path == Path(written)
    assert (tmp_path / written).read_bytes() == b"zip"


def test_ship_refuses_a_negative_wait_before_pushing_anything(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["ship", "examples/hello", "--app", "hello", "--version", "9.0.0", "--wait-timeout", "-5"])
    assert usage.value.code == 2
    assert "--wait-timeout: -5 is less than 0" in capsys.readouterr().err


def test_a_bundle_that_cannot_be_written_is_a_one_line_error_naming_the_path(tmp_path: Any) -> None:
    from conveyor_cli.packaging import write_bundle

    (tmp_path / "file").write_text("")
    with pytest.raises(CliError, match=rf"cannot write the bundle to {tmp_path / 'file' / 'x.zip'}: "):
        write_bundle(tmp_path / "file" / "x.zip", b"zip")


def test_a_path_on_the_line_that_cannot_be_read_is_one_line_naming_it_not_a_traceback(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["pipeline", "apply", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"conveyor: {tmp_path}: Is a directory\n"
    assert cli.main(["pipeline", "apply", str(tmp_path / "missing.yaml")]) == 1
    assert capsys.readouterr().err == f"conveyor: {tmp_path / 'missing.yaml'}: No such file or directory\n"


@pytest.mark.parametrize("where", ["folder", "through a file"])
def test_pushing_a_path_that_is_not_a_file_is_a_one_line_error_naming_it(where: str, tmp_path: Any) -> None:
    path = tmp_path if where == "folder" else (tmp_path / "file").joinpath("x.zip")
    (tmp_path / "file").write_text("")
    with pytest.raises(CliError, match=rf"cannot read the bundle {path}: "):
        operations.push(FakeCloud(), path)  # type: ignore[arg-type]


def test_outputs_lists_every_output_of_the_stack_the_four_it_needs_first() -> None:
    outputs = Outputs.from_mapping(
        {
            "DashboardName": "conveyor",
            "ArtifactBucketName": "b",
            "StateMachineArn": "arn:sm",
            "LedgerTableName": "t",
            "NotificationTopicArn": "arn:topic",
            "LifecycleEventBusName": "conveyor-lifecycle",
        },
        "stack",
    )
    assert list(outputs.as_dict()) == [
        "ArtifactBucketName",
        "StateMachineArn",
        "LedgerTableName",
        "NotificationTopicArn",
        "DashboardName",
        "LifecycleEventBusName",
    ]


def test_an_env_key_given_twice_is_a_usage_error_naming_it(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from conveyor_cli.sample import EXAMPLES

    argv = ["package", str(EXAMPLES / "hello"), "--app", "hello", "--version", "1.2.3", "--out", str(tmp_path)]
    assert cli.main([*argv, "--env", "A=1", "--env", "A=2", "--env", "B=3"]) == 2
    assert "--env: A given more than once" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_function_setting_out_of_range_names_the_flag_typed_and_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from conveyor_cli.sample import EXAMPLES

    hello = ["package", str(EXAMPLES / "hello"), "--app", "hello", "--version", "1.0.0"]
    assert cli.main([*hello, "--memory", "5", "--timeout", "99999"]) == 2
    assert capsys.readouterr().err == (
        "conveyor: --memory: Input should be greater than or equal to 128; "
        "--timeout: Input should be less than or equal to 900\n"
    )


def test_abort_of_an_app_without_its_environment_is_a_usage_error_saying_what_to_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["abort", "hello"]) == 2
    assert "`conveyor abort hello ENV`" in capsys.readouterr().err
