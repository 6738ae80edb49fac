"""NotifyFailure: record how a failed deployment ended and tell the on-call what failed and what was done."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import FailureRequest
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.report import notify_failure


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = FailureRequest.model_validate(event)
    report = notify_failure(request, ledger=runtime.ledger(), notifier=runtime.notifier(), locks=runtime.locks())
    return report.model_dump(mode="json")
