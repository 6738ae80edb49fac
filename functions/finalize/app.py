"""Finalize: record a successful deployment with versions before/after and per-stage timings."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import FinalizeRequest
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.report import finalize


@logger.inject_lambda_context(correlation_id_path="deployment.deployment_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = FinalizeRequest.model_validate(event)
    logger.append_keys(app=request.deployment.app, version=request.deployment.version)
    report = finalize(request, ledger=runtime.ledger(), notifier=runtime.notifier(), locks=runtime.locks())
    return report.model_dump(mode="json")
