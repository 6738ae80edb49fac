"""The doorway every stage function shares: one Lambda function serves several states of the pipeline.

The state machine still has a state per step (``ValidateArtifact``, ``Deploy``, ``ShiftTraffic``...),
but states that hold the same privileges run in one function, so a deployment cold-starts three
functions instead of seven (intake, rollout, report). A state invokes its function with::

    {"stage": "Deploy", "input": {...the stage's request...}}

and the function's table says which stage answers. Logger keys are cleared on every invocation:
a warm function that served ``Deploy`` for one deployment never logs with its keys for the next.
"""

from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from conveyor.domain.contracts import EnvironmentStep
from conveyor.domain.errors import UnknownStageError
from conveyor.observability import logger, metrics, tracer

Stage = Callable[[dict[str, Any], LambdaContext], BaseModel]
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class StageCall(BaseModel):
    """What a state sends its stage function: the state's name and the stage's request."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    stage: str
    input: dict[str, Any]


def stage_function(stages: Mapping[str, Stage]) -> Handler:
    """The Lambda handler of a function serving ``stages`` (state name -> stage)."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    @tracer.capture_lambda_handler
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        call = StageCall.model_validate(event)
        stage = stages.get(call.stage)
        if stage is None:
            raise UnknownStageError(
                f"{context.function_name} does not serve stage {call.stage!r} (it serves {', '.join(stages)})"
            )
        logger.append_keys(stage=call.stage)
        deployment = call.input.get("deployment")
        if isinstance(deployment, dict) and deployment.get("deployment_id"):
            logger.set_correlation_id(str(deployment["deployment_id"]))
        return stage(call.input, context).model_dump(mode="json")

    return handler


def environment_step(event: dict[str, Any]) -> EnvironmentStep:
    """The request of a stage that works on one environment, with its keys on every log line."""
    step = EnvironmentStep.model_validate(event)
    logger.append_keys(app=step.deployment.app, version=step.deployment.version, environment=step.environment.name)
    return step


__all__ = ["StageCall", "environment_step", "stage_function"]
