import pytest
from conveyor.domain.contracts import Failure, HealthVerdict
from conveyor.domain.errors import RollbackFailedError, TargetNotManagedError, TrafficShiftError
from conveyor.domain.notices import render_failure
from conveyor.domain.outcome import Outcome
from conveyor.domain.timing import utcnow
from conveyor.stages.deploy import deploy
from conveyor.stages.rollback import roll_back, rollback_reason

from conveyor_cli.status import describe_event
from tests.fakes import FakeTargets
from tests.unit.conftest import build_step, started_ledger

TAG = "conveyor:managed"


def test_deploy_publishes_a_new_version_and_remembers_the_previous_one() -> None:
    step = build_step(release=None)
    targets = FakeTargets()
    targets.add("hello-staging", alias="live", version="1")
    ledger = started_ledger(step)
    release = deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)
    assert (release.version_before, release.version_after, release.reused) == ("1", "2", False)
    assert ledger.get("d-unit").environments["staging"].status == "DEPLOYED"
    assert ledger.stage_events("Deploy")[0].status == "succeeded"


def test_deploy_twice_reuses_the_version() -> None:
    step = build_step(release=None)
    targets = FakeTargets()
    targets.add("hello-staging", alias="live")
    ledger = started_ledger(step)
    first = deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)
    again = deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)
    assert again.version_after == first.version_after
    assert again.reused is True
    assert len(targets.functions["hello-staging"].versions) == 2


def test_deploy_refuses_an_unmanaged_function_and_changes_nothing() -> None:
    step = build_step(release=None)
    targets = FakeTargets()
    targets.add("hello-staging", managed=False, alias="live")
    ledger = started_ledger(step)
    with pytest.raises(TargetNotManagedError):
        deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)
    assert list(targets.functions["hello-staging"].versions) == ["1"]
    assert ledger.stage_events("Deploy")[0].detail["error"] == "TargetNotManagedError"


def test_rollback_restores_the_previous_version_with_routing_cleared() -> None:
    targets = FakeTargets()
    function = targets.add("hello-staging", alias="live", version="1")
    function.aliases["live"] = ("1", {"2": 0.1})
    verdict = HealthVerdict(status="fail", reason="alarm 'x' is in ALARM", weight=10, checks=[], evaluated_at=utcnow())
    step = build_step(health=verdict)
    ledger = started_ledger(step)
    result = roll_back(step, targets=targets, ledger=ledger)
    assert function.aliases["live"] == ("1", {})
    assert (result.restored_version, result.rolled_back_from) == ("1", "2")
    assert result.reason == "health check failed at 10% traffic: alarm 'x' is in ALARM"
    env = ledger.get("d-unit").environments["staging"]
    assert (env.status, env.weight, (env.rollback or {})["restored_version"]) == ("ROLLED_BACK", 0, "1")


def test_rollback_before_traffic_moved_says_nothing_moved() -> None:
    # A hook failing at 0%: the alias never left version 1, so there is no "was 2" to report.
    targets = FakeTargets()
    function = targets.add("hello-staging", alias="live", version="1")
    step = build_step(failure=Failure(error="HookFailedError", cause="migrate.up failed"))
    ledger = started_ledger(step)
    deployed = {"function_name": "hello-staging", "alias": "live", "version_before": "1", "version_after": "2"}
    ledger.update_environment("d-unit", "staging", deployed)  # as Deploy left it
    result = roll_back(step, targets=targets, ledger=ledger)
    assert function.aliases["live"] == ("1", {})
    assert (result.restored_version, result.rolled_back_from) == ("1", None)
    record = ledger.get("d-unit")
    body = render_failure(record, Outcome.ROLLED_BACK, "RunHook", "staging", result.reason)[1]
    assert "staging: ROLLED BACK - hello-staging:live stayed on version 1: version 2 never took traffic" in body
    (event,) = ledger.stage_events("RollBack")
    assert describe_event(event) == "restored version 1 kept (traffic had not moved)"


def test_rollback_of_a_first_deployment_removes_the_alias() -> None:
    targets = FakeTargets()
    function = targets.add("hello-staging")
    function.aliases["live"] = ("2", {})
    step = build_step(version_before=None)
    roll_back(step, targets=targets, ledger=started_ledger(step))
    assert "live" not in function.aliases


def test_rollback_failure_names_the_command_to_run() -> None:
    targets = FakeTargets()
    targets.add("hello-staging", alias="live").aliases["live"] = ("1", {"2": 0.1})  # traffic had moved
    targets.fail_route = TrafficShiftError("AccessDenied")
    step = build_step()
    ledger = started_ledger(step)
    with pytest.raises(RollbackFailedError, match="aws lambda update-alias --function-name hello-staging --name live"):
        roll_back(step, targets=targets, ledger=ledger)
    assert ledger.stage_events("RollBack")[0].status == "failed"


def test_a_rollback_lambda_refuses_where_no_traffic_had_moved_is_not_a_failed_rollback() -> None:
    # Given the first traffic step failed (Lambda refusing UpdateAlias), so the alias never left version 1
    targets = FakeTargets()
    function = targets.add("hello-staging", alias="live", version="1")
    targets.fail_route = TrafficShiftError("ServiceException")
    step = build_step(failure=Failure(error="TrafficShiftError", cause="UpdateAlias failed"))
    # When RollBack runs with Lambda still refusing, Then nothing needed restoring: rolled back, not failed
    result = roll_back(step, targets=targets, ledger=started_ledger(step))
    assert (result.restored_version, result.rolled_back_from) == ("1", None)
    assert function.aliases["live"] == ("1", {})


def test_rollback_without_a_release_fails_loudly() -> None:
    with pytest.raises(RollbackFailedError, match="alias state is unknown"):
        roll_back(build_step(release=None), targets=FakeTargets(), ledger=started_ledger(build_step()))


def test_rollback_reason_from_a_crash() -> None:
    failure = Failure(
        Error="TrafficShiftError", Cause='{"errorMessage": "throttled", "errorType": "TrafficShiftError"}'
    )
    assert rollback_reason(build_step(failure=failure)) == "TrafficShiftError: throttled"
    assert rollback_reason(build_step()) == "rollback requested"


def test_a_crash_after_a_paused_verdict_is_the_reason_not_the_verdict() -> None:
    # Given a rollout that paused on an inconclusive verdict, was promoted, and then crashed shifting traffic
    verdict = HealthVerdict(status="inconclusive", reason="no data", weight=10, checks=[], evaluated_at=utcnow())
    failure = Failure.model_validate({"Error": "TrafficShiftError", "Cause": '{"errorMessage": "version 7 is gone"}'})
    step = build_step(health=verdict, failure=failure)

    # Then the rollback says the crash is why
    assert rollback_reason(step) == "TrafficShiftError: version 7 is gone"
