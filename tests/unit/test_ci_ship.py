"""``conveyor ship`` (package + push + follow) and ``conveyor summary`` (Markdown for a CI job summary).

The push and the follow are faked here (the real ones run end to end in tests/e2e/test_ship_e2e.py): what is
checked is what a CI job sees, the exit code, the lines it prints, the Markdown it writes, and that a bad build
directory stops it before anything is pushed.
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.timing import utcnow

from conveyor_cli import ci, operations
from conveyor_cli import main as cli
from conveyor_cli.ci import summary_markdown
from conveyor_cli.context import Outputs
from conveyor_cli.packaging import BundleSourceError, build_bundle
from conveyor_cli.status import ExitCode
from tests.fakes import FakeLedger
from tests.fakes.builders import described

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:conveyor-deployments:run-1"


class FakeCloud:
    outputs = Outputs(bucket="b", state_machine_arn="arn:sm", ledger_table="conveyor-ledger", topic_arn="arn:topic")
    local = True


def record(status: Outcome, **fields: Any) -> DeploymentRecord:
    created = utcnow()
    return DeploymentRecord.model_validate(
        {
            "deployment_id": "d-1",
            "app": "hello",
            "version": "1.4.2",
            "status": status,
            "created_at": created,
            "updated_at": created,
            "finished_at": created + timedelta(seconds=12.5),
            "execution_arn": EXECUTION,
            **fields,
        }
    )


ROLLED_BACK = record(
    Outcome.ROLLED_BACK,
    failure={"environment": "staging", "error": "HealthCheckFailedError", "reason": "synthetic: status | degraded"},
    environments={
        "staging": {
            "status": "ROLLED_BACK",
            "function_name": "hello-staging",
            "alias": "live",
            "version_before": "3",
            "version_after": "4",
            "rollback": {"restored_version": "3", "rolled_back_from": "4"},
        }
    },
)


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    source = tmp_path / "build"
    source.mkdir()
    (source / "app.py").write_text("def handler(event, context):\n    return {'status': 'ok'}\n")
    return source


@pytest.fixture
def pushes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``ship`` pushed (the bundle's manifest), with the cloud faked."""
    pushed: list[dict[str, Any]] = []

    def push(cloud: Any, bundle: Path) -> dict[str, Any]:
        with zipfile.ZipFile(bundle) as archive:
            manifest = json.loads(archive.read("manifest.json"))
        pushed.append(manifest)
        key = f"artifacts/{manifest['app']}/{manifest['version']}.zip"
        return {
            "deployment_id": "d-1",
            "app": manifest["app"],
            "version": manifest["version"],
            "s3_uri": f"s3://b/{key}",
        }

    monkeypatch.setattr(cli, "_cloud", lambda args: FakeCloud())
    monkeypatch.setattr(operations, "push", push)
    return pushed


def ends_as(monkeypatch: pytest.MonkeyPatch, ended: DeploymentRecord, execution: str = "SUCCEEDED") -> None:
    """The followed deployment ends as ``ended``; its execution is ``execution``."""
    events = [
        StageEvent(
            deployment_id="d-1",
            stage="ValidateArtifact",
            status="ok",
            started_at=ended.created_at,
            finished_at=ended.created_at,
            duration_ms=3.0,
        )
    ]

    def wait(cloud: Any, deployment_id: str, *, timeout: float, on_event: Any = None) -> DeploymentRecord:
        assert deployment_id == "d-1"
        for event in events:
            on_event(event, ended.created_at.timestamp())
        return ended.model_copy(update={"events": events})

    monkeypatch.setattr(operations, "wait", wait)
    monkeypatch.setattr(operations, "execution_state", lambda cloud, arn: described(arn, execution))


def ship(build_dir: Path, tmp_path: Path, *extra: str) -> int:
    out = str(tmp_path / "bundle.zip")
    return cli.main(["ship", str(build_dir), "--app", "hello", "--version", "1.4.2", "--out", out, *extra])


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (Outcome.SUCCEEDED, 0),
        (Outcome.FAILED, 3),
        (Outcome.ROLLED_BACK, 4),
        (Outcome.ROLLBACK_FAILED, 5),
        (Outcome.SUPERSEDED, 6),
        (Outcome.SKIPPED_DUPLICATE, 7),
        (Outcome.ABORTED, 8),
    ],
)
def test_ship_exits_with_the_code_of_how_the_deployment_ended(
    build_dir: Path,
    tmp_path: Path,
    pushes: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    outcome: Outcome,
    code: int,
) -> None:
    # Given a deployment that will end with `outcome`
    ends_as(monkeypatch, record(outcome))

    # When CI ships the build
    exit_code = ship(build_dir, tmp_path)

    # Then the exit code is conveyor status's for that outcome, and the bundle pushed is the build's
    assert exit_code == code
    assert [(p["app"], p["version"]) for p in pushes] == [("hello", "1.4.2")]


def test_ship_prints_the_deployment_id_the_stages_and_one_outcome_line(
    build_dir: Path, tmp_path: Path, pushes: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Given a deployment that will roll back
    ends_as(monkeypatch, ROLLED_BACK)

    # When CI ships the build
    assert ship(build_dir, tmp_path) == ExitCode.ROLLED_BACK

    # Then the log names the deployment once pushed, shows the stages, and ends with one line saying why
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "pushed s3://b/artifacts/hello/1.4.2.zip"
    assert lines[1] == "deployment d-1"
    assert "ValidateArtifact" in lines[2]
    assert lines[-1] == (
        "hello 1.4.2 ROLLED_BACK in 12.5 s: staging: HealthCheckFailedError: synthetic: status | degraded (exit 4)"
    )


def test_ship_json_is_one_document_on_stdout(
    build_dir: Path, tmp_path: Path, pushes: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Given a deployment that will go live
    ends_as(monkeypatch, record(Outcome.SUCCEEDED))

    # When CI ships with --json
    assert ship(build_dir, tmp_path, "--json") == 0

    # Then stdout parses as one document with the id, outcome and code; the progress went to stderr
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert (document["deployment_id"], document["outcome"], document["exit_code"]) == ("d-1", "SUCCEEDED", 0)
    assert document["deployment"]["execution"]["status"] == "SUCCEEDED"
    assert "deployment d-1" in captured.err


def test_ship_appends_the_summary_to_the_file_ci_gives(
    build_dir: Path, tmp_path: Path, pushes: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job summary file another step already wrote to, and a deployment that will roll back
    summary = tmp_path / "step-summary.md"
    summary.write_text("# tests passed\n\n")
    ends_as(monkeypatch, ROLLED_BACK)

    # When CI ships with --summary
    assert ship(build_dir, tmp_path, "--summary", str(summary)) == ExitCode.ROLLED_BACK

    # Then the earlier text is kept and the outcome follows it
    text = summary.read_text()
    assert text.startswith("# tests passed\n\n### ❌ hello 1.4.2: ROLLED_BACK")
    assert "| exit code | 4: " in text


def test_ship_gives_up_following_with_the_wait_timeout_code(
    build_dir: Path, tmp_path: Path, pushes: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Given a deployment still running when --wait-timeout passes
    ledger = FakeLedger()
    ledger.start(record(Outcome.IN_PROGRESS, finished_at=None))
    monkeypatch.setattr(operations, "ledger", lambda cloud: ledger)

    def wait(cloud: Any, deployment_id: str, *, timeout: float, on_event: Any = None) -> DeploymentRecord:
        raise TimeoutError(f"deployment {deployment_id} still IN_PROGRESS after {timeout:.0f} s")

    monkeypatch.setattr(operations, "wait", wait)

    # When CI ships it
    exit_code = ship(build_dir, tmp_path, "--wait-timeout", "5")

    # Then it exits 10 and says the deployment may still end either way
    assert exit_code == ExitCode.WAIT_TIMED_OUT == 10
    assert capsys.readouterr().out.splitlines()[-1] == (
        "hello 1.4.2 still IN_PROGRESS after 5 s of waiting; it may still end either way (exit 10)"
    )


def _missing(root: Path) -> Path:
    return root / "missing"


def _a_file(root: Path) -> Path:
    (root / "build.txt").write_text("not a folder")
    return root / "build.txt"


def _empty(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


def _only_caches(root: Path) -> Path:
    (root / "cached" / "__pycache__").mkdir(parents=True)
    (root / "cached" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    return root / "cached"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_missing, "no such directory"),
        (_a_file, "not a directory"),
        (_empty, "no file to deploy in it"),
        (_only_caches, "no file to deploy in it"),
    ],
    ids=["missing", "a-file", "empty", "only-caches"],
)
def test_a_build_directory_with_nothing_to_deploy_is_refused_before_anything_is_pushed(
    tmp_path: Path, pushes: list[dict[str, Any]], capsys: Any, monkeypatch: pytest.MonkeyPatch, make: Any, says: str
) -> None:
    # Given a build directory that is missing, a file, empty, or holds only caches, and no AWS to reach
    source = make(tmp_path)
    monkeypatch.setattr(cli, "_cloud", lambda args: pytest.fail("the cloud was reached before the build was checked"))

    # When it is packaged, or shipped by CI
    with pytest.raises(BundleSourceError, match=re.escape(f"cannot package {source}: {says}")):
        build_bundle(source, app="hello", version="1.4.2")
    exit_code = ship(source, tmp_path)

    # Then shipping fails with one line naming the directory, before any AWS call, and nothing was built or pushed
    assert exit_code == ExitCode.ERROR == 1
    err = capsys.readouterr().err
    assert err.startswith(f"conveyor: cannot package {source}: {says}")
    assert err.count("\n") == 1
    assert pushes == []
    assert not (tmp_path / "bundle.zip").exists()


def test_summary_markdown_shows_outcome_environments_and_why(tmp_path: Path) -> None:
    # Given a rolled-back deployment whose failure reason holds a pipe
    # When it is rendered for a job summary
    markdown = summary_markdown(ROLLED_BACK, ExitCode.ROLLED_BACK)

    # Then the heading, the exit code, the restored alias and the reason are there, the pipe escaped
    assert markdown.startswith("### ❌ hello 1.4.2: ROLLED_BACK\n")
    assert (
        "| outcome | **ROLLED_BACK** |\n| exit code | 4: a check failed, the target serves the release before again |"
        in markdown
    )
    assert "| staging | `hello-staging:live` | 3 | 3 | ROLLED_BACK |" in markdown
    assert "| why | staging: HealthCheckFailedError: synthetic: status \\| degraded |" in markdown


def test_summary_command_appends_markdown_and_exits_zero_whatever_the_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a rolled-back deployment in the ledger
    ledger = FakeLedger()
    ledger.start(ROLLED_BACK)
    monkeypatch.setattr(cli, "_cloud", lambda args: FakeCloud())
    monkeypatch.setattr(operations, "ledger", lambda cloud: ledger)
    monkeypatch.setattr(operations, "execution_state", lambda cloud, arn: described(arn, "FAILED"))
    out = tmp_path / "summary.md"

    # When a CI step writes its summary
    exit_code = cli.main(["summary", "d-1", "--out", str(out)])

    # Then the step succeeds (the follow step already failed the job) and the file says how it ended
    assert exit_code == 0
    assert out.read_text().startswith("### ❌ hello 1.4.2: ROLLED_BACK")
    # and with the global --output json it is the deployment as JSON, as `status --json` gives it
    assert cli.main(["summary", "d-1", "--output", "json", "--out", str(tmp_path / "summary.json")]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "ROLLED_BACK"


def test_summary_of_an_unknown_deployment_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Given an empty ledger and no execution deploying the id
    monkeypatch.setattr(cli, "_cloud", lambda args: FakeCloud())
    monkeypatch.setattr(operations, "ledger", lambda cloud: FakeLedger())
    monkeypatch.setattr(operations, "running_execution_of", lambda cloud, deployment_id: None)

    # When a summary is asked for
    # Then it fails with the reason conveyor status gives
    assert cli.main(["summary", "d-unknown"]) == ExitCode.ERROR
    assert "deployment d-unknown is not in the ledger (conveyor-ledger)" in capsys.readouterr().err


def test_options_every_command_accepts_reach_ship_and_summary() -> None:
    # Given a CLI whose every command accepts --region (a parent parser, as global options may be given)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region")
    parser = argparse.ArgumentParser(prog="conveyor")
    ci.register(parser.add_subparsers(dest="command"), cloud_of=lambda args: FakeCloud(), parents=[common])  # type: ignore[arg-type,return-value]

    # When it is given after either command
    shipped = parser.parse_args(["ship", "build", "--app", "hello", "--version", "1.4.2", "--region", "eu-west-1"])
    summary = parser.parse_args(["summary", "d-1", "--region", "eu-west-1"])

    # Then both commands took it
    assert shipped.region == summary.region == "eu-west-1"


def test_summary_takes_the_global_output_format_and_its_file_as_out() -> None:
    # `--output json` is the global format everywhere on the line; the summary's file is `-o/--out`
    args = cli.parse(["summary", "d-1", "--output", "json", "--out", "summary.md"])
    assert (args.output_format, args.out) == ("json", "summary.md")
