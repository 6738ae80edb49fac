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


# --- issue 8: trust boundaries in IAM ---------------------------------------------------------------
LAMBDA_READS = {"lambda:GetFunction", "lambda:ListTags", "lambda:GetAlias", "lambda:GetFunctionConfiguration"}
LEDGER_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
}
# What each stage function does to the ledger (tests/functional/test_stage_permissions.py runs every stage and
# checks the calls against its function's role).
LEDGER_GRANTS = {
    "IntakeFunction": LEDGER_ACTIONS | {"dynamodb:BatchGetItem"},  # its targets' owners, in one read
    "RolloutFunction": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    "ReportFunction": LEDGER_ACTIONS,
    "ReconcileFunction": LEDGER_ACTIONS,
}


def _bucket_statements() -> dict[str, dict[str, Any]]:
    document = TEMPLATE["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]
    return {s["Sid"]: s for s in document["Statement"]}


@pytest.mark.parametrize(
    ("function", "statement"), _function_statements(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_reading_functions_and_their_tags_is_limited_to_managed_functions(
    function: str, statement: dict[str, Any]
) -> None:
    # Another team's function is not even read: GetFunction (its code location), tags and aliases
    reads = LAMBDA_READS & set(_actions(statement))
    if reads and statement.get("Effect") == "Allow":
        assert statement.get("Condition") == MANAGED, f"{function} {statement.get('Sid')}: {sorted(reads)}"


def test_no_stage_has_the_crud_policy_template_on_the_ledger() -> None:
    for name, resource in TEMPLATE["Resources"].items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            assert not (isinstance(policy, dict) and "DynamoDBCrudPolicy" in policy), name


@pytest.mark.parametrize(("function", "expected"), sorted(LEDGER_GRANTS.items()))
def test_each_stage_has_only_the_ledger_actions_it_needs(function: str, expected: set[str]) -> None:
    granted = {a for f, s in _function_statements() if f == function for a in _actions(s) if a.startswith("dynamodb:")}
    assert granted == expected
    # Never a scan, a batch, a table description, or any action on another table
    for f, statement in _function_statements():
        if f == function and any(a.startswith("dynamodb:") for a in _actions(statement)):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all("LedgerTable" in str(resource) for resource in resources)


def test_rollback_deletes_only_served_release_records() -> None:
    (delete,) = [
        s for f, s in _function_statements() if f == "RolloutFunction" and "dynamodb:DeleteItem" in _actions(s)
    ]
    assert _actions(delete) == ["dynamodb:DeleteItem"]
    assert delete["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SERVED#*"]}}


def test_pushers_cannot_write_pipelines_or_releases() -> None:
    statements = _bucket_statements()
    writes = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}
    pipelines = statements["OnlyAdminsWritePipelines"]
    assert (pipelines["Effect"], pipelines["Principal"]) == ("Deny", "*")
    assert writes <= set(pipelines["Action"])
    assert pipelines["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/pipelines/*"}
    assert pipelines["Condition"] == {"StringNotEquals": {"aws:PrincipalTag/conveyor:admin": "true"}}
    releases = statements["OnlyIntakeWritesReleases"]
    assert (releases["Effect"], releases["Principal"]) == ("Deny", "*")
    assert writes <= set(releases["Action"])
    assert releases["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/releases/*"}
    ((tag, value),) = releases["Condition"]["StringNotEquals"].items()
    # The one writer of releases carries that tag (SAM gives a function's tags to its role)
    assert tag == "aws:PrincipalTag/conveyor:role"
    assert TEMPLATE["Resources"]["IntakeFunction"]["Properties"]["Tags"] == {"conveyor:role": value}
    # And artifacts/ stays open to pushers: nothing denies writing there
    assert not any("artifacts/" in str(s.get("Resource")) for s in statements.values() if s["Effect"] == "Deny")


@pytest.mark.parametrize(
    ("queue", "owner", "event"),
    [
        ("ArtifactEventsDeadLetterQueue", "DeploymentStateMachine", "ArtifactPushed"),
        ("ReconcileDeadLetterQueue", "ReconcileFunction", "ExecutionEnded"),
    ],
)
def test_each_dead_letter_queue_takes_events_only_from_its_rule(queue: str, owner: str, event: str) -> None:
    resources = TEMPLATE["Resources"]
    (policy,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and r["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Allow",
        {"Service": "events.amazonaws.com"},
        "sqs:SendMessage",
    )
    rule = resources[owner]["Properties"]["Events"][event]["Properties"]
    rule_name = rule["RuleName"]["Fn::Sub"]
    rule_arn = f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{rule_name}"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::Sub": rule_arn}}}
    assert rule["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}
