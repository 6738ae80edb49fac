"""How a Step Functions execution ends on the local cloud, and how it is announced: as on AWS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from local_cloud_support import wait_for

Aws = Callable[[str], Any]


def _start(aws: Aws, machine: str, payload: dict[str, Any]) -> str:
    response = aws("stepfunctions").start_execution(
        stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(payload)
    )
    return str(response["executionArn"])


def _has_item(aws: Aws, table: str, pk: str) -> bool:
    return "Item" in aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)


def _put_item(aws: Aws, table: str, pk: str) -> None:
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": pk}})


def _history(aws: Aws, execution_arn: str) -> list[dict[str, Any]]:
    return aws("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]  # type: ignore[no-any-return]


def _ended(aws: Aws, execution_arn: str) -> dict[str, Any] | None:
    described: dict[str, Any] = aws("stepfunctions").describe_execution(executionArn=execution_arn)
    return None if described["status"] == "RUNNING" else described


@pytest.fixture
def status_changes(local_cloud: dict[str, Any], aws: Aws) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """A rule sending every status change of the stoppable and timeout machines to a fresh SQS queue.

    Yields ``received(execution_arn)``: the events for that execution received so far, oldest first.
    """
    suffix = uuid.uuid4().hex[:8]
    queue_url = aws("sqs").create_queue(QueueName=f"status-{suffix}")["QueueUrl"]
    queue_arn = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    machines = [local_cloud["outputs"]["StoppablePipelineArn"], local_cloud["outputs"]["TimeoutPipelineArn"]]
    pattern = {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"stateMachineArn": machines},
    }
    rule = f"status-{suffix}"
    aws("events").put_rule(Name=rule, EventPattern=json.dumps(pattern))
    aws("events").put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    received: list[dict[str, Any]] = []

    def for_execution(execution_arn: str) -> list[dict[str, Any]]:
        messages = aws("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            received.append(json.loads(message["Body"]))
            aws("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [event for event in received if event["detail"]["executionArn"] == execution_arn]

    yield for_execution
    aws("events").remove_targets(Rule=rule, Ids=["queue"])
    aws("events").delete_rule(Name=rule)
    aws("sqs").delete_queue(QueueUrl=queue_url)


def _reconciler_saw(aws: Aws, function_name: str, execution_arn: str) -> dict[str, Any] | None:
    """The status-change event the reconciler function was invoked with for ``execution_arn`` (from its logs)."""
    try:
        events = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{function_name}")["events"]
    except aws("logs").exceptions.ResourceNotFoundException:
        return None
    for event in events:
        message = event["message"]
        if message.startswith("probe event=") and execution_arn in message:
            return json.loads(message.removeprefix("probe event="))  # type: ignore[no-any-return]
    return None


def test_a_stop_mid_map_ends_aborted_at_once_and_runs_nothing_after(
    local_cloud: dict[str, Any], aws: Aws, status_changes: Callable[[str], list[dict[str, Any]]]
) -> None:
    # Given an execution inside its Map, its Lambda call in flight (held until released)
    outputs = local_cloud["outputs"]
    table, marker = outputs["TableName"], uuid.uuid4().hex
    steps = [{"action": "gate", "marker": f"{marker}-{n}", "pause": 1} for n in range(2)]
    arn = _start(
        aws, outputs["StoppablePipelineArn"], {"steps": steps, "after": {"action": "mark", "marker": f"{marker}-after"}}
    )
    wait_for(lambda: _has_item(aws, table, f"{marker}-0#started"), timeout=30)

    # When it is stopped with an error and a cause
    stopped = aws("stepfunctions").stop_execution(executionArn=arn, error="Operator.Stop", cause="stopped by a test")

    # Then it is ABORTED at once, with the stop's date, error and cause, the Lambda call still held
    described = aws("stepfunctions").describe_execution(executionArn=arn)
    assert described["status"] == "ABORTED"
    assert described["stopDate"] == stopped["stopDate"]
    assert (described["error"], described["cause"]) == ("Operator.Stop", "stopped by a test")
    assert not _has_item(aws, table, f"{marker}-0#finished"), "the stop did not wait for the Lambda call"
    assert _history(aws, arn)[-1]["type"] == "ExecutionAborted"

    # And the Lambda call in flight runs to its end (its side effect happens), its result discarded
    _put_item(aws, table, f"{marker}-0#release")
    wait_for(lambda: _has_item(aws, table, f"{marker}-0#finished"), timeout=30)
    wait_for(lambda: _reconciler_saw(aws, outputs["ReconcileProbeFunctionName"], arn), timeout=30)
    history = _history(aws, arn)
    assert history[-1]["type"] == "ExecutionAborted"
    assert history[-1]["executionAbortedEventDetails"] == {"error": "Operator.Stop", "cause": "stopped by a test"}
    assert not any(event["type"] in {"TaskSucceeded", "LambdaFunctionSucceeded"} for event in history)

    # And no later state ran: neither the next iteration, nor the Map's Catch path, nor the state after it
    assert aws("stepfunctions").describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert not _has_item(aws, table, f"{marker}-1#started")
    assert not _has_item(aws, table, f"{marker}-after")

    # And the ABORTED status change was announced, after the RUNNING one
    events = wait_for(lambda: len(found := status_changes(arn)) >= 2 and found)
    assert [event["detail"]["status"] for event in events] == ["RUNNING", "ABORTED"]
    aborted = events[-1]["detail"]
    assert aborted["error"] == "Operator.Stop"
    assert aborted["cause"] == "stopped by a test"
    assert aborted["stopDate"] is not None


def test_a_stop_during_a_wait_ends_aborted(local_cloud: dict[str, Any], aws: Aws) -> None:
    # Given an execution in the Wait that follows its first (finished) Lambda call
    outputs = local_cloud["outputs"]
    table, marker = outputs["TableName"], uuid.uuid4().hex
    _put_item(aws, table, f"{marker}-0#release")
    steps = [{"action": "gate", "marker": f"{marker}-0", "pause": 100000}, {"action": "gate", "marker": f"{marker}-1"}]
    arn = _start(
        aws, outputs["StoppablePipelineArn"], {"steps": steps, "after": {"action": "mark", "marker": f"{marker}-after"}}
    )
    wait_for(lambda: any(e["type"] == "WaitStateEntered" for e in _history(aws, arn)), timeout=30)

    # When it is stopped without error or cause
    aws("stepfunctions").stop_execution(executionArn=arn)

    # Then it is ABORTED, with neither error nor cause, and nothing after the Wait runs
    described = wait_for(lambda: _ended(aws, arn))
    assert described["status"] == "ABORTED"
    assert "error" not in described
    assert "cause" not in described
    assert _history(aws, arn)[-1]["type"] == "ExecutionAborted"
    assert not _has_item(aws, table, f"{marker}-1#started")
    assert not _has_item(aws, table, f"{marker}-after")


def test_a_stop_at_once_after_the_start_is_accepted_and_ends_aborted(local_cloud: dict[str, Any], aws: Aws) -> None:
    # Given an execution just started: its interpreter may not have built its environment yet
    outputs = local_cloud["outputs"]
    table, marker = outputs["TableName"], uuid.uuid4().hex
    steps = [{"action": "gate", "marker": f"{marker}-0", "pause": 100000}]
    arn = _start(
        aws, outputs["StoppablePipelineArn"], {"steps": steps, "after": {"action": "mark", "marker": f"{marker}-after"}}
    )

    # When it is stopped straight away (bare moto answers 500 here: its worker has no environment to stop)
    aws("stepfunctions").stop_execution(executionArn=arn, cause="operator")

    # Then the stop is taken: ABORTED at once, its history ends ExecutionAborted, and nothing after runs
    assert aws("stepfunctions").describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert wait_for(lambda: _history(aws, arn)[-1]["type"] == "ExecutionAborted", timeout=30)
    assert not _has_item(aws, table, f"{marker}-after")


def test_an_execution_started_without_a_name_is_named_with_a_new_uuid(local_cloud: dict[str, Any], aws: Aws) -> None:
    # Given two executions started without a name, with different inputs (as the console may start them)
    machine, marker = local_cloud["outputs"]["StoppablePipelineArn"], uuid.uuid4().hex
    gate = [{"action": "gate", "marker": f"{marker}-0", "pause": 100000}]
    arns = [
        aws("stepfunctions").start_execution(stateMachineArn=machine, input=json.dumps({"steps": gate, "n": n}))[
            "executionArn"
        ]
        for n in range(2)
    ]
    for arn in arns:
        aws("stepfunctions").stop_execution(executionArn=arn, cause="test over")
    # Then both started, each named with a UUID of its own (bare moto named both "None": the second was refused)
    names = [aws("stepfunctions").describe_execution(executionArn=arn)["name"] for arn in arns]
    assert len(set(names)) == 2
    assert all(str(uuid.UUID(name)) == name for name in names)


def test_the_context_start_time_is_the_executions_start_to_the_millisecond(
    local_cloud: dict[str, Any], aws: Aws
) -> None:
    # Given a state machine whose one state outputs $$.Execution.StartTime
    sfn = aws("stepfunctions")
    definition = {
        "StartAt": "Read",
        "States": {"Read": {"Type": "Pass", "Parameters": {"start.$": "$$.Execution.StartTime"}, "End": True}},
    }
    machine = sfn.create_state_machine(
        name=f"start-time-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/start-time",
    )["stateMachineArn"]
    try:
        # When it runs
        arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
        ended = wait_for(lambda: _ended(aws, arn), timeout=60)

        # Then the context's start is DescribeExecution's startDate, to the millisecond (as on AWS: a key built
        # from either matches), and carries no microseconds
        start = datetime.fromisoformat(json.loads(ended["output"])["start"].replace("Z", "+00:00"))
        assert start == ended["startDate"]
        assert ended["startDate"].microsecond % 1000 == 0
    finally:
        sfn.delete_state_machine(stateMachineArn=machine)


def test_a_stop_during_a_lambda_task_ends_aborted_and_discards_its_result(
    local_cloud: dict[str, Any], aws: Aws
) -> None:
    # Given an execution in a top-level Lambda Task, the call in flight (held until released)
    outputs = local_cloud["outputs"]
    table, marker = outputs["TableName"], uuid.uuid4().hex
    arn = _start(aws, outputs["StoppablePipelineArn"], {"steps": [], "after": {"action": "gate", "marker": marker}})
    wait_for(lambda: _has_item(aws, table, f"{marker}#started"), timeout=30)

    # When it is stopped
    aws("stepfunctions").stop_execution(executionArn=arn, cause="operator")

    # Then it is ABORTED before the call returns
    assert aws("stepfunctions").describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert not _has_item(aws, table, f"{marker}#finished")

    # And once the call has run to its end, its result is discarded: it stays ABORTED, no output, history unchanged
    history = _history(aws, arn)
    _put_item(aws, table, f"{marker}#release")
    wait_for(lambda: _has_item(aws, table, f"{marker}#finished"), timeout=30)
    described = aws("stepfunctions").describe_execution(executionArn=arn)
    assert described["status"] == "ABORTED"
    assert described["cause"] == "operator"
    assert "output" not in described
    assert _history(aws, arn) == history


def test_every_status_change_reaches_a_rule_target_with_the_aws_shape(
    local_cloud: dict[str, Any], aws: Aws, status_changes: Callable[[str], list[dict[str, Any]]]
) -> None:
    # Given a rule on the stoppable machine's status changes targeting an SQS queue
    outputs = local_cloud["outputs"]
    marker = uuid.uuid4().hex

    # When an execution runs to success
    arn = _start(
        aws, outputs["StoppablePipelineArn"], {"steps": [], "after": {"action": "mark", "marker": f"{marker}-after"}}
    )
    wait_for(lambda: _ended(aws, arn))

    # Then RUNNING and SUCCEEDED reach the queue, shaped as Step Functions sends them
    events = wait_for(lambda: len(found := status_changes(arn)) >= 2 and found)
    assert [event["detail"]["status"] for event in events] == ["RUNNING", "SUCCEEDED"]
    running, succeeded = (event["detail"] for event in events)
    described = aws("stepfunctions").describe_execution(executionArn=arn)
    for event in events:
        assert event["source"] == "aws.states"
        assert event["detail-type"] == "Step Functions Execution Status Change"
        assert event["resources"] == [arn]
        uuid.UUID(event["id"])
    assert running["stopDate"] is None
    assert running["output"] is None
    assert succeeded["executionArn"] == arn
    assert succeeded["stateMachineArn"] == outputs["StoppablePipelineArn"]
    assert succeeded["name"] == described["name"]
    assert succeeded["startDate"] == int(described["startDate"].timestamp() * 1000)
    assert succeeded["stopDate"] == int(described["stopDate"].timestamp() * 1000)
    assert json.loads(succeeded["input"]) == {"steps": [], "after": {"action": "mark", "marker": f"{marker}-after"}}
    assert json.loads(succeeded["output"]) == json.loads(described["output"])
    assert succeeded["inputDetails"] == {"included": True}
    assert succeeded["outputDetails"] == {"included": True}
    assert succeeded["error"] is None
    assert succeeded["redriveCount"] == 0


def test_a_failed_execution_reaches_the_templates_reconciler_function(local_cloud: dict[str, Any], aws: Aws) -> None:
    # Given the template's function with an EventBridgeRule event on FAILED/TIMED_OUT/ABORTED of the machine
    outputs = local_cloud["outputs"]

    # When an execution fails (no items to map, and the Catch path then lacks the "after" its Task needs)
    arn = _start(aws, outputs["StoppablePipelineArn"], {"steps": "not a list"})
    described = wait_for(lambda: _ended(aws, arn), timeout=30)
    assert described["status"] == "FAILED"

    # Then the function is invoked (asynchronously) with the FAILED status change, error and cause included
    event = wait_for(lambda: _reconciler_saw(aws, outputs["ReconcileProbeFunctionName"], arn), timeout=30)
    assert event["detail-type"] == "Step Functions Execution Status Change"
    assert event["detail"]["status"] == "FAILED"
    assert event["detail"]["error"] == described["error"]
    assert event["detail"]["cause"] == described.get("cause")


def test_a_timed_out_execution_is_announced(
    local_cloud: dict[str, Any], aws: Aws, status_changes: Callable[[str], list[dict[str, Any]]]
) -> None:
    # Given a machine whose TimeoutSeconds is shorter than its Wait
    machine = local_cloud["outputs"]["TimeoutPipelineArn"]

    # When an execution of it times out
    arn = _start(aws, machine, {})
    described = wait_for(lambda: _ended(aws, arn), timeout=30)

    # Then it is TIMED_OUT, its history ends so, and the status change reaches the rule's target
    assert described["status"] == "TIMED_OUT"
    assert _history(aws, arn)[-1]["type"] == "ExecutionTimedOut"
    events = wait_for(lambda: len(found := status_changes(arn)) >= 2 and found)
    assert [event["detail"]["status"] for event in events] == ["RUNNING", "TIMED_OUT"]
    assert events[-1]["detail"]["stopDate"] is not None
