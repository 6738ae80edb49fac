"""Publish: turns the ledger table's stream into Conveyor's lifecycle events on EventBridge (the outbox relay)."""

# isort: off
from conveyor import coldstart  # first: no garbage collection while the modules below load

# isort: on
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.adapters.dynamodb_stream import ledger_changes
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.publish import publish_changes


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return publish_changes(ledger_changes(event), bus=runtime.event_bus()).model_dump(mode="json")


coldstart.loaded()  # last: what was loaded is kept out of later collections
