"""EventBridge: rules deliver to Step Functions and Lambda targets.

``moto.events.models.Rule.send_to_targets(self, original_event, transform_input)``
    raises NotImplementedError for Step Functions and Lambda targets, and the S3 notification path
    swallows it with a bare ``except`` (dropping the event for every later target and rule). We
    deliver those two kinds ourselves, start each execution with a unique name (moto names an
    unnamed execution ``None``, and the next unnamed start then fails) and pass the event as
    EventBridge does; a delivery that fails goes to the target's dead-letter queue. Every other
    target kind still goes through moto's original. Relies on ``moto.stepfunctions.responses.get_backend``
    (it picks the executing backend when ``execute_state_machine`` is configured).

``jsonpath_ng.ext.parse(path, debug)``, as ``moto.events.utils.EventTemplateParser.parse`` imports it on each call
    a rule's input transformer parses each of its paths for every event it delivers (``jsonpath_ng`` builds a
    whole PLY parser per call: the local inbox's rule made that 4% of a deployment's CPU in the local cloud). A
    parsed expression is immutable: each path text is parsed once, as the Step Functions interpreter's are.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from conveyor_local.moto_patches.registry import original, patches, relies_on, resolve_dotted

LOG = logging.getLogger(__name__)

SEND_TO_TARGETS = "moto.events.models.Rule.send_to_targets"
_SFN_GET_BACKEND = "moto.stepfunctions.responses.get_backend"
#: What moto's input transformer imports inside ``EventTemplateParser.parse``, at each call.
INPUT_PATH_PARSE = "jsonpath_ng.ext.parse"
#: Input paths kept parsed (a rule has a few; a cloud has a few rules).
PARSED_PATHS_KEPT = 1024
#: moto's S3 -> EventBridge path stamps every event with this id (``moto.events.utils._BASE_EVENT_MESSAGE``).
_MOTO_S3_CONSTANT_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"


def _is_delivered_by_us(target: Mapping[str, Any]) -> bool:
    arn = str(target["Arn"])
    return arn.startswith("arn:") and arn.split(":")[2] in {"states", "lambda"}


def eventbridge_payload(event: Mapping[str, Any], target: Mapping[str, Any]) -> str:
    """The JSON a target receives: the event as EventBridge sends it (or the target's constant ``Input``)."""
    if "Input" in target:
        return str(target["Input"])
    delivered = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(delivered.get("time"), int | float):
        delivered["time"] = datetime.fromtimestamp(delivered["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(delivered)


def _deliver(rule: Any, target: Mapping[str, Any], payload: str) -> None:
    arn = str(target["Arn"])
    service = arn.split(":")[2]
    if service == "states":
        backend = resolve_dotted(_SFN_GET_BACKEND)(rule.account_id, rule.region_name)
        backend.start_execution(arn, str(uuid.uuid4()), payload)
    else:
        backend = resolve_dotted("moto.awslambda.models.lambda_backends")[rule.account_id][rule.region_name]
        backend.invoke(arn, None, payload, {"X-Amz-Invocation-Type": "Event"}, {})


def _send_to_dead_letter_queue(rule: Any, target: Mapping[str, Any], payload: str, error: Exception) -> None:
    dlq_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not dlq_arn:
        return
    sqs = resolve_dotted("moto.sqs.models.sqs_backends")[rule.account_id][rule.region_name]
    attributes = {"ERROR_MESSAGE": {"DataType": "String", "StringValue": str(error)[:256]}}
    sqs.send_message(dlq_arn.split(":")[-1], payload, message_attributes=attributes)


@functools.lru_cache(maxsize=PARSED_PATHS_KEPT)
def _input_path(path: str) -> Any:
    return original(INPUT_PATH_PARSE)(path)


def parse_input_path(path: str, debug: bool | None = None) -> Any:
    """Replacement for the ``parse`` moto's input transformer imports: each path text parsed once."""
    return original(INPUT_PATH_PARSE)(path, debug) if debug else _input_path(path)


def _send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
    """Replacement for ``Rule.send_to_targets``: deliver Step Functions and Lambda targets too."""
    if getattr(self, "state", "ENABLED") != "ENABLED" or not self.event_pattern.matches_event(original_event):
        return
    ours = [target for target in self.targets if _is_delivered_by_us(target)]
    theirs = [target for target in self.targets if not _is_delivered_by_us(target)]
    if ours:
        event = dict(original_event)
        if event.get("id") == _MOTO_S3_CONSTANT_EVENT_ID:
            event["id"] = str(uuid.uuid4())  # moto gives every S3 event the same id; AWS ids are unique
        for target in ours:
            payload = eventbridge_payload(event, target)
            try:
                _deliver(self, target, payload)
            except Exception as exc:
                LOG.exception("EventBridge rule %s could not deliver to %s", self.name, target["Arn"])
                _send_to_dead_letter_queue(self, target, payload, exc)
    if theirs:
        # Hand moto a shallow copy that only has its own kinds of target: no shared mutation across threads.
        view = copy.copy(self)
        view.targets = theirs
        original(SEND_TO_TARGETS)(view, original_event, transform_input)


patches(SEND_TO_TARGETS, ("self", "original_event", "transform_input"), _send_to_targets)
patches(INPUT_PATH_PARSE, ("path", "debug"), parse_input_path)
relies_on(_SFN_GET_BACKEND, ("account", "region"))
relies_on("moto.events.models.events_backends")
relies_on("moto.sqs.models.sqs_backends")
