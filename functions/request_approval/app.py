"""RequestApproval: store the task token in the ledger and ask the approvers (the execution waits for them)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import ApprovalRequest
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.approval import request_approval


@logger.inject_lambda_context(correlation_id_path="deployment.deployment_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The event carries the task token: it is parsed, never logged (POWERTOOLS_LOGGER_LOG_EVENT is off).
    request = ApprovalRequest.model_validate(event)
    logger.append_keys(
        app=request.deployment.app, version=request.deployment.version, environment=request.environment.name
    )
    ticket = request_approval(request, ledger=runtime.ledger(), notifier=runtime.notifier(), locks=runtime.locks())
    return ticket.model_dump(mode="json")
