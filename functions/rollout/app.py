"""Rollout: the states that change a target (Deploy, ShiftTraffic, EvaluateHealth, RollBack) and RecordHook.

Deploy, ShiftTraffic and RollBack check the lock's fencing token before they write: a stale holder (its
lease ran out, or the reconciler took over after its execution stopped) changes nothing.

Each stage's module is imported the first time its state is routed here (see ``conveyor.runtime`` for the
adapters): a cold start loads what the state that woke the function needs, not every stage it serves.
"""

# isort: off
from conveyor import coldstart  # first: no garbage collection while the modules below load

# isort: on
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import EnvironmentStep, HealthVerdict, Release, RollbackResult, TrafficState
from conveyor.domain.errors import LedgerError
from conveyor.domain.hooks import HookOutcome, HookRecordRequest
from conveyor.domain.pipeline import ElasticBeanstalkTarget
from conveyor.entry import environment_step, stage_function
from conveyor.observability import logger
from conveyor.settings import settings

if TYPE_CHECKING:
    from conveyor.adapters.elasticbeanstalk import BeanstalkTargets


def _beanstalk(step: EnvironmentStep) -> "BeanstalkTargets | None":
    """The Elastic Beanstalk adapter when the environment targets Beanstalk (built only then)."""
    return runtime.beanstalk() if isinstance(step.environment.target, ElasticBeanstalkTarget) else None


def deploy_release(event: dict[str, Any], context: LambdaContext) -> Release:
    """Update the target function from the release package and publish a version."""
    from conveyor.stages.deploy import deploy
    from conveyor.stages.lock import check_fence

    step = environment_step(event)
    check_fence(step, locks=runtime.locks(), now=time.time())
    return deploy(
        step,
        targets=runtime.targets(),
        ledger=runtime.ledger(),
        managed_tag_key=settings().managed_tag_key,
        beanstalk=_beanstalk(step),
    )


def shift(event: dict[str, Any], context: LambdaContext) -> TrafficState:
    """Move the alias one step of the strategy's plan (weight 100 promotes).

    The fence is checked between reading the alias and writing it (see conveyor.stages.traffic).
    """
    from conveyor.domain.hooks import step_hook_calls
    from conveyor.stages.lock import check_fence
    from conveyor.stages.traffic import shift_traffic

    step = environment_step(event)
    traffic = shift_traffic(
        step,
        targets=runtime.targets(),
        ledger=runtime.ledger(),
        fence=lambda: check_fence(step, locks=runtime.locks(), now=time.time()),
        beanstalk=_beanstalk(step),
    )
    if step.release is None:  # shift_traffic refuses a step without one; here for the type checker
        return traffic
    # The step hooks due at this weight: RunStepHooks (a Map over them) invokes each once, in order.
    hooks = step_hook_calls(
        step.environment,
        deployment=step.deployment,
        release=step.release,
        weight=traffic.weight,
        step=traffic.index + 1,
    )
    return traffic.model_copy(update={"hooks": hooks})


def judge(event: dict[str, Any], context: LambdaContext) -> HealthVerdict:
    """Judge the new version (synthetic, alarms, metrics, HTTP, hooks) and return the verdict."""
    from conveyor.stages.health import evaluate_health

    step = environment_step(event)
    return evaluate_health(
        step,
        targets=runtime.targets(),
        alarms=runtime.alarms(),
        ledger=runtime.ledger(),
        lambda_metrics=runtime.lambda_metrics(),
        prober=runtime.prober(),
        scale=settings().time_scale,
        beanstalk=_beanstalk(step),
    )


def restore(event: dict[str, Any], context: LambdaContext) -> RollbackResult:
    """Restore the environment's alias to the version it served before, routing cleared.

    A lock table that cannot be read does not stop the restore: the lease covers a running execution,
    and traffic comes first.
    """
    from conveyor.stages.lock import check_fence
    from conveyor.stages.rollback import roll_back

    step = environment_step(event)
    try:
        check_fence(step, locks=runtime.locks(), now=time.time())
    except LedgerError as exc:
        logger.error("lock table unreadable; restoring under this execution's lease", extra={"error": str(exc)})
    return roll_back(step, targets=runtime.targets(), ledger=runtime.ledger(), beanstalk=_beanstalk(step))


def record(event: dict[str, Any], context: LambdaContext) -> HookOutcome:
    """Record a task-token hook's answer (its output in the ledger); a failed hook raises for the rollback."""
    from conveyor.stages.hooks import record_hook

    request = HookRecordRequest.model_validate(event)
    logger.append_keys(
        environment=request.call.invocation.environment,
        hook=request.call.hook.name,
        phase=request.call.invocation.phase,
    )
    return record_hook(request, ledger=runtime.ledger())


STAGES = {
    "Deploy": deploy_release,
    "ShiftTraffic": shift,
    "EvaluateHealth": judge,
    "RollBack": restore,
    "RecordHook": record,
}
handler = stage_function(STAGES)
coldstart.loaded()  # last: what was loaded is kept out of later collections
