"""The operator CLI against the real ASL on the local cloud, run as a user runs it: from any folder, global options
anywhere, following a plain upload, and the Argo-Rollouts-style verbs (live, promote, logs, abort, rollback --to)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.layout import artifact_key
from conveyor.domain.outcome import Outcome

from conveyor_cli import main as cli
from conveyor_cli import operations
from conveyor_cli.context import STATE_DIR_ENV
from conveyor_cli.sample import EXAMPLES, alias_versions

from .conftest import Stage

pytestmark = pytest.mark.e2e

LONG_CANARY = {"type": "canary", "weight": 20, "bake_seconds": 86_400}  # 864 s at the suite's time scale


@pytest.fixture
def user(stage: Stage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A user who ran `eval $(conveyor local env)` and works in a folder that is not the repository."""
    monkeypatch.setenv(STATE_DIR_ENV, str(stage.state_dir))
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def until(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
    return value


def test_status_wait_right_after_a_plain_upload_follows_that_push(
    stage: Stage, pipeline: Callable[..., None], user: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a bundle uploaded as `aws s3 cp` does, from CI (no `conveyor push`, no id printed)
    pipeline(allow_downgrade=True)
    bundle = stage.bundle(EXAMPLES / "hello", "0.20.0").read_bytes()
    pushed = stage.upload(artifact_key("hello", "0.20.0"), bundle)

    # When the user follows "the latest deployment" at once, with the global options after the command
    code, out, _ = run(capsys, "status", "--wait", "--local", "--output", "json", "--timeout", "120")

    # Then it follows that push (not an earlier deployment, not "no deployments yet") to its end
    document = json.loads(out)
    assert document["deployment_id"] == pushed
    assert (code, document["status"]) == (0, "SUCCEEDED")


def test_status_wait_on_a_push_nothing_picks_up_names_it_and_says_why(
    stage: Stage, pipeline: Callable[..., None], user: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the artifact rule switched off (an EventBridge outage): a push that no execution will ever record
    pipeline(allow_downgrade=True)
    events = stage.cloud.client("events")
    rule = next(r["Name"] for r in events.list_rules()["Rules"] if "aws.s3" in r.get("EventPattern", ""))
    events.disable_rule(Name=rule)
    try:
        pushed = stage.upload(artifact_key("hello", "0.20.9"), stage.bundle(EXAMPLES / "hello", "0.20.9").read_bytes())
        # When the user follows the latest deployment, giving a push no time to be picked up
        code, out, err = run(capsys, "status", "--wait", "--local", "--start-timeout", "0", "--timeout", "60")
    finally:
        events.enable_rule(Name=rule)

    # Then it followed that push (derived from the object, not the ledger's newest), and says plainly that
    # nothing picked it up and where to look, at once rather than after --timeout
    assert code == 1
    assert f"the latest push: s3://{stage.cloud.outputs.bucket}/{artifact_key('hello', '0.20.9')}" in out
    assert f"deployment {pushed} was not picked up" in err
    assert "EventBridge rule" in err
    assert "Is the id right" in err  # a mistyped id reads the same: the message names that first


def test_rollback_to_an_app_version_and_history_shows_it(
    stage: Stage,
    pipeline: Callable[..., None],
    user: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 0.20.0 was live in staging (the previous test) and 0.20.1 replaced it
    pipeline(allow_downgrade=True)
    ledger = operations.ledger(stage.cloud)
    earlier = next(r for r in ledger.history(app="hello", limit=50) if r.version == "0.20.0")
    carried = earlier.environments["staging"].version_after
    newer = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.20.1"))["deployment_id"])
    assert newer.record.status is Outcome.SUCCEEDED
    assert alias_versions(stage.cloud, stage.targets.functions)["staging"]["version"] != carried

    # When the on-call rolls staging back to the app version, as its manifest names it
    code, out, _ = run(capsys, "rollback", "hello", "staging", "--to", "0.20.0", "--local")

    # Then the alias is back on the Lambda version that carried 0.20.0
    assert code == 0, out
    assert alias_versions(stage.cloud, stage.targets.functions)["staging"] == {"version": carried, "routing": {}}
    assert "serving hello 0.20.0" in out
    # And history shows when each deployment started and that 0.20.1 was rolled back by hand afterwards
    # (wide enough for the whole row: a narrower COLUMNS folds the note across lines, as a terminal would)
    monkeypatch.setenv("COLUMNS", "300")
    code, table, _ = run(capsys, "history", "--app", "hello", "--local")
    assert code == 0
    line = next((row for row in table.splitlines() if newer.record.deployment_id in row), None)
    assert line is not None, table
    assert "staging rolled back by hand by" in line, table
    assert newer.record.created_at.strftime("%Y-%m-%d %H:%M") in line


def test_a_canary_is_live_in_part_cannot_be_promoted_past_its_wait_and_aborts_to_the_release_before(
    stage: Stage, pipeline: Callable[..., None], user: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a canary of 0.20.2 baking at 20% in staging
    pipeline(allow_downgrade=True, environments__0__strategy=LONG_CANARY)
    before = alias_versions(stage.cloud, stage.targets.functions)["staging"]["version"]
    pushed = operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "0.20.2"))["deployment_id"]
    until(lambda: alias_versions(stage.cloud, stage.targets.functions)["staging"]["routing"], "the canary split")
    stage.notifications_naming(pushed)  # (set aside what came before the abort)

    # When the user asks what staging serves
    code, out, _ = run(capsys, "live", "hello", "--local", "--json")
    # Then it names both versions, their weights, and the deployment rolling out
    assert code == 0
    staging = next(entry for entry in json.loads(out) if entry["environment"] == "staging")
    assert staging["lambda_version"] == before
    canary = staging["shares"][1]
    assert (canary["percent"], canary["release"], canary["deployment_id"]) == (20, "0.20.2", pushed)
    assert staging["shares"][0]["percent"] == 80

    # When the user tries to promote it past its bake: refused, saying why (a Wait cannot be ended early)
    code, _, err = run(capsys, "promote", pushed, "--local")
    assert code == 1
    assert "Wait state, which cannot be ended early" in err

    # When the user reads the shift's logs
    code, out, _ = run(capsys, "logs", pushed, "--stage", "ShiftTraffic", "--local", "--json")
    assert code == 0
    logs = json.loads(out)
    assert logs["events"]
    assert {event["stage"] for event in logs["events"]} == {"ShiftTraffic"}
    assert any(line["message"] == "traffic shifted" for line in logs["lines"])
    assert {line["stage"] for line in logs["lines"]} == {"ShiftTraffic"}

    # When the user aborts it
    code, out, err = run(capsys, "abort", pushed, "--local", "--reason", "latency", "--json")

    # Then the rollout is stopped and restored, and the ledger and the notification say who aborted it
    assert code == 0, err
    aborted = json.loads(out)
    assert (aborted["outcome"], aborted["restored"]) == ("ABORTED", ["staging"])
    assert alias_versions(stage.cloud, stage.targets.functions)["staging"] == {"version": before, "routing": {}}
    record = operations.ledger(stage.cloud).get(pushed)
    assert record is not None
    # (the caller's AWS identity, as STS answers it: never a name typed on the command line)
    assert re.search(r"aborted by arn:aws:\S+ with `conveyor abort`: latency", record.failure["reason"])
    notes = stage.await_notifications(pushed, "the abort's notification")
    assert len(notes) == 1
    assert "aborted by arn:aws:" in notes[0]["message"]
    # And nothing is left to abort
    code, _, err = run(capsys, "abort", "hello", "staging", "--local")
    assert code == 1
    assert "nothing is rolling out in hello/staging" in err
