"""ClaimDeployment: the first execution of a pushed object proceeds; duplicates and re-runs of a live one end here."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import ClaimRequest
from conveyor.observability import logger, metrics, tracer
from conveyor.settings import settings
from conveyor.stages.claim import claim_deployment


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ClaimRequest.model_validate(event)
    claim = claim_deployment(
        request, ledger=runtime.ledger(), executions=runtime.executions(), artifact_bucket=settings().artifact_bucket
    )
    return claim.model_dump(mode="json")
