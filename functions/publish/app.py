"""Publish: turns the ledger table's stream into Conveyor's lifecycle events on EventBridge (the outbox relay)."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.events import LedgerChange
from conveyor.observability import logger, metrics, tracer
from conveyor.stages.publish import publish_changes


def ledger_changes(event: dict[str, Any]) -> list[LedgerChange]:
    """The stream records as ledger changes, their images deserialized (numbers as ``Decimal``, sets as sets)."""
    changes = []
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        if stream is None or record.event_name is None:
            continue
        changes.append(
            LedgerChange(
                event_name=record.event_name.name,
                keys={k: str(v) for k, v in stream.keys.items()},
                old=stream.old_image or None,
                new=stream.new_image or None,
            )
        )
    return changes


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return publish_changes(ledger_changes(event), bus=runtime.event_bus()).model_dump(mode="json")
