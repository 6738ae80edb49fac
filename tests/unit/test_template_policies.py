"""Least privilege in template.yaml: no mutating action on "*", and Lambda changes only on managed functions."""

from collections.abc import Iterator
from typing import Any

import pytest

from conveyor_local.provision import load_template
from tests.unit.test_asl_contract import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
READ_ONLY_PREFIXES = ("Get", "List", "Describe")
# Vended log delivery has no resource-level permissions (documented in template.yaml).
LOG_DELIVERY_SID = "DeliverExecutionLogs"
MANAGED_CONDITION = {"StringEquals": {"aws:ResourceTag/conveyor:managed": "true"}}


def _statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in TEMPLATE["Resources"].items():
        properties = resource.get("Properties", {})
        for policy in properties.get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                for statement in policy["Statement"]:
                    yield name, statement
        for policy in properties.get("Policies", []) if resource["Type"] == "AWS::IAM::Role" else []:
            for statement in policy["PolicyDocument"]["Statement"]:
                yield name, statement


STATEMENTS = list(_statements())


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement.get("Resource", [])
    return resources if isinstance(resources, list) else [resources]


def _mutating(action: str) -> bool:
    return not action.split(":", 1)[-1].startswith(READ_ONLY_PREFIXES)


def granted_actions(resource: str) -> set[str]:
    """Every action the inline statements of ``resource`` allow (SAM policy templates are not expanded)."""
    return {
        a
        for r, statement in STATEMENTS
        if r == resource and statement.get("Effect") == "Allow"
        for a in _actions(statement)
    }


def test_the_template_has_inline_statements_to_check() -> None:
    assert len(STATEMENTS) >= 6


@pytest.mark.parametrize(("resource", "statement"), STATEMENTS, ids=lambda v: v if isinstance(v, str) else v["Sid"])
def test_no_mutating_action_on_every_resource(resource: str, statement: dict[str, Any]) -> None:
    if statement.get("Effect") != "Allow" or "*" not in _resources(statement):
        return
    mutating = [a for a in _actions(statement) if _mutating(a)]
    if mutating:
        assert statement.get("Sid") == LOG_DELIVERY_SID, f"{resource}: {mutating} allowed on Resource '*'"
        assert all(a.startswith("logs:") for a in mutating)


@pytest.mark.parametrize(("resource", "statement"), STATEMENTS, ids=lambda v: v if isinstance(v, str) else v["Sid"])
def test_lambda_changes_are_conditioned_on_the_managed_tag(resource: str, statement: dict[str, Any]) -> None:
    lambda_mutations = [a for a in _actions(statement) if a.startswith("lambda:") and _mutating(a)]
    if lambda_mutations:
        assert statement.get("Condition") == MANAGED_CONDITION, f"{resource}: {lambda_mutations} not tag-conditioned"


def test_the_stages_that_change_aliases_may_do_so() -> None:
    # ShiftTraffic creates the alias on a first deployment; RollBack removes it again if it did not exist
    granted = {resource: set() for resource, _ in STATEMENTS}
    for resource, statement in STATEMENTS:
        granted[resource].update(_actions(statement))
    assert {"lambda:UpdateAlias", "lambda:CreateAlias", "lambda:DeleteAlias"} <= granted["RolloutFunction"]
    assert {"lambda:UpdateFunctionCode", "lambda:PublishVersion"} <= granted["RolloutFunction"]
    assert "lambda:InvokeFunction" in granted["RolloutFunction"]


def test_the_stages_that_read_tags_may_see_them() -> None:
    # GetFunction returns Tags only to callers allowed lambda:ListTags
    granted = {resource: set() for resource, _ in STATEMENTS}
    for resource, statement in STATEMENTS:
        granted[resource].update(_actions(statement))
    assert "lambda:ListTags" in granted["IntakeFunction"]
    # Deploy reads the target's tags; EvaluateHealth asks whether a hook still carries the managed tag
    assert {"lambda:GetFunction", "lambda:ListTags"} <= granted["RolloutFunction"]


def test_finalize_may_publish_its_success_notification() -> None:
    policies = TEMPLATE["Resources"]["ReportFunction"]["Properties"]["Policies"]
    assert any(isinstance(p, dict) and "SNSPublishMessagePolicy" in p for p in policies)
    kms = [s for r, s in STATEMENTS if r == "ReportFunction" and "kms:GenerateDataKey" in _actions(s)]
    assert kms
