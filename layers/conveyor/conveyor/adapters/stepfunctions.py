"""Step Functions executions: is the owner of a deployment (or of a lock) still running, or when did it end?

Beside the stages' questions, what an operator's tools ask and do: describe an execution, find the running
ones, stop one, read the state machine's definition. Those raise botocore's errors for the caller to name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.adapters import aws
from conveyor.domain.errors import TaskAnswerError
from conveyor.domain.ports import ENDED, IN_FLIGHT_GRACE, Ended, ExecutionState
from conveyor.observability import logger

_CALL_STARTED = frozenset({"LambdaFunctionScheduled", "LambdaFunctionStarted", "TaskScheduled", "TaskStarted"})
_CALL_ENDED = frozenset(
    {
        "LambdaFunctionSucceeded",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "TaskSubmitted",  # a .waitForTaskToken invoke has returned; only the callback is awaited
        "TaskSucceeded",
        "TaskFailed",
        "TaskTimedOut",
        "TaskStartFailed",
        "TaskSubmitFailed",
    }
)


def call_in_flight(events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the newest task event of a history is a call that had not ended (True when none is seen)."""
    for event in sorted(events, key=lambda e: int(e["id"]), reverse=True):
        if event["type"] in _CALL_ENDED:
            return False
        if event["type"] in _CALL_STARTED:
            return True
    return True


# Step Functions' answers when a task token no longer resumes anything.
_TOKEN_GONE = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


class StepFunctionsExecutions:
    """``Executions`` and ``TaskTokens`` on the Step Functions API."""

    def __init__(self, session: Session) -> None:
        self._sfn = aws.client(session, "stepfunctions")

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self._answer("send_task_success", taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> None:
        self._answer("send_task_failure", taskToken=token, error=error, cause=cause)

    def _answer(self, operation: str, **request: Any) -> None:
        try:
            getattr(self._sfn, operation)(**request)
        except (ClientError, BotoCoreError) as exc:
            gone = aws.error_code(exc) in _TOKEN_GONE
            raise TaskAnswerError(str(exc), gone=gone) from exc

    def status(self, execution_arn: str) -> str:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED...; RUNNING when it cannot be told (the safe answer)."""
        try:
            return str(self._sfn.describe_execution(executionArn=execution_arn)["status"])
        except ClientError as exc:
            if aws.error_code(exc) == "ExecutionDoesNotExist":
                return "ABSENT"
            logger.warning(
                "cannot describe the owner execution", extra={"execution_arn": execution_arn, "error": str(exc)}
            )
            return "RUNNING"
        except BotoCoreError as exc:
            logger.warning(
                "cannot describe the owner execution", extra={"execution_arn": execution_arn, "error": str(exc)}
            )
            return "RUNNING"

    def ended(self, execution_arn: str) -> Ended | None:
        """How the execution ended; None while it may still act, or when that cannot be told (the safe answer)."""
        try:
            described = self._sfn.describe_execution(executionArn=execution_arn)
            if described["status"] not in ENDED or described.get("stopDate") is None:
                return None
            # The newest events (moto ignores reverseOrder and maxResults: call_in_flight sorts by id).
            events = self._sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=100)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "cannot tell how an execution ended", extra={"execution_arn": execution_arn, "error": str(exc)}
            )
            return None
        stopped_at: datetime = described["stopDate"]
        quiet_at = stopped_at + IN_FLIGHT_GRACE if call_in_flight(events["events"]) else stopped_at
        return Ended(status=str(described["status"]), stopped_at=stopped_at, quiet_at=quiet_at)

    def state_input(self, execution_arn: str, state: str) -> dict[str, Any] | None:
        """The input the execution's first entry into ``state`` had; None when it never entered it, or when the
        history cannot be read (logged: the caller says less, it does not fail)."""
        try:
            for page in self._sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
                for event in sorted(page["events"], key=lambda e: int(e["id"])):
                    entered = event.get("stateEnteredEventDetails") or {}
                    if entered.get("name") == state:
                        document = json.loads(entered.get("input") or "null")
                        return document if isinstance(document, dict) else None
        except (ClientError, BotoCoreError, ValueError) as exc:
            logger.warning(
                "cannot read an execution's history", extra={"execution_arn": execution_arn, "error": str(exc)}
            )
        return None

    def describe(self, execution_arn: str) -> ExecutionState:
        described = self._sfn.describe_execution(executionArn=execution_arn)
        return ExecutionState(
            execution_arn=described["executionArn"],
            state_machine_arn=described["stateMachineArn"],
            name=described.get("name", ""),
            status=str(described["status"]),
            started_at=described.get("startDate"),
            stopped_at=described.get("stopDate"),
            input=described.get("input"),
            output=described.get("output"),
            error=described.get("error"),
            cause=described.get("cause"),
        )

    def running(self, state_machine_arn: str, *, limit: int) -> Iterator[ExecutionState]:
        """The newest ``limit`` RUNNING executions of ``state_machine_arn``, each described (with its input)."""
        listed = self._sfn.list_executions(stateMachineArn=state_machine_arn, statusFilter="RUNNING", maxResults=limit)
        for summary in listed["executions"]:
            yield self.describe(summary["executionArn"])

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        self._sfn.stop_execution(executionArn=execution_arn, error=error, cause=cause)

    def definition(self, state_machine_arn: str) -> str:
        return str(self._sfn.describe_state_machine(stateMachineArn=state_machine_arn)["definition"])
