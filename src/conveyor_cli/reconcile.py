"""``conveyor reconcile [EXECUTION_ARN ...]``: close executions the reconciler could not, by hand.

The Reconcile function normally runs by itself on every execution that ends FAILED, TIMED_OUT or
ABORTED. What it could not finish (a ledger outage that outlived Lambda's retries) lands in the
reconcile dead-letter queue. Without arguments this command redrives that queue: each message
(an EventBridge event, or Lambda's on-failure record wrapping one) is handed to the Reconcile
function again and deleted once it succeeded. With execution ARNs, it reconciles those
executions (an event is built from ``DescribeExecution``, as Step Functions would have sent it).
Reconciling is idempotent: a second run finds nothing left to do.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.adapters.sqs import SqsQueue
from conveyor.domain.errors import TargetInvokeError
from conveyor.domain.ports import ExecutionState

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud

DETAIL_TYPE = "Step Functions Execution Status Change"


def status_change_event(execution: ExecutionState) -> dict[str, Any]:
    """The EventBridge event Step Functions sends for a described execution."""

    def millis(value: datetime | None) -> int | None:
        return None if value is None else int(value.timestamp() * 1000)

    return {
        "version": "0",
        "source": "aws.states",
        "detail-type": DETAIL_TYPE,
        "resources": [execution.execution_arn],
        "detail": {
            "executionArn": execution.execution_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": execution.status,
            "startDate": millis(execution.started_at),
            "stopDate": millis(execution.stopped_at),
            "input": execution.input,
            "output": execution.output,
            "error": execution.error,
            "cause": execution.cause,
        },
    }


def event_of_message(body: str) -> dict[str, Any]:
    """The status-change event in a dead-letter message: the event itself, or Lambda's on-failure record."""
    document = json.loads(body)
    if isinstance(document, dict) and isinstance(document.get("requestPayload"), dict):
        document = document["requestPayload"]
    if not isinstance(document, dict) or document.get("detail-type") != DETAIL_TYPE:
        raise ValueError("not a Step Functions Execution Status Change event")
    return document


def invoke_reconcile(cloud: Cloud, event: dict[str, Any]) -> dict[str, Any]:
    """Run the Reconcile function on ``event``, synchronously; its result, or CliError with its error."""
    function = cloud.outputs.reconcile_function
    try:
        # Marked as the operator's: the answer (an error too) is theirs to read, nobody is paged for it.
        invocation = operations.targets(cloud).invoke(function, "$LATEST", event | {"conveyor-operator": True})
    except TargetInvokeError as exc:
        raise CliError(str(exc)) from exc
    payload = invocation.payload
    if invocation.function_error:
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise CliError(f"{function} failed: {message}")
    if not isinstance(payload, dict):
        raise CliError(f"{function} answered {payload!r}, not the reconciliation it records")
    return payload


def reconcile_executions(cloud: Cloud, execution_arns: list[str]) -> list[dict[str, Any]]:
    executions = operations.executions(cloud)
    results = []
    for arn in execution_arns:
        try:
            execution = executions.describe(arn)
        except (ClientError, BotoCoreError) as exc:
            raise CliError(f"cannot describe execution {arn}: {exc}") from exc
        if execution.status in ("RUNNING", "PENDING_REDRIVE"):
            raise CliError(
                f"execution {arn} is still {execution.status}: stop it first (aws stepfunctions stop-execution)"
            )
        results.append(invoke_reconcile(cloud, status_change_event(execution)))
    return results


def redrive_dead_letters(cloud: Cloud, *, max_messages: int = 100) -> dict[str, Any]:
    """Hand every message of the reconcile dead-letter queue to Reconcile again; delete the ones it closed."""
    queue = SqsQueue(cloud.session, cloud.outputs.reconcile_dead_letter_queue)
    reconciled: list[dict[str, Any]] = []
    failed: list[str] = []
    while len(reconciled) + len(failed) < max_messages:
        try:
            batch = queue.receive()
        except (ClientError, BotoCoreError) as exc:
            raise CliError(f"reading the reconcile dead-letter queue {queue.url} failed: {exc}") from exc
        if not batch:
            break
        for message in batch:
            try:
                result = invoke_reconcile(cloud, event_of_message(message.body))
            except (CliError, ValueError) as exc:
                failed.append(f"{message.message_id}: {exc}")
                continue
            queue.delete(message)
            reconciled.append(result)
    return {"reconciled": reconciled, "failed": failed}
