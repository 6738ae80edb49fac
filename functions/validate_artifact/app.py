"""ValidateArtifact: the S3 Object Created event in, a checked and recorded deployment out."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import ValidateRequest
from conveyor.domain.target_identity import Home
from conveyor.observability import logger, metrics, tracer
from conveyor.settings import settings
from conveyor.stages.validate import validate_artifact


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ValidateRequest.model_validate(event)
    deployment = validate_artifact(
        request,
        artifacts=runtime.artifacts(),
        ledger=runtime.ledger(),
        targets=runtime.targets(),
        executions=runtime.executions(),
        managed_tag_key=settings().managed_tag_key,
        artifact_bucket=settings().artifact_bucket,
        # Where this function runs is where Conveyor runs: its targets must be there too.
        home=Home.from_arn(context.invoked_function_arn),
        owners=runtime.target_owners(),
    )
    return deployment.model_dump(mode="json")
