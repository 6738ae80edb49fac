"""AcquireLock: take the environment's lock (lease + fencing token), or say how to wait for it."""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import EnvironmentStep
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.lock import acquire_lock


@logger.inject_lambda_context(correlation_id_path="deployment.deployment_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = EnvironmentStep.model_validate(event)
    logger.append_keys(app=step.deployment.app, version=step.deployment.version, environment=step.environment.name)
    grant = acquire_lock(
        step,
        locks=runtime.locks(),
        ledger=runtime.ledger(),
        targets=runtime.targets(),
        executions=runtime.executions(),
        now=time.time(),
    )
    return grant.model_dump(mode="json")
