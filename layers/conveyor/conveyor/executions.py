"""Step Functions executions, as ClaimDeployment needs them: is the owner of a deployment still running?"""

from __future__ import annotations

from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from conveyor import aws
from conveyor.observability import logger


class Executions(Protocol):
    def status(self, execution_arn: str) -> str: ...


class StepFunctionsExecutions:
    def __init__(self) -> None:
        self._sfn = aws.client("stepfunctions")

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
