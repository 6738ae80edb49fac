"""The template's security invariants: what `make security` keeps true beyond cfn-lint's rules."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor_cli.sample import ROOT
from conveyor_local.provision import load_template

TEMPLATE = load_template(ROOT / "template.yaml")
MANAGED = {"StringEquals": {"aws:ResourceTag/conveyor:managed": "true"}}
# Reading a function, its aliases and tags is how ValidateArtifact tells a managed target from another team's.
READ_ONLY_LAMBDA = ("lambda:Get", "lambda:List")


def _function_statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                found.append((name, statement))
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


@pytest.mark.parametrize(
    ("function", "statement"), _function_statements(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_mutating_lambda_action_is_limited_to_managed_functions(function: str, statement: dict[str, Any]) -> None:
    mutating = [a for a in _actions(statement) if a.startswith("lambda:") and not a.startswith(READ_ONLY_LAMBDA)]
    if mutating and statement.get("Effect") == "Allow":
        assert statement.get("Condition") == MANAGED, f"{function} {statement.get('Sid')}: {mutating} unconditioned"


@pytest.mark.parametrize(
    ("function", "statement"), _function_statements(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_no_function_can_escalate(function: str, statement: dict[str, Any]) -> None:
    # Tagging a function managed, passing a role to it, or any wildcard action would undo the tag boundary.
    forbidden = {"lambda:TagResource", "lambda:UntagResource", "iam:PassRole", "*", "lambda:*", "s3:*"}
    assert not forbidden & set(_actions(statement)), f"{function} {statement.get('Sid')}"


def test_the_artifact_bucket_denies_plain_http_and_foreign_encryption() -> None:
    statements = {
        s["Sid"]: s for s in TEMPLATE["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    }
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    other = statements["DenyOtherThanBucketEncryption"]
    assert other["Effect"] == "Deny"
    assert other["Action"] == "s3:PutObject"
    # Denied only when the header is present and not AES256: `aws s3 cp` without --sse still works.
    assert other["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption": "false"},
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"},
    }
    sse_c = statements["DenyCustomerProvidedKeys"]
    assert sse_c["Condition"] == {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}


def test_no_stage_logs_its_event_or_traces_its_response() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert variables["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"
