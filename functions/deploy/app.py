"""Deploy: update an environment's target function from the release package and publish a version."""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import EnvironmentStep
from conveyor.observability import logger, metrics, tracer
from conveyor.settings import settings
from conveyor.stages.deploy import deploy
from conveyor.stages.lock import check_fence


@logger.inject_lambda_context(correlation_id_path="deployment.deployment_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = EnvironmentStep.model_validate(event)
    logger.append_keys(app=step.deployment.app, version=step.deployment.version, environment=step.environment.name)
    # A stale lock holder (its lease ran out and another deployment took over) must change nothing.
    check_fence(step, locks=runtime.locks(), now=time.time())
    release = deploy(
        step, targets=runtime.targets(), ledger=runtime.ledger(), managed_tag_key=settings().managed_tag_key
    )
    return release.model_dump(mode="json")
