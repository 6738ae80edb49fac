import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.contracts import EnvironmentResult, EnvironmentStep, FailureRequest, FinalizeRequest
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.errors import RollbackFailedError, TrafficShiftError
from conveyor.domain.notices import render_failure, render_success
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import Notifications
from conveyor.domain.ports import Invocation
from conveyor.domain.pushed_object import PushedObject
from conveyor.domain.records import DeploymentRecord
from conveyor.stages.deploy import deploy
from conveyor.stages.health import evaluate_health
from conveyor.stages.report import _outcome, finalize, notify_failure, stage_timings
from conveyor.stages.rollback import roll_back
from conveyor.stages.traffic import shift_traffic

from tests.fakes import DEFAULT_SPEC, FakeAlarms, FakeLedger, FakeNotifier, FakeTargets
from tests.unit.conftest import build_step

EVENT = json.loads((Path(__file__).parents[2] / "events" / "s3_object_created.json").read_text())
OUTSIDE = json.loads((Path(__file__).parents[2] / "events" / "s3_object_created_outside_layout.json").read_text())
PUSHED = PushedObject.from_event(EVENT)
ARN = "arn:aws:states:us-east-1:123456789012:execution:deployments:run-1"


def _spec() -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0]["strategy"] = {"type": "canary", "weight": 10, "bake_seconds": 0}
    spec["environments"][0]["health"]["alarms"] = ["hello-staging-errors"]
    return spec


def _rollout(alarm_state: str) -> tuple[FakeLedger, FakeTargets, EnvironmentStep]:
    """Run Deploy -> ShiftTraffic -> EvaluateHealth on fakes, as the state machine would."""
    ledger = FakeLedger()
    ledger.start(PUSHED.ledger_record(ARN, "hello", "1.0.0"))
    step = build_step(_spec(), release=None)
    step = step.model_copy(
        update={"deployment": step.deployment.model_copy(update={"deployment_id": PUSHED.deployment_id})}
    )
    targets = FakeTargets()
    targets.add("hello-staging", alias="live", version="1")
    targets.responses["hello-staging:2"] = Invocation({"status": "ok"}, None, "2", 4.0)
    release = deploy(step, targets=targets, ledger=ledger, managed_tag_key="conveyor:managed")
    step = step.model_copy(update={"release": release})
    traffic = shift_traffic(step, targets=targets, ledger=ledger)
    step = step.model_copy(update={"traffic": traffic})
    alarms = FakeAlarms({"hello-staging-errors": alarm_state})
    health = evaluate_health(step, targets=targets, alarms=alarms, ledger=ledger)
    return ledger, targets, step.model_copy(update={"health": health})


def _failure(error: str, message: str) -> FailureRequest:
    cause = json.dumps({"errorMessage": message, "errorType": error})
    return FailureRequest(execution_input=EVENT, execution_arn=ARN, failure={"Error": error, "Cause": cause})


def test_notify_after_rollback_says_what_failed_why_and_what_was_restored() -> None:
    # Given a canary whose alarm fired and which was rolled back
    ledger, targets, step = _rollout("ALARM")
    roll_back(step, targets=targets, ledger=ledger)
    notifier = FakeNotifier()
    # When NotifyFailure runs with the Map's error
    report = notify_failure(
        FailureRequest(
            execution_input=EVENT,
            execution_arn=ARN,
            failure={"Error": "DeploymentRolledBackError", "Cause": "health check failed"},
        ),
        ledger=ledger,
        notifier=notifier,
    )
    # Then one message names app, version, environment, outcome, the failed check and the restored version
    assert report.outcome is Outcome.ROLLED_BACK
    (subject, body, attributes) = notifier.published[0]
    assert len(notifier.published) == 1
    assert subject == "[Conveyor] hello 1.0.0 staging: ROLLED_BACK"
    assert "What failed: EvaluateHealth in staging" in body
    assert "Why: health check failed at 10% traffic: alarm 'hello-staging-errors' is in ALARM" in body
    assert "[FAIL] alarm 'hello-staging-errors' is in ALARM" in body
    assert "[PASS] hello-staging:2 answered as expected" in body
    assert "staging: ROLLED BACK - hello-staging:live restored to version 1 (was 2)" in body
    assert f"conveyor status {PUSHED.deployment_id}" in body
    assert attributes == {
        "app": "hello",
        "environment": "staging",
        "outcome": "ROLLED_BACK",
        "severity": "error",
        "deployment_id": PUSHED.deployment_id,
    }
    # And the ledger records the outcome
    record = ledger.get(PUSHED.deployment_id)
    assert record.status is Outcome.ROLLED_BACK
    assert record.failure["stage"] == "EvaluateHealth"
    assert record.finished_at is not None


def test_notify_before_any_traffic_moved_is_failed_and_nothing_was_deployed() -> None:
    # Given a deployment rejected by ValidateArtifact (recorded, no environment touched)
    ledger = FakeLedger()
    ledger.start(PUSHED.ledger_record(ARN, "hello", "1.0.0"))
    notifier = FakeNotifier()
    report = notify_failure(
        _failure("DigestMismatchError", "package.zip sha256 is abc, manifest package.sha256 says def"),
        ledger=ledger,
        notifier=notifier,
    )
    assert report.outcome is Outcome.FAILED
    assert report.reason == "package.zip sha256 is abc, manifest package.sha256 says def"
    subject, body, _ = notifier.published[0]
    assert subject == "[Conveyor] hello 1.0.0 validation: FAILED"
    assert "Why: package.zip sha256 is abc" in body
    assert "no environment was touched: nothing was deployed" in body
    assert ledger.get(PUSHED.deployment_id).status is Outcome.FAILED


def test_notify_closes_an_environment_the_deployment_held_or_queued_for_as_not_deployed() -> None:
    # Given staging live, production holding its lock (a freeze refused it at the gate), and a third environment
    # still in its lock's queue
    ledger = FakeLedger()
    ledger.start(PUSHED.ledger_record(ARN, "hello", "1.0.0"))
    for name, status in (("staging", "LIVE"), ("production", "LOCKED"), ("dr", "QUEUED")):
        ledger.update_environment(PUSHED.deployment_id, name, {"status": status})
    # When the deployment ends FAILED
    report = notify_failure(
        _failure("DeploymentFrozenError", "hello is frozen"), ledger=ledger, notifier=FakeNotifier()
    )
    # Then no environment is left showing a lock or a queue it no longer has; the live one stays live
    assert report.outcome is Outcome.FAILED
    record = ledger.get(PUSHED.deployment_id)
    assert {name: env.status.value for name, env in record.environments.items()} == {
        "staging": "LIVE",
        "production": "NOT_DEPLOYED",
        "dr": "NOT_DEPLOYED",
    }


def test_notify_after_a_pause_nobody_decided_names_the_environment_and_the_timeout() -> None:
    # Given staging paused for a decision at 100%, nobody decided, and the rollback branch restored it
    ledger = FakeLedger()
    ledger.start(PUSHED.ledger_record(ARN, "hello", "1.0.0"))
    ledger.update_environment(PUSHED.deployment_id, "staging", {"status": "ROLLED_BACK", "rollback": {"reason": "x"}})
    ledger.update_environment(PUSHED.deployment_id, "production", {"status": "PENDING"})
    notifier = FakeNotifier()
    # When the failure path reports the state machine's own timeout (no stage recorded a failure)
    notify_failure(_failure("States.Timeout", "decision not taken in time"), ledger=ledger, notifier=notifier)
    # Then the notice names staging and the timeout, not "validation" and "unknown stage"
    subject, body, _ = notifier.published[0]
    assert subject == "[Conveyor] hello 1.0.0 staging: ROLLED_BACK"
    assert "What failed: the state machine (States.Timeout) in staging" in body


def test_notify_for_an_event_outside_the_layout_records_a_deployment() -> None:
    # Given ValidateArtifact refused the key before recording anything
    ledger, notifier = FakeLedger(), FakeNotifier()
    report = notify_failure(
        FailureRequest(
            execution_input=OUTSIDE,
            execution_arn=ARN,
            failure={"Error": "ArtifactLayoutError", "Cause": "not of the form artifacts/<app>/<version>.zip"},
        ),
        ledger=ledger,
        notifier=notifier,
    )
    # Then the deployment exists in the ledger as FAILED and on-call is told why
    record = ledger.get(report.deployment_id)
    assert record is not None
    assert (record.status, record.app) == (Outcome.FAILED, "-")
    assert record.artifact["key"] == "artifacts/hello/builds/1.0.0.zip"
    assert "not of the form" in notifier.published[0][1]


def test_notify_for_a_deployment_another_execution_recorded_meanwhile_leaves_it_to_that_one() -> None:
    # Given this execution read no record, and another execution recorded the deployment before this one could
    class RecordedMeanwhile(FakeLedger):
        def get(self, deployment_id: str) -> DeploymentRecord | None:
            if not self.records:
                FakeLedger.start(self, PUSHED.ledger_record(f"{ARN}-other", "hello", "1.0.0"))
                return None
            return super().get(deployment_id)

    ledger, notifier = RecordedMeanwhile(), FakeNotifier()
    # When NotifyFailure runs
    report = notify_failure(_failure("ArtifactLayoutError", "refused"), ledger=ledger, notifier=notifier)
    # Then the other execution's record is not started over nor ended, nobody is paged, and the skip is recorded
    record = ledger.get(PUSHED.deployment_id)
    assert record is not None
    assert (record.execution_arn, record.status, record.app) == (f"{ARN}-other", Outcome.IN_PROGRESS, "hello")
    assert notifier.published == []
    assert [entry["execution_arn"] for entry in ledger.records[PUSHED.deployment_id]["skipped"]] == [ARN]
    assert report.outcome is Outcome.FAILED


def test_notify_after_a_validation_refused_as_no_longer_its_own_writes_and_pages_nothing() -> None:
    # Given the reconciler closed this execution's deployment after a stop (and notified), and the execution was
    # then redriven into ValidateArtifact, which was refused
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.start(PUSHED.ledger_record(ARN, "hello", "1.0.0"))
    ledger.finish(PUSHED.deployment_id, Outcome.FAILED, {"error": "ExecutionStopped", "reason": "stopped"})
    # When NotifyFailure runs on that refusal
    report = notify_failure(
        _failure("DeploymentNotOwnedError", "no longer this execution's running attempt"),
        ledger=ledger,
        notifier=notifier,
    )
    # Then the reconciler's outcome stands and nobody is paged again
    record = ledger.get(PUSHED.deployment_id)
    assert record is not None
    assert (record.status, record.failure) == (Outcome.FAILED, {"error": "ExecutionStopped", "reason": "stopped"})
    assert notifier.published == []
    assert (report.outcome, report.error) == (Outcome.FAILED, "DeploymentNotOwnedError")


def test_notify_for_an_input_that_is_not_an_s3_event_uses_the_execution_name() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    report = notify_failure(
        FailureRequest(execution_input={"hello": "world"}, execution_arn=ARN, failure={"Error": "ArtifactLayoutError"}),
        ledger=ledger,
        notifier=notifier,
    )
    assert report.deployment_id == "d-run-1"
    assert ledger.get("d-run-1").status is Outcome.FAILED


def test_notify_when_rollback_failed_demands_action() -> None:
    ledger, targets, step = _rollout("ALARM")
    targets.fail_route = TrafficShiftError("AccessDenied")
    with pytest.raises(RollbackFailedError):
        roll_back(step, targets=targets, ledger=ledger)
    notifier = FakeNotifier()
    report = notify_failure(
        FailureRequest(
            execution_input=EVENT,
            execution_arn=ARN,
            failure={"Error": "RollbackFailedError", "Cause": "restoring the alias failed; see the ledger"},
        ),
        ledger=ledger,
        notifier=notifier,
    )
    assert report.outcome is Outcome.ROLLBACK_FAILED
    subject, body, _ = notifier.published[0]
    assert subject == "[Conveyor] hello 1.0.0 staging: ROLLBACK_FAILED"
    assert "What failed: RollBack in staging" in body
    assert "ACTION REQUIRED" in body
    # The on-call is given the command the failed rollback names, not the state machine's generic cause
    assert "Run: aws lambda update-alias --function-name hello-staging --name live --function-version 1" in body
    # And is not told the alias is safe: 10% still goes to the new version
    assert "staging: NOT RESTORED - hello-staging:live may still send 10% of its traffic to version 2" in body
    assert "unused" not in body


def _record(environments: dict[str, dict[str, Any]]) -> DeploymentRecord:
    entries = {name: EnvironmentEntry.model_validate(entry) for name, entry in environments.items()}
    return PUSHED.ledger_record(ARN, "hello", "1.0.0").model_copy(update={"environments": entries})


@pytest.mark.parametrize(
    ("error", "environments", "outcome"),
    [
        ("RollbackFailedError", {"staging": {"status": "ROLLED_BACK"}}, Outcome.ROLLBACK_FAILED),
        ("DeploymentRolledBackError", {"staging": {"status": "ROLLED_BACK"}}, Outcome.ROLLED_BACK),
        ("States.Timeout", {"staging": {"status": "LIVE"}, "prod": {"status": "ROLLED_BACK"}}, Outcome.ROLLED_BACK),
        ("DeployFailedError", {"staging": {"status": "LIVE"}}, Outcome.FAILED),
        ("ManifestInvalidError", {}, Outcome.FAILED),
    ],
)
def test_outcome_rules(error: str, environments: dict[str, dict[str, Any]], outcome: Outcome) -> None:
    assert _outcome(_record(environments), error) is outcome


def test_render_failure_lists_each_environment() -> None:
    record = _record(
        {
            "staging": {
                "status": "LIVE",
                "function_name": "f",
                "alias": "live",
                "version_before": "1",
                "version_after": "2",
            },
            "prod": {
                "status": "DEPLOYED",
                "function_name": "p",
                "alias": "live",
                "version_before": "5",
                "version_after": "6",
            },
        }
    )
    subject, body = render_failure(record, Outcome.FAILED, "ShiftTraffic", "prod", "throttled")
    assert subject == "[Conveyor] hello 1.0.0 prod: FAILED"
    assert "What failed: ShiftTraffic in prod" in body
    assert "Why: throttled" in body
    assert "staging: LIVE - f:live now serves version 2 (was 1)" in body
    assert "prod: DEPLOYED - p:live still serves version 5; new version 6 unused" in body
    assert f"Artifact: s3://conveyor-artifacts/artifacts/hello/1.0.0.zip (version {PUSHED.version_id})" in body


def test_finalize_marks_succeeded_with_timings_and_optional_notification() -> None:
    # Given a healthy canary that reached 100%
    ledger, targets, step = _rollout("OK")
    step = step.model_copy(update={"traffic": step.traffic})
    final = shift_traffic(step, targets=targets, ledger=ledger)
    deployment = step.deployment.model_copy(update={"notifications": Notifications(on_success=True)})
    request = FinalizeRequest(
        deployment=deployment,
        environments=[EnvironmentResult(release=step.release, traffic=final, health=step.health)],
    )
    notifier = FakeNotifier()
    # When Finalize runs
    report = finalize(request, ledger=ledger, notifier=notifier)
    # Then the ledger says SUCCEEDED and LIVE, Finalize's event carries versions and timings
    assert (report.outcome, report.notified) == (Outcome.SUCCEEDED, True)
    record = ledger.get(PUSHED.deployment_id)
    assert record.status is Outcome.SUCCEEDED
    assert record.environments["staging"].status == "LIVE"
    (event,) = ledger.stage_events("Finalize")
    assert event.detail["versions"] == {"staging": {"before": "1", "after": "2"}}
    assert set(event.detail["timings_ms"]) == {"staging/Deploy", "staging/ShiftTraffic", "staging/EvaluateHealth"}
    subject, body, _ = notifier.published[0]
    assert subject == "[Conveyor] hello 1.0.0: SUCCEEDED"
    assert "staging: LIVE - hello-staging:live now serves version 2 (was 1)" in body


def test_finalize_does_not_write_again_what_evaluate_health_already_marked_live() -> None:
    # Given a rollout whose final verdict marked staging LIVE
    ledger, _, step = _rollout("OK")
    ledger.update_environment(PUSHED.deployment_id, "staging", {"status": EnvironmentStatus.LIVE, "weight": 100})
    written: list[str] = []
    original = ledger.update_environment
    ledger.update_environment = lambda deployment_id, name, fields: (
        written.append(name)
        or original(  # type: ignore[method-assign]
            deployment_id, name, fields
        )
    )
    request = FinalizeRequest(
        deployment=step.deployment,
        environments=[EnvironmentResult(release=step.release, traffic=step.traffic, health=step.health)],
    )
    # When Finalize runs, Then it records the outcome without writing the environment again
    assert finalize(request, ledger=ledger, notifier=FakeNotifier()).outcome is Outcome.SUCCEEDED
    assert written == []
    assert ledger.get(PUSHED.deployment_id).environments["staging"].status is EnvironmentStatus.LIVE


def test_finalize_without_success_notifications_publishes_nothing() -> None:
    ledger, _, step = _rollout("OK")
    request = FinalizeRequest(
        deployment=step.deployment,
        environments=[EnvironmentResult(release=step.release, traffic=step.traffic, health=step.health)],
    )
    notifier = FakeNotifier()
    assert finalize(request, ledger=ledger, notifier=notifier).notified is False
    assert notifier.published == []


def test_render_success_names_versions() -> None:
    ledger, _, step = _rollout("OK")
    subject, body = render_success(step.deployment, ledger.get(PUSHED.deployment_id))
    assert subject == "[Conveyor] hello 1.0.0: SUCCEEDED"
    assert f"Details: conveyor status {PUSHED.deployment_id}" in body


def test_stage_timings_sum_loop_iterations() -> None:
    ledger, targets, step = _rollout("OK")
    shift_traffic(step, targets=targets, ledger=ledger)
    timings = stage_timings(ledger.get(PUSHED.deployment_id))
    events = ledger.stage_events("ShiftTraffic")
    assert len(events) == 2
    assert timings["staging/ShiftTraffic"] == round(sum(e.duration_ms for e in events), 1)
