"""Reconcile: an execution of the deployment state machine ended FAILED, TIMED_OUT or ABORTED; leave nothing behind."""

# isort: off
from conveyor import coldstart  # first: no garbage collection while the modules below load

# isort: on
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import ExecutionStatusChange, Reconciliation
from conveyor.domain.errors import ConfigurationError
from conveyor.observability import logger, metrics, tracer
from conveyor.settings import settings
from conveyor.stages.reconcile import reconcile


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = ExecutionStatusChange.model_validate(event)
    ended = change.detail
    own = settings().state_machine_arn
    if not own:
        raise ConfigurationError("invalid stage function environment: STATE_MACHINE_ARN is not set")
    logger.append_keys(execution_arn=ended.execution_arn, execution_status=ended.status)
    if ended.state_machine_arn != own:
        # The rule matches only our state machine; an event about any other is not ours to act on.
        logger.warning("ignored another state machine's execution", extra={"state_machine": ended.state_machine_arn})
        return Reconciliation(execution_arn=ended.execution_arn, status=ended.status, action="ignored").model_dump(
            mode="json"
        )
    return reconcile(
        ended,
        ledger=runtime.ledger(),
        locks=runtime.locks(),
        targets=runtime.targets(),
        notifier=runtime.notifier(),
        now=time.time(),
        beanstalk=runtime.beanstalk,  # built only if an Elastic Beanstalk environment is to be restored
        executions=runtime.executions,  # built only for a FAILED execution whose NotifyFailure failed too
        page_without_ledger=not change.by_operator,
    ).model_dump(mode="json")


coldstart.loaded()  # last: what was loaded is kept out of later collections
