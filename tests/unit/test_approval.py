"""Approval gates and "pause for a person": the spec, RequestApproval, and how a failed gate is reported."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.contracts import ApprovalRequest, CheckResult, FailureRequest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import PipelineInvalidError
from conveyor.domain.locks import lock_target
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.pushed_object import PushedObject
from conveyor.stages.approval import request_approval
from conveyor.stages.health import decide
from conveyor.stages.lock import lease_seconds
from conveyor.stages.report import notify_failure
from conveyor.stages.rollback import rollback_reason

from tests.fakes import DEFAULT_SPEC, FakeLedger, FakeLocks, FakeNotifier, pipeline_yaml
from tests.unit.conftest import build_step, started_ledger

EVENT = json.loads((Path(__file__).parents[2] / "events" / "s3_object_created.json").read_text())
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAb-secret-task-token"
SOURCE = "s3://bucket/pipelines/hello.yaml"


def _spec(**environment: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0].update(environment)
    return spec


def _request(kind: str = "approval", **environment: Any) -> ApprovalRequest:
    step = build_step(_spec(approval={"required": True, "approvers_note": "weekdays only"}, **environment))
    return ApprovalRequest(
        kind=kind,  # type: ignore[arg-type]
        task_token=TOKEN,
        deployment=step.deployment,
        environment=step.environment,
        release=step.release,
    )


# --- the spec ------------------------------------------------------------------------------
def test_approval_is_off_by_default_with_a_day_to_answer() -> None:
    environment = PipelineSpec.model_validate(DEFAULT_SPEC).environments[0]
    assert environment.approval.required is False
    assert environment.approval.timeout_seconds == 86400
    assert environment.approval.approvers_note is None


def test_an_approval_gate_is_read_from_yaml() -> None:
    raw = pipeline_yaml(
        environments=[
            {
                **DEFAULT_SPEC["environments"][0],
                "approval": {"required": True, "timeout_seconds": 7200, "approvers_note": "ask #release"},
            }
        ]
    )
    approval = PipelineSpec.from_yaml(raw, SOURCE).environments[0].approval
    assert (approval.required, approval.timeout_seconds, approval.approvers_note) == (True, 7200, "ask #release")


@pytest.mark.parametrize(
    ("approval", "field"),
    [
        ({"timeout_seconds": 8 * 24 * 3600}, "timeout_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        (
            {"approvers": ["arn:aws:iam::123456789012:user/alice"], "required_approvals": 2},
            "required_approvals",
        ),
        ({"required": True, "required_approvals": 0}, "required_approvals"),
        ({"required": True, "approvers": ["alice smith"]}, "approvers"),
        ({"required": True, "on_timeout": "approve"}, "on_timeout"),
        ({"required": True, "approvers_list": ["alice"]}, "approvers_list"),
    ],
)
def test_a_bad_approval_is_rejected_naming_the_field(approval: dict[str, Any], field: str) -> None:
    raw = pipeline_yaml(environments=[{**DEFAULT_SPEC["environments"][0], "approval": approval}])
    with pytest.raises(PipelineInvalidError, match=field):
        PipelineSpec.from_yaml(raw, SOURCE)


def test_on_inconclusive_may_pause() -> None:
    health = {**DEFAULT_SPEC["environments"][0]["health"], "on_inconclusive": "pause"}
    environment = PipelineSpec.model_validate(_spec(health=health)).environments[0]
    assert environment.health.on_inconclusive == "pause"


def test_a_pausing_rollout_keeps_its_lease_through_the_wait() -> None:
    health = {**DEFAULT_SPEC["environments"][0]["health"], "on_inconclusive": "pause"}
    pausing = PipelineSpec.model_validate(_spec(health=health, approval={"timeout_seconds": 3600})).environments[0]
    plain_spec = PipelineSpec.model_validate(_spec(approval={"timeout_seconds": 3600}))
    plain = plain_spec.environments[0]
    assert lease_seconds(pausing, plain_spec) == lease_seconds(plain, plain_spec) + 3600


def test_a_rollout_waiting_out_a_freeze_keeps_its_lease_through_the_wait() -> None:
    # CheckGates runs under the lock: with on_freeze: wait, the lease covers freeze_wait_seconds
    environment = PipelineSpec.model_validate(_spec()).environments[0]
    waiting = PipelineSpec.model_validate({**_spec(), "on_freeze": "wait", "freeze_wait_seconds": 7200})
    refusing = PipelineSpec.model_validate({**_spec(), "on_freeze": "refuse", "freeze_wait_seconds": 7200})
    assert lease_seconds(environment, waiting) == lease_seconds(environment, refusing) + 7200


def test_pause_keeps_an_inconclusive_verdict_for_a_person() -> None:
    checks = [
        CheckResult(name="alarm:a", kind="alarm", status="inconclusive", reason="alarm 'a' has INSUFFICIENT_DATA")
    ]
    status, reason = decide(checks, "pause")
    assert status == "inconclusive"
    assert "paused for a person" in reason
    failing = [*checks, CheckResult(name="synthetic", kind="synthetic", status="fail", reason="boom")]
    assert decide(failing, "pause")[0] == "fail"


# --- RequestApproval -------------------------------------------------------------------------
def test_request_stores_the_token_and_notifies_the_approvers_without_it() -> None:
    request = _request()
    ledger, notifier = started_ledger(build_step(_spec())), FakeNotifier()

    ticket = request_approval(request, ledger=ledger, notifier=notifier)

    entry = ledger.records["d-unit"]["environments"]["staging"]
    assert entry["status"] == EnvironmentStatus.AWAITING_APPROVAL
    assert entry["approval"]["task_token"] == TOKEN
    assert entry["approval"]["kind"] == "approval"
    assert entry["approval"]["timeout_seconds"] == 86400
    assert "requested_at" in entry["approval"]
    (published,) = notifier.published
    subject, message, attributes = published
    assert "hello 1.0.0 awaits approval for staging: run `conveyor approve d-unit --env staging`" in message
    assert "weekdays only" in message
    assert TOKEN not in subject + message + str(attributes)
    assert attributes["kind"] == "approval"
    assert ticket.kind == "approval"
    assert TOKEN not in ticket.model_dump_json()
    assert TOKEN not in repr(request)
    event = ledger.stage_events("RequestApproval")[0]
    assert TOKEN not in event.model_dump_json()


def test_a_retried_request_stores_the_new_token_and_notifies_once() -> None:
    ledger, notifier = started_ledger(build_step(_spec())), FakeNotifier()
    request_approval(_request(), ledger=ledger, notifier=notifier)
    retried = _request().model_copy(update={"task_token": "second-token"})

    request_approval(retried, ledger=ledger, notifier=notifier)

    assert ledger.records["d-unit"]["environments"]["staging"]["approval"]["task_token"] == "second-token"
    assert len(notifier.published) == 1


def test_a_gate_releases_the_earlier_environments_locks() -> None:
    spec = copy.deepcopy(DEFAULT_SPEC)
    production = {**spec["environments"][0], "name": "production", "target": {"function_name": "hello-prod"}}
    spec["environments"].append({**production, "approval": {"required": True}})
    step = build_step(spec)
    locks = FakeLocks()
    holder = step.deployment.execution_arn
    staging = lock_target(step.deployment, step.deployment.environments[0])
    assert locks.try_acquire(
        staging,
        holder=holder,
        deployment_id="d-unit",
        app="hello",
        environment="staging",
        lease_seconds=60,
        now=0,
    )
    request = ApprovalRequest(
        kind="approval", task_token=TOKEN, deployment=step.deployment, environment=step.deployment.environments[1]
    )

    request_approval(request, ledger=started_ledger(step), notifier=FakeNotifier(), locks=locks)

    state = locks.get(staging)
    assert state is None or state.holder is None


def test_a_decision_request_says_how_to_promote_or_roll_back() -> None:
    ledger, notifier = started_ledger(build_step(_spec())), FakeNotifier()
    request_approval(_request("decision"), ledger=ledger, notifier=notifier)
    (published,) = notifier.published
    subject, message, _ = published
    assert "paused in staging" in subject
    assert "To promote it" in message
    assert "To roll back" in message
    assert ledger.records["d-unit"]["environments"]["staging"]["approval"]["kind"] == "decision"


# --- a failed gate -------------------------------------------------------------------------
def _failure_request(error: str, cause: str | None) -> FailureRequest:
    return FailureRequest.model_validate(
        {
            "execution_input": EVENT,
            "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:deployments:unit",
            "failure": {"Error": error, "Cause": cause},
        }
    )


def _waiting_ledger(request: FailureRequest) -> tuple[FakeLedger, str]:
    pushed = PushedObject.from_event(request.execution_input)
    ledger = FakeLedger()
    ledger.start(pushed.ledger_record(request.execution_arn, "hello", "1.0.0"))
    request_approval(
        _request().model_copy(
            update={"deployment": _request().deployment.model_copy(update={"deployment_id": pushed.deployment_id})}
        ),
        ledger=ledger,
        notifier=FakeNotifier(),
    )
    return ledger, pushed.deployment_id


def test_a_timed_out_gate_fails_with_a_clear_reason_and_forgets_the_token() -> None:
    request = _failure_request("States.Timeout", None)
    ledger, deployment_id = _waiting_ledger(request)
    notifier = FakeNotifier()

    report = notify_failure(request, ledger=ledger, notifier=notifier)

    assert report.outcome is Outcome.FAILED
    assert "approval for staging timed out" in report.reason
    assert "nothing was deployed in staging" in report.reason
    entry = ledger.records[deployment_id]["environments"]["staging"]
    assert entry["status"] == "APPROVAL_TIMED_OUT"
    assert "task_token" not in entry["approval"]
    (published,) = notifier.published
    assert TOKEN not in published[1]
    assert "staging: APPROVAL_TIMED_OUT - nothing deployed" in published[1]


def test_a_rejected_gate_fails_naming_who_and_why() -> None:
    request = _failure_request("ApprovalRejectedError", "rejected by bob: freeze week")
    ledger, deployment_id = _waiting_ledger(request)
    ledger.update_environment(
        deployment_id,
        "staging",
        {"status": "REJECTED", "approval": {"kind": "approval", "rejected_by": "bob", "reason": "freeze week"}},
    )

    report = notify_failure(request, ledger=ledger, notifier=FakeNotifier())

    assert report.outcome is Outcome.FAILED
    assert "rejected by bob: freeze week" in report.reason
    assert ledger.records[deployment_id]["failure"]["stage"] == "RequestApproval"


def test_a_catch_without_a_cause_still_parses() -> None:
    assert _failure_request("ApprovalRejectedError", None).failure.cause == ""


def test_a_person_rolling_back_a_pause_is_the_rollback_reason() -> None:
    step = build_step(
        _spec(),
        failure={"Error": "ApprovalRejectedError", "Cause": "rejected by carol: not without data"},
    )
    assert rollback_reason(step) == "rolled back by a person while paused: rejected by carol: not without data"


# --- the CLI -------------------------------------------------------------------------------
def test_reject_needs_a_reason_and_approve_does_not() -> None:
    from conveyor_cli.main import build_parser

    parser = build_parser()
    approve = parser.parse_args(["approve", "d-1", "--env", "production"])
    assert (approve.id, approve.env, approve.reason) == ("d-1", "production", None)
    with pytest.raises(SystemExit):
        parser.parse_args(["reject", "d-1", "--env", "production"])
    assert parser.parse_args(["reject", "d-1", "--reason", "freeze"]).reason == "freeze"


def test_status_output_hides_task_tokens() -> None:
    from conveyor_cli.status import redacted

    document = {"environments": {"production": {"approval": {"task_token": TOKEN, "kind": "approval"}}}}
    assert TOKEN not in json.dumps(redacted(document))


def test_a_role_among_the_approvers_may_supply_several_approvals() -> None:
    raw = pipeline_yaml(
        environments=[
            {
                **DEFAULT_SPEC["environments"][0],
                "approval": {"approvers": ["arn:aws:iam::123456789012:role/release"], "required_approvals": 2},
            }
        ]
    )
    assert PipelineSpec.from_yaml(raw, SOURCE).environments[0].approval.required_approvals == 2


def test_request_records_the_environment_s_approval_policy_for_the_decisions() -> None:
    # Given a gate that needs two named approvers and is rejected when nobody answers
    policy = {
        "required": True,
        "required_approvals": 2,
        "approvers": ["arn:aws:iam::123456789012:role/release-*", "carol"],
        "on_timeout": "reject",
    }
    step = build_step(_spec(approval=policy))
    request = ApprovalRequest(
        kind="approval", task_token=TOKEN, deployment=step.deployment, environment=step.environment
    )
    ledger, notifier = started_ledger(step), FakeNotifier()

    # When RequestApproval runs
    request_approval(request, ledger=ledger, notifier=notifier)

    # Then conveyor approve finds the policy this execution asked under, and the approvers are told it
    approval = ledger.records["d-unit"]["environments"]["staging"]["approval"]
    assert approval["required_approvals"] == 2
    assert approval["approvers"] == policy["approvers"]
    assert (approval["allow_self_approval"], approval["on_timeout"], approval["approvals"]) == (False, "reject", [])
    ((_, message, _),) = notifier.published
    assert "It needs 2 approvals from distinct approvers." in message
    assert "Without a decision within 24 h it is rejected." in message


@pytest.mark.parametrize(
    ("pushed_by", "told"), [("arn:aws:iam::123456789012:user/ci", True), ("123456789012", False), (None, False)]
)
def test_the_request_names_the_pusher_who_may_not_approve_only_when_it_names_a_principal(
    pushed_by: str | None, told: bool
) -> None:
    step = build_step(_spec(approval={"required": True}))
    deployment = step.deployment.model_copy(update={"pushed_by": pushed_by})
    request = ApprovalRequest(kind="approval", task_token=TOKEN, deployment=deployment, environment=step.environment)
    notifier = FakeNotifier()

    request_approval(request, ledger=started_ledger(step), notifier=notifier)

    ((_, message, _),) = notifier.published
    assert ("may not approve it" in message) is told
