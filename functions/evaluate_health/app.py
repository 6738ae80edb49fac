"""EvaluateHealth: judge the new version (synthetic, alarms, metrics, HTTP, hooks) and return the verdict."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import EnvironmentStep
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.health import evaluate_health


@logger.inject_lambda_context(correlation_id_path="deployment.deployment_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = EnvironmentStep.model_validate(event)
    logger.append_keys(app=step.deployment.app, version=step.deployment.version, environment=step.environment.name)
    verdict = evaluate_health(
        step,
        targets=runtime.targets(),
        alarms=runtime.alarms(),
        ledger=runtime.ledger(),
        lambda_metrics=runtime.lambda_metrics(),
        prober=runtime.prober(),
    )
    return verdict.model_dump(mode="json")
