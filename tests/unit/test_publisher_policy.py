"""The lifecycle publisher's role and wiring: it may put events on Conveyor's bus, read the ledger's stream and
report a failed batch, and nothing else; the stages never call EventBridge."""

from __future__ import annotations

import json
from typing import Any

from conveyor_cli.sample import ROOT
from conveyor_local.provision import load_template

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _grants(function: str) -> dict[str, Any]:
    """Each action the function's inline statements allow -> the resource it is allowed on."""
    grants: dict[str, Any] = {}
    for policy in RESOURCES[function]["Properties"].get("Policies", []):
        if not (isinstance(policy, dict) and "Statement" in policy):
            grants[f"policy template {policy}"] = None
            continue
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            grants |= dict.fromkeys(actions, statement["Resource"])
    return grants


def test_the_publisher_may_do_only_what_publishing_needs() -> None:
    assert _grants("PublishFunction") == {
        "events:PutEvents": {"Fn::GetAtt": ["LifecycleEventBus", "Arn"]},
        "dynamodb:DescribeStream": {"Fn::GetAtt": ["LedgerTable", "StreamArn"]},
        "dynamodb:GetRecords": {"Fn::GetAtt": ["LedgerTable", "StreamArn"]},
        "dynamodb:GetShardIterator": {"Fn::GetAtt": ["LedgerTable", "StreamArn"]},
        "dynamodb:ListStreams": {"Fn::GetAtt": ["LedgerTable", "StreamArn"]},
        "sqs:SendMessage": {"Fn::GetAtt": ["PublishDeadLetterQueue", "Arn"]},
    }
    assert RESOURCES["PublishFunction"]["Properties"]["Environment"]["Variables"] == {
        "EVENT_BUS_NAME": {"Ref": "LifecycleEventBus"}
    }


def test_no_stage_function_calls_eventbridge() -> None:
    # The stages' path stays within the call budget: events come from the ledger's stream, never from a stage
    for function in ("IntakeFunction", "RolloutFunction", "ReportFunction", "ReconcileFunction"):
        assert not [a for a in _grants(function) if a.startswith("events:") or "EventBridge" in a], function


def test_the_stream_mapping_is_bounded_ordered_and_keeps_what_fails() -> None:
    mapping = RESOURCES["PublishFromLedgerStream"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["LedgerTable", "StreamArn"]}
    assert mapping["ParallelizationFactor"] == 1
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 <= mapping["MaximumRetryAttempts"] <= 10
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["PublishDeadLetterQueue", "Arn"]}
    (only,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(only["Pattern"]) == {
        "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "DEPLOYMENT#"}]}, "sk": {"S": ["META"]}}}
    }
    stream = RESOURCES["LedgerTable"]["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
