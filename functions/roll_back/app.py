"""RollBack: restore the environment's alias to the version it served before, routing cleared."""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import EnvironmentStep
from conveyor.domain.errors import LedgerError
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.lock import check_fence
from conveyor.stages.rollback import roll_back


@logger.inject_lambda_context(correlation_id_path="deployment.deployment_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = EnvironmentStep.model_validate(event)
    logger.append_keys(app=step.deployment.app, version=step.deployment.version, environment=step.environment.name)
    # A stale lock holder (its lease ran out and another deployment took over) must change nothing. A lock table
    # that cannot be read does not stop the restore: the lease covers a running execution, and traffic comes first.
    try:
        check_fence(step, locks=runtime.locks(), now=time.time())
    except LedgerError as exc:
        logger.error("lock table unreadable; restoring under this execution's lease", extra={"error": str(exc)})
    return roll_back(step, targets=runtime.targets(), ledger=runtime.ledger()).model_dump(mode="json")
