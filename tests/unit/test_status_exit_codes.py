"""``conveyor status``: the exit code says how the deployment ended, so CI never reports a failed one as green."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.errors import LedgerError
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow

from conveyor_cli import main as cli
from conveyor_cli import operations
from conveyor_cli.context import Outputs
from conveyor_cli.status import EXIT_CODE_MEANINGS, OUTCOME_EXIT_CODES, ExitCode
from tests.fakes import FakeLedger
from tests.fakes.builders import described

README = Path(__file__).parents[2] / "README.md"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:conveyor-deployments:run-1"
TABLE = "conveyor-ledger"


class FakeCloud:
    outputs = Outputs(bucket="b", state_machine_arn="arn:sm", ledger_table=TABLE, topic_arn="arn:topic")
    local = True


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> FakeLedger:
    fake = FakeLedger()
    monkeypatch.setattr(cli, "_cloud", lambda args: FakeCloud())
    monkeypatch.setattr(operations, "ledger", lambda cloud: fake)
    return fake


def record_of(status: Outcome, **fields: Any) -> DeploymentRecord:
    """A record of hello 1.0.0 (``d-1``) with ``status`` and ``fields``."""
    now = utcnow()
    return DeploymentRecord.model_validate(
        {"deployment_id": "d-1", "app": "hello", "version": "1.0.0", "status": status, "created_at": now}
        | {"updated_at": now, **fields}
    )


def given(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, status: Outcome, execution: str = "SUCCEEDED"
) -> DeploymentRecord:
    """A deployment with ``status`` in the ledger, whose execution Step Functions reports as ``execution``."""
    record = ledger.start(record_of(status, execution_arn=EXECUTION))
    monkeypatch.setattr(operations, "execution_state", lambda cloud, arn: described(arn, execution))
    assert record is not None
    return record


def follow(monkeypatch: pytest.MonkeyPatch, ledger: FakeLedger) -> None:
    """``--wait`` returns at once with what the ledger holds (following itself is tested in test_status_wait)."""

    def wait(cloud: Any, deployment_id: str, **_: Any) -> DeploymentRecord:
        record = ledger.get(deployment_id)
        assert record is not None
        return record

    monkeypatch.setattr(operations, "wait", wait)


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
        (Outcome.TIMED_OUT, 8),
    ],
)
@pytest.mark.parametrize("wait", [True, False], ids=["--wait", "plain"])
def test_status_exits_non_zero_unless_the_deployment_succeeded(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, outcome: Outcome, code: int, wait: bool
) -> None:
    # Given a deployment that ended with `outcome`
    given(ledger, monkeypatch, outcome)
    follow(monkeypatch, ledger)

    # When CI asks for it, as the README's snippet does (no extra flag)
    exit_code = cli.main(["status", "d-1", *(["--wait"] if wait else [])])

    # Then only SUCCEEDED exits 0, and each other outcome has its own code
    assert exit_code == code


def test_an_execution_stopped_before_the_ledger_closed_exits_stopped(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployment still IN_PROGRESS whose execution was stopped from the console
    given(ledger, monkeypatch, Outcome.IN_PROGRESS, execution="ABORTED")
    follow(monkeypatch, ledger)

    # When it is followed, it exits STOPPED (not 0) and says so
    assert cli.main(["status", "d-1", "--wait"]) == ExitCode.STOPPED == 8
    assert "its execution ended ABORTED" in capsys.readouterr().out


def test_a_running_deployment_without_wait_exits_not_finished(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    given(ledger, monkeypatch, Outcome.IN_PROGRESS, execution="RUNNING")
    assert cli.main(["status", "d-1"]) == ExitCode.NOT_FINISHED == 9


def test_a_wait_that_times_out_exits_wait_timed_out(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployment that never ends while it is followed
    given(ledger, monkeypatch, Outcome.IN_PROGRESS, execution="RUNNING")

    # When --wait gives up, the code is WAIT_TIMED_OUT, not a generic error and never 0
    assert cli.main(["status", "d-1", "--wait", "--timeout", "0"]) == ExitCode.WAIT_TIMED_OUT == 10
    assert "still IN_PROGRESS after 0 s" in capsys.readouterr().err


def test_a_wait_that_times_out_under_json_still_prints_one_document(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployment that never ends while it is followed
    given(ledger, monkeypatch, Outcome.IN_PROGRESS, execution="RUNNING")

    # When --wait --json gives up, Then stdout is one JSON document a CI step can parse: the deployment as it
    # stands and why the wait ended (exit 10)
    assert cli.main(["status", "d-1", "--wait", "--timeout", "0", "--json"]) == ExitCode.WAIT_TIMED_OUT
    document = json.loads(capsys.readouterr().out)
    assert (document["deployment_id"], document["status"]) == ("d-1", "IN_PROGRESS")
    assert document["wait"]["timed_out"] is True
    assert "still IN_PROGRESS after 0 s" in document["wait"]["reason"]


def test_an_unknown_deployment_is_an_error_that_does_not_suggest_wait(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an id no execution is deploying (mistyped, or lost with a wiped local cloud)
    monkeypatch.setattr(operations, "running_execution_of", lambda cloud, deployment_id: None)

    # When status is asked for it
    assert cli.main(["status", "d-unknown"]) == ExitCode.ERROR

    # Then it says where it looked and what to check, and does not suggest following it
    err = capsys.readouterr().err
    assert f"deployment d-unknown is not in the ledger ({TABLE}) and no running execution is deploying it" in err
    assert "--wait" not in err.replace("--fresh", "")


def test_a_deployment_whose_execution_just_started_suggests_wait(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(operations, "running_execution_of", lambda cloud, deployment_id: EXECUTION)
    assert cli.main(["status", "d-new"]) == ExitCode.ERROR
    assert f"its execution {EXECUTION} has just started; follow it with `conveyor status d-new --wait`" in (
        capsys.readouterr().err
    )


def test_waiting_for_a_deployment_that_never_appears_does_not_suggest_wait(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given --wait on an id that never reaches the ledger
    assert cli.main(["status", "d-never", "--wait", "--timeout", "0"]) == ExitCode.WAIT_TIMED_OUT

    # Then the reason says it never appeared, and does not tell the user to do what they just did
    err = capsys.readouterr().err
    assert "deployment d-never did not appear in the ledger within 0 s" in err
    assert "--wait" not in err


def test_every_outcome_has_an_exit_code_and_every_code_a_meaning() -> None:
    assert set(OUTCOME_EXIT_CODES) == set(Outcome)
    assert set(EXIT_CODE_MEANINGS) == set(ExitCode)
    assert [code for code in OUTCOME_EXIT_CODES.values() if code is ExitCode.SUCCEEDED] == [ExitCode.SUCCEEDED]


def test_the_exit_codes_are_documented_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["status", "--help"])
    help_text = capsys.readouterr().out
    readme = README.read_text(encoding="utf-8")
    for code in ExitCode:
        assert re.search(rf"^\s+{code.value}\s+{code.name}\s", help_text, re.MULTILINE), code
        assert re.search(rf"^\| `{code.value}` \| `{code.name}` \|", readme, re.MULTILINE), code


@pytest.mark.parametrize("wait", [True, False], ids=["--wait", "plain"])
def test_a_ledger_that_does_not_answer_is_not_reported_as_a_missing_deployment(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], wait: bool
) -> None:
    # Given a local cloud whose server died (its state file still there): every ledger read fails
    def unreachable(deployment_id: str) -> None:
        raise LedgerError('ledger get failed: Could not connect to the endpoint URL: "http://127.0.0.1:4566/"')

    monkeypatch.setattr(ledger, "get", unreachable)

    # When status is asked for a deployment
    assert cli.main(["status", "d-1", *(["--wait"] if wait else [])]) == ExitCode.ERROR

    # Then it says the ledger did not answer and how to bring it back, not that the deployment is unknown
    err = capsys.readouterr().err
    assert f"cannot read the ledger {TABLE}" in err
    assert "the local cloud is not answering: start it with `conveyor local up`" in err
    assert "not in the ledger" not in err
    assert "--wait" not in err


def test_the_former_exit_code_flag_is_still_accepted_and_changes_nothing(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    given(ledger, monkeypatch, Outcome.FAILED)
    assert cli.main(["status", "d-1", "--exit-code"]) == cli.main(["status", "d-1"]) == ExitCode.FAILED


def test_exit_3_never_says_nothing_was_deployed_anywhere() -> None:
    # An earlier environment the deployment took live stays live: exit 3 speaks of where it failed only
    assert "nothing deployed there" in EXIT_CODE_MEANINGS[ExitCode.FAILED]
    assert "earlier environment" in EXIT_CODE_MEANINGS[ExitCode.FAILED]


def test_a_failure_without_an_error_name_is_shown_by_its_reason_alone() -> None:
    from conveyor_cli.status import render

    record = record_of(Outcome.SKIPPED_DUPLICATE, failure={"reason": "the same release as d-0", "duplicate_of": "d-0"})
    assert "  failure: the same release as d-0" in render(record).splitlines()
    assert "None" not in render(record)


@pytest.mark.parametrize(
    ("status", "shown"),
    [(Outcome.ROLLED_BACK, "not reached: nothing deployed"), (Outcome.IN_PROGRESS, "not reached yet")],
)
def test_an_environment_never_reached_is_not_promised_to_an_ended_deployment(status: Outcome, shown: str) -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.domain.records import EnvironmentEntry

    from conveyor_cli.status import render_environments

    record = record_of(
        status,
        environments={
            "production": EnvironmentEntry(
                function_name="hello-production", alias="live", status=EnvironmentStatus.PENDING
            )
        },
    )
    assert render_environments(record) == [f"  production  hello-production:live  {shown}"]


@pytest.mark.parametrize(
    ("status", "serving"),
    [("LIVE", "webapp/webapp-green (CNAME webapp-prod)"), ("ROLLED_BACK", "webapp/webapp-blue (CNAME webapp-prod)")],
)
def test_an_elastic_beanstalk_blue_green_target_is_named_by_the_environment_serving_production(
    status: str, serving: str
) -> None:
    from conveyor.domain.records import EnvironmentEntry

    from conveyor_cli.status import target_of

    # Given production deployed to the idle webapp-green, then swapped to it (LIVE) or swapped back (ROLLED_BACK)
    entry = EnvironmentEntry.model_validate(
        {
            "status": status,
            "function_name": "webapp",
            "alias": "webapp-blue",
            "target_kind": "elasticbeanstalk",
            "beanstalk": {
                "application": "webapp",
                "live_environment": "webapp-blue",
                "deployed_environment": "webapp-green",
                "cname_prefix": "webapp-prod",
            },
        }
    )
    # Then status names the environment that holds production's CNAME now, and what moves is a version
    assert target_of(entry) == (serving, "version")


def test_a_ledger_that_answers_with_an_error_is_not_called_a_dead_cloud(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    # Given a local cloud whose DynamoDB answers InternalServerError (an outage, or an injected fault)
    def failing(deployment_id: str) -> None:
        error = ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "GetItem")
        raise LedgerError(f"ledger get failed: {error}") from error

    monkeypatch.setattr(ledger, "get", failing)

    # Then status says DynamoDB answered with an error, not that the cloud is down
    assert cli.main(["status", "d-1"]) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "DynamoDB answered with an error" in err
    assert "conveyor local up" not in err


def test_an_environment_whose_restore_failed_says_it_is_not_restored() -> None:
    from conveyor.domain.records import EnvironmentEntry

    from conveyor_cli.status import render_environments

    record = record_of(
        Outcome.ROLLBACK_FAILED,
        environments={
            "staging": EnvironmentEntry.model_validate(
                {
                    "status": "SHIFTING",
                    "function_name": "hello-staging",
                    "alias": "live",
                    "version_before": "1",
                    "version_after": "2",
                    "weight": 20,
                    "restore": {"restored": {}, "failed": {"hello-staging": "UpdateAlias failed"}},
                }
            )
        },
    )
    (line,) = render_environments(record)
    assert line.endswith("(SHIFTING)  NOT restored: hello-staging (see the failure)")


def test_a_rollout_paused_for_a_decision_shows_the_split_it_holds_meanwhile() -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.domain.records import EnvironmentEntry

    from conveyor_cli.status import render_environments

    paused = EnvironmentEntry(
        function_name="hello-staging",
        alias="live",
        status=EnvironmentStatus.AWAITING_APPROVAL,
        version_before="6",
        version_after="8",
        weight=30,
    )
    line = render_environments(record_of(Outcome.IN_PROGRESS, environments={"staging": paused}))[0]
    assert "after: 8 at 30% (6 at 70%)  (AWAITING_APPROVAL)" in line


def test_a_release_rolled_back_by_hand_later_shows_what_it_deployed_then_the_rollback() -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.domain.records import EnvironmentEntry

    from conveyor_cli.ci import summary_markdown
    from conveyor_cli.status import ExitCode, render_environments

    # Given a deployment that took staging from 10 to 12, which a person then rolled back to 10
    staging = EnvironmentEntry(
        function_name="hello-staging",
        alias="live",
        status=EnvironmentStatus.ROLLED_BACK,
        version_before="10",
        version_after="12",
        rollback={"restored_version": "10", "operator": "alice", "rolled_back_from": "12"},
    )
    record = record_of(Outcome.SUCCEEDED, environments={"staging": staging})

    # Then status and the CI summary say what it deployed and what was done later, never "after: 10"
    assert "after: 12 (rolled back by hand to 10 by alice)" in render_environments(record)[0]
    assert "| 10 | 12, rolled back by hand to 10 by alice | ROLLED_BACK |" in summary_markdown(
        record, ExitCode.SUCCEEDED
    )


def test_a_target_whose_restore_failed_for_another_function_shows_its_first_function_restored() -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.domain.records import EnvironmentEntry

    from conveyor_cli.status import render_environments

    production = EnvironmentEntry(
        function_name="orders-api",
        alias="live",
        status=EnvironmentStatus.SHIFTING,
        version_before="1",
        version_after="2",
        weight=25,
        restore={"restored": {"orders-api": "1"}, "failed": {"orders-worker": "UpdateAlias failed"}},
    )
    line = render_environments(record_of(Outcome.ROLLBACK_FAILED, environments={"production": production}))[0]
    assert "after: 1 (restored)" in line
    assert "NOT restored: orders-worker" in line


def test_a_target_set_anew_since_a_failed_restore_shows_no_split_it_no_longer_has() -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.domain.records import EnvironmentEntry

    from conveyor_cli.status import render_environments

    staging = EnvironmentEntry(
        function_name="hello-staging",
        alias="live",
        status=EnvironmentStatus.SHIFTING,
        version_before="1",
        version_after="2",
        weight=25,
        restore={"restored": {}, "failed": {"hello-staging": "refused"}, "set_anew": "a later release went live"},
    )
    line = render_environments(record_of(Outcome.ABORTED, environments={"staging": staging}))[0]
    assert "after: 2 no longer: set anew since" in line
    assert "25%" not in line
