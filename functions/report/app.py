"""Report: the states that tell people (RequestApproval, Finalize, NotifyFailure).

Each stage's module is imported the first time its state is routed here (see ``conveyor.runtime`` for the
adapters): a cold start loads what the state that woke the function needs, not every stage it serves.
"""

# isort: off
from conveyor import coldstart  # first: no garbage collection while the modules below load

# isort: on
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import ApprovalRequest, ApprovalTicket, FailureRequest, FinalizeRequest, Report
from conveyor.entry import stage_function
from conveyor.observability import logger
from conveyor.settings import settings


def ask(event: dict[str, Any], context: LambdaContext) -> ApprovalTicket:
    """Store the task token in the ledger and ask the approvers (the execution waits for them).

    The event carries the task token: it is parsed, never logged (POWERTOOLS_LOGGER_LOG_EVENT is off).
    """
    from conveyor.stages.approval import request_approval

    request = ApprovalRequest.model_validate(event)
    logger.append_keys(
        app=request.deployment.app, version=request.deployment.version, environment=request.environment.name
    )
    return request_approval(
        request,
        ledger=runtime.ledger(),
        notifier=runtime.notifier(),
        locks=runtime.locks(),
        scale=settings().time_scale,
    )


def succeeded(event: dict[str, Any], context: LambdaContext) -> Report:
    """Record a successful deployment with versions before/after and per-stage timings."""
    from conveyor.stages.report import finalize

    request = FinalizeRequest.model_validate(event)
    logger.append_keys(app=request.deployment.app, version=request.deployment.version)
    return finalize(request, ledger=runtime.ledger(), notifier=runtime.notifier(), locks=runtime.locks())


def failed(event: dict[str, Any], context: LambdaContext) -> Report:
    """Record how a failed deployment ended and tell the on-call what failed and what was done."""
    from conveyor.stages.report import notify_failure

    request = FailureRequest.model_validate(event)
    return notify_failure(request, ledger=runtime.ledger(), notifier=runtime.notifier(), locks=runtime.locks())


STAGES = {"RequestApproval": ask, "Finalize": succeeded, "NotifyFailure": failed}
handler = stage_function(STAGES)
coldstart.loaded()  # last: what was loaded is kept out of later collections
