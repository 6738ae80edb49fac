"""CheckGates on moto: operator freezes in the ledger table (DynamoFreezes) and the environment's alarms
(CloudWatch), read by the intake function's handler as the state machine invokes it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from conveyor import runtime
from conveyor.adapters.cloudwatch import CloudWatchAlarms
from conveyor.adapters.dynamodb_freezes import DynamoFreezes
from conveyor.adapters.dynamodb_ledger import DynamoLedger
from conveyor.domain.errors import AlarmsUnavailableError
from conveyor.domain.freeze import ALL_APPS, OperatorFreeze

from tests.fakes import DEFAULT_SPEC, pipeline_yaml
from tests.functional.conftest import (
    TABLE,
    Cloud,
    FakeLambdaContext,
    environment_step,
    load_handler,
)

ALICE = "arn:aws:iam::123456789012:user/alice"
ALARMED = [
    {**DEFAULT_SPEC["environments"][0], "health": {**DEFAULT_SPEC["environments"][0]["health"], "alarms": ["errs"]}}
]


def _put_alarm(cloud: Cloud, state: str) -> None:
    cloud.cloudwatch.put_metric_alarm(
        AlarmName="errs",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloud.cloudwatch.set_alarm_state(AlarmName="errs", StateValue=state, StateReason="test")


def _gate(state: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    step = environment_step(state)
    step.pop("lock", None)  # (the gate reads no lock: it runs under one the state machine took)
    result: dict[str, Any] = load_handler("check_gates").handler(step, context)
    return result


def _freezes() -> DynamoFreezes:
    return DynamoFreezes(runtime.session(), TABLE)


def test_an_operator_freeze_in_the_ledger_stops_the_gate_until_it_is_lifted(
    cloud: Cloud, validated: Callable[..., dict[str, Any]], context: FakeLambdaContext
) -> None:
    # Given a validated deployment, and every app frozen by alice
    state = validated()  # (its AcquireLocks asked the gates too: open, before the freeze)
    deployment_id = state["deployment"]["deployment_id"]
    asked_before = len([e for e in cloud.events(deployment_id) if e["stage"] == "CheckGates"])
    now = datetime.now(UTC)
    _freezes().put(OperatorFreeze(scope=ALL_APPS, reason="incident 42", by=ALICE, at=now))

    # When the gate checks staging
    frozen = _gate(state, context)

    # Then it refuses, naming who froze and why, and records the decision as a failed CheckGates event
    assert frozen["decision"] == "frozen"
    assert f"every app frozen by {ALICE}" in frozen["reason"]
    assert "incident 42" in frozen["reason"]
    gates = [e for e in cloud.events(deployment_id) if e["stage"] == "CheckGates"][asked_before:]
    assert [(e["status"], e["detail"]["decision"]) for e in gates] == [("failed", "frozen")]

    # When the freeze is lifted, the gate opens
    assert _freezes().remove(ALL_APPS) is not None
    assert _gate(state, context)["decision"] == "open"
    assert _freezes().remove(ALL_APPS) is None


def test_a_freeze_with_until_round_trips_and_stays_out_of_the_history(
    cloud: Cloud, validated: Callable[..., dict[str, Any]]
) -> None:
    state = validated()
    until = datetime(2030, 1, 1, tzinfo=UTC)
    stop = OperatorFreeze(scope="hello", reason="release train", by=ALICE, at=until - timedelta(days=1), until=until)
    _freezes().put(stop)
    assert _freezes().all() == [stop]
    history = DynamoLedger(runtime.session(), TABLE).history(app="hello")
    assert [record.deployment_id for record in history] == [state["deployment"]["deployment_id"]]


def test_an_alarm_in_alarm_before_the_deployment_refuses_it(
    cloud: Cloud, validated: Callable[..., dict[str, Any]], context: FakeLambdaContext
) -> None:
    # Given staging's alarm is in ALARM before anything is deployed
    _put_alarm(cloud, "ALARM")
    state = validated(pipeline_yaml(environments=ALARMED))

    # Then the gate refuses, naming the alarm; once it is OK again, it opens
    refused = _gate(state, context)
    assert refused["decision"] == "alarm"
    assert "alarm 'errs' is in ALARM" in refused["reason"]
    cloud.cloudwatch.set_alarm_state(AlarmName="errs", StateValue="OK", StateReason="recovered")
    assert _gate(state, context)["decision"] == "open"


def test_an_alarm_read_that_fails_is_a_named_error_the_state_machine_retries(cloud: Cloud) -> None:
    # Given DescribeAlarms is throttled past the SDK's retries
    alarms = CloudWatchAlarms(runtime.session())
    with Stubber(alarms._cloudwatch) as stub:
        stub.add_client_error("describe_alarms", service_error_code="Throttling", http_status_code=400)
        # Then the adapter names it, with the alarms it could not read
        with pytest.raises(AlarmsUnavailableError, match="reading the state of alarms errs failed"):
            alarms.states(["errs"])
