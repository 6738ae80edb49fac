"""ShiftTraffic: move the alias one step of the strategy's plan (weight 100 promotes)."""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import EnvironmentStep
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.lock import check_fence
from conveyor.stages.traffic import shift_traffic


@logger.inject_lambda_context(correlation_id_path="deployment.deployment_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = EnvironmentStep.model_validate(event)
    logger.append_keys(app=step.deployment.app, version=step.deployment.version, environment=step.environment.name)
    # A stale lock holder (its lease ran out, or a reconciler took over after its execution stopped) must change
    # nothing: the fence is checked between reading the alias and writing it (see conveyor.stages.traffic).
    return shift_traffic(
        step,
        targets=runtime.targets(),
        ledger=runtime.ledger(),
        fence=lambda: check_fence(step, locks=runtime.locks(), now=time.time()),
    ).model_dump(mode="json")
