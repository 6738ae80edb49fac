"""``conveyor logs`` reads the stages' structured lines; ``conveyor live`` says what serves, in what shares."""

from __future__ import annotations

import json

import pytest

from conveyor_cli.live import LiveEnvironment, Share, live_row
from conveyor_cli.logs import parse_line


def test_a_powertools_line_keeps_its_stage_level_and_message() -> None:
    line = parse_line(
        "conveyor-rollout",
        {
            "timestamp": 1_764_770_000_000,
            "message": json.dumps(
                {"level": "INFO", "message": "traffic shifted", "stage": "ShiftTraffic", "correlation_id": "d-1"}
            ),
        },
    )
    assert (line.stage, line.level, line.message) == ("ShiftTraffic", "INFO", "traffic shifted")
    assert line.fields is not None
    assert line.fields["correlation_id"] == "d-1"


def test_a_plain_line_is_kept_as_it_was_written() -> None:
    line = parse_line("conveyor-rollout", {"timestamp": 0, "message": "START RequestId: 42 d-1\n"})
    assert (line.stage, line.level, line.message, line.fields) == (None, None, "START RequestId: 42 d-1", None)


def test_a_canary_reads_as_two_shares_with_the_rollout_named() -> None:
    entry = LiveEnvironment(
        app="hello",
        environment="staging",
        function_name="hello-staging",
        alias="live",
        exists=True,
        lambda_version="4",
        release="1.4.1",
        deployment_id="d-old",
        recorded_by="PromoteTraffic",
        shares=[
            Share(lambda_version="4", percent=80, release="1.4.1", deployment_id="d-old"),
            Share(lambda_version="5", percent=20, release="1.4.2", deployment_id="d-new"),
        ],
    )
    row = live_row(entry)
    assert row[3] == "1.4.1 (v4)"
    assert row[4] == "80% v4 (1.4.1), 20% v5 (1.4.2, d-new)"
    assert row[6] == "d-old (PromoteTraffic)"


def test_an_alias_never_deployed_says_so() -> None:
    entry = LiveEnvironment(
        app="hello", environment="production", function_name="f", alias="live", exists=False, note="nothing deployed"
    )
    assert live_row(entry)[3:5] == ("nothing", "nothing deployed")


def test_logs_of_a_stage_the_deployment_never_ran_names_the_stages_it_did(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.domain.records import DeploymentRecord, StageEvent
    from conveyor.domain.timing import utcnow

    from conveyor_cli import logs, operations
    from conveyor_cli.context import CliError
    from tests.fakes import FakeLedger

    ledger, now = FakeLedger(), utcnow()
    ledger.start(
        DeploymentRecord(
            deployment_id="d-1", app="hello", version="1.0.0", status="SUCCEEDED", created_at=now, updated_at=now
        )
    )
    ledger.record_event(
        StageEvent(
            deployment_id="d-1", stage="Deploy", status="succeeded", started_at=now, finished_at=now, duration_ms=1.0
        )
    )
    monkeypatch.setattr(operations, "ledger", lambda cloud: ledger)
    with pytest.raises(CliError, match=r"d-1 has no 'Bogus' stage event \(its stages: Deploy\)"):
        logs.deployment_logs(object(), "d-1", stage="Bogus")  # type: ignore[arg-type]


def test_an_alias_a_manual_rollback_moved_to_an_unrecorded_release_names_the_rollback_not_an_outside_change() -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.domain.outcome import Outcome
    from conveyor.domain.records import DeploymentRecord
    from conveyor.domain.timing import utcnow

    from conveyor_cli.live import alias_note

    # Given the on-call rolled staging back to Lambda version 1, whose release the ledger never recorded
    rolled_back = DeploymentRecord.model_validate(
        {
            "deployment_id": "d-2",
            "app": "hello",
            "version": "2.0.0",
            "status": Outcome.SUCCEEDED,
            "created_at": utcnow(),
            "updated_at": utcnow(),
            "environments": {
                "staging": {
                    "status": EnvironmentStatus.ROLLED_BACK,
                    "rollback": {
                        "function_name": "hello-staging",
                        "restored_version": "1",
                        "operator": "arn:aws:iam::123456789012:user/alice",
                        "rolled_back_at": "2026-12-06T10:00:00+00:00",
                        # a target of several functions: the same rollback restored its companion too
                        "companions": [{"function_name": "hello-worker", "restored_version": "4"}],
                    },
                }
            },
        }
    )
    records = [rolled_back]

    # Then what the alias serves is said to be that rollback's doing, not a change made outside Conveyor
    note = alias_note(None, "1", records, environment="staging", function="hello-staging")
    assert note is not None
    assert note.startswith("rolled back to version 1 by arn:aws:iam::123456789012:user/alice with `conveyor rollback`")
    companion = alias_note(None, "4", records, environment="staging", function="hello-worker")
    assert companion is not None
    assert companion.startswith("rolled back to version 4 by arn:aws:iam::123456789012:user/alice")
    # And a version nobody rolled back to is still called what it is
    other = alias_note(None, "7", records, environment="staging", function="hello-staging")
    assert other is not None
    assert "set outside Conveyor" in other


def test_a_line_another_deployment_logged_naming_this_one_is_not_its_log() -> None:
    from datetime import timedelta
    from types import SimpleNamespace

    import boto3
    from conveyor.domain.timing import utcnow
    from moto import mock_aws

    from conveyor_cli.logs import read_lines

    # Given the intake's log: a line of d-1, and one of d-2 (a duplicate push) that names d-1 as what it duplicates
    now = utcnow()
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        client = session.client("logs")
        client.create_log_group(logGroupName="/aws/lambda/intake")
        client.create_log_stream(logGroupName="/aws/lambda/intake", logStreamName="s")
        stamp = int(now.timestamp() * 1000)
        client.put_log_events(
            logGroupName="/aws/lambda/intake",
            logStreamName="s",
            logEvents=[
                {"timestamp": stamp, "message": json.dumps({"message": "claimed", "correlation_id": "d-1"})},
                {
                    "timestamp": stamp + 1,
                    "message": json.dumps({"message": "duplicate", "correlation_id": "d-2", "duplicate_of": "d-1"}),
                },
            ],
        )

        # Then d-1's lines are its own
        lines = read_lines(
            SimpleNamespace(session=session),  # type: ignore[arg-type]
            "intake",
            "d-1",
            now - timedelta(minutes=1),
            now + timedelta(minutes=1),
        )
    assert [line.message for line in lines] == ["claimed"]


def test_a_canary_paused_for_a_decision_is_still_named_with_its_deployment() -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.domain.outcome import Outcome
    from conveyor.domain.records import DeploymentRecord
    from conveyor.domain.timing import utcnow

    from conveyor_cli.live import rolling_out

    paused = DeploymentRecord.model_validate(
        {
            "deployment_id": "d-paused",
            "app": "hello",
            "version": "2.6.0",
            "status": Outcome.IN_PROGRESS,
            "created_at": utcnow(),
            "updated_at": utcnow(),
            "environments": {
                "staging": {
                    "status": EnvironmentStatus.AWAITING_APPROVAL,
                    "function_name": "hello-staging",
                    "version_after": "16",
                    "weight": 20,
                }
            },
        }
    )
    found = rolling_out([paused], "staging", "hello-staging", "16")
    assert found is not None
    assert found.deployment_id == "d-paused"
