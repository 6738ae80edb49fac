"""examples/ci/ci-push-role.yaml: the CI push role may push one app's bundles and follow deployments, nothing else.

The template is resolved with sample parameters (the local cloud's intrinsic resolver, plus ``Fn::If`` on the
provider's conditions), then every request a CI job could make is asked of its policy: what ``conveyor push``
and ``conveyor status --wait`` need is allowed, everything next to it (another app, pipelines, releases, a write
to the ledger, another state machine) is not.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from conveyor_cli.sample import ROOT
from conveyor_local.provision import ACCOUNT_ID, Provisioned, StackContext, load_template, resolve

TEMPLATE = load_template(ROOT / "examples" / "ci" / "ci-push-role.yaml")
REGION, ACCOUNT = "eu-west-1", ACCOUNT_ID  # AWS::AccountId as the resolver gives it
BUCKET, TABLE = "conveyor-artifactbucket-1a2b3c", "conveyor-LedgerTable-XYZ"
STATE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:conveyor-deployments"
PARAMETERS = {
    "AppName": "hello",
    "Branch": "main",
    "GitHubRepository": "my-org/hello",
    "GitHubEnvironment": "",
    "GitLabProjectPath": "my-group/hello",
    "JenkinsPrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/jenkins-agents",
    "ExistingOidcProviderArn": "",
    "ConveyorStackName": "conveyor",
    "ArtifactBucketName": BUCKET,
    "LedgerTableName": TABLE,
    "StateMachineArn": STATE_MACHINE,
}
OIDC_PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/issuer"
DEPLOYMENT_KEY = {"dynamodb:LeadingKeys": ["DEPLOYMENT#d-1"]}


def _choose(value: Any, conditions: dict[str, bool]) -> Any:
    """``value`` with every ``Fn::If`` replaced by the branch ``conditions`` pick."""
    if isinstance(value, list):
        return [_choose(item, conditions) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::If"}:
        name, when_true, when_false = value["Fn::If"]
        return _choose(when_true if conditions[name] else when_false, conditions)
    return {key: _choose(item, conditions) for key, item in value.items()}


def role(provider: str, **overrides: str) -> dict[str, Any]:
    """The push role's properties, resolved as CloudFormation would for ``provider`` and ``overrides``."""
    parameters = PARAMETERS | {"CiProvider": provider} | overrides
    conditions = {
        "IsGitHub": provider == "github",
        "IsGitLab": provider == "gitlab",
        "CreateOidcProvider": provider in ("github", "gitlab") and not parameters["ExistingOidcProviderArn"],
        "HasGitHubEnvironment": bool(parameters["GitHubEnvironment"]),
    }
    context = StackContext(stack_name="conveyor-ci-hello", region=REGION, parameters=parameters)
    context.resources["OidcProvider"] = Provisioned("OidcProvider", "AWS::IAM::OIDCProvider", ref=OIDC_PROVIDER)
    properties = _choose(TEMPLATE["Resources"]["PushRole"]["Properties"], conditions)
    return resolve(properties, context, "PushRole")  # type: ignore[no-any-return]


def statements(properties: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in properties["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _conditions_hold(condition: dict[str, Any] | None, context: dict[str, list[str]]) -> bool:
    """The condition operators the role uses: ``ForAllValues:StringLike`` (every value given matches a pattern)."""
    for operator, keys in (condition or {}).items():
        assert operator == "ForAllValues:StringLike", f"no evaluator for {operator}: extend the test"
        for key, patterns in keys.items():
            values = context.get(key, [])
            if not all(any(fnmatch.fnmatchcase(v, p) for p in _listed(patterns)) for v in values):
                return False
            if not values:  # ForAllValues holds vacuously; a request without the key is not one the role serves
                return False
    return True


def allows(properties: dict[str, Any], action: str, resource: str, context: dict[str, list[str]] | None = None) -> bool:
    """Whether an Allow statement of the role's policy grants ``action`` on ``resource`` (IAM's * and ? globs)."""
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in _listed(statement["Action"]))
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in _listed(statement["Resource"]))
        and _conditions_hold(statement.get("Condition"), context or {})
        for statement in statements(properties)
    )


GITHUB = role("github")
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:conveyor-deployments:0f3c-hello-1-4-2"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/artifacts/hello/1.4.2.zip", None),
        ("cloudformation:DescribeStacks", f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/conveyor/abc-123", None),
        ("dynamodb:Query", TABLE_ARN, DEPLOYMENT_KEY),
        ("states:DescribeExecution", EXECUTION, None),
        ("states:ListExecutions", STATE_MACHINE, None),
    ],
)
def test_the_role_may_push_its_app_and_follow_the_deployment(
    action: str, resource: str, context: dict[str, list[str]] | None
) -> None:
    assert allows(GITHUB, action, resource, context)


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        # another app, a look-alike prefix, pipelines and releases, a file that is no bundle
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/artifacts/billing/1.0.0.zip", None),
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/artifacts/hello-admin/1.0.0.zip", None),
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/pipelines/hello.yaml", None),
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/releases/hello/{'0' * 64}/package.zip", None),
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/artifacts/hello/notes.txt", None),
        ("s3:PutObject", "arn:aws:s3:::other-bucket/artifacts/hello/1.4.2.zip", None),
        # no reads, deletes or policy changes in the bucket
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/artifacts/hello/1.4.2.zip", None),
        ("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/artifacts/hello/1.4.2.zip", None),
        ("s3:PutBucketPolicy", f"arn:aws:s3:::{BUCKET}", None),
        # the ledger is read-only, deployment records only
        ("dynamodb:PutItem", TABLE_ARN, DEPLOYMENT_KEY),
        ("dynamodb:UpdateItem", TABLE_ARN, DEPLOYMENT_KEY),
        ("dynamodb:DeleteItem", TABLE_ARN, DEPLOYMENT_KEY),
        ("dynamodb:Scan", TABLE_ARN, None),
        ("dynamodb:Query", TABLE_ARN, {"dynamodb:LeadingKeys": ["LOCK#arn:aws:lambda:fn"]}),
        ("dynamodb:Query", f"{TABLE_ARN}/index/by-app", {"dynamodb:LeadingKeys": ["hello"]}),
        ("dynamodb:Query", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other", DEPLOYMENT_KEY),
        # executions: read this state machine's, never start, stop or redrive one
        ("states:DescribeExecution", f"arn:aws:states:{REGION}:{ACCOUNT}:execution:other-machine:run", None),
        ("states:StartExecution", STATE_MACHINE, None),
        ("states:StopExecution", EXECUTION, None),
        ("states:SendTaskSuccess", STATE_MACHINE, None),
        # nothing of Lambda, IAM or another stack
        ("lambda:UpdateAlias", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-production", None),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/anything", None),
        ("cloudformation:DescribeStacks", f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/other/abc", None),
    ],
)
def test_the_role_may_do_nothing_else(action: str, resource: str, context: dict[str, list[str]] | None) -> None:
    assert not allows(GITHUB, action, resource, context)


def test_every_statement_names_its_actions_and_resources() -> None:
    # No wildcard action, no NotAction/NotResource, no resource "*": the list above is the whole grant
    for statement in statements(GITHUB):
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement["Sid"]
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in _listed(statement["Action"])), statement["Sid"]
        assert all(resource != "*" for resource in _listed(statement["Resource"])), statement["Sid"]
    assert {a for s in statements(GITHUB) for a in _listed(s["Action"])} == {
        "s3:PutObject",
        "cloudformation:DescribeStacks",
        "dynamodb:Query",
        "states:DescribeExecution",
        "states:ListExecutions",
    }


def _trust(properties: dict[str, Any]) -> dict[str, Any]:
    (statement,) = properties["AssumeRolePolicyDocument"]["Statement"]
    return statement  # type: ignore[no-any-return]


def test_github_workflows_of_one_repository_branch_assume_it_with_oidc() -> None:
    trust = _trust(GITHUB)
    assert trust["Principal"] == {"Federated": OIDC_PROVIDER}
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    # StringEquals: no wildcard can widen the subject to other branches, pull requests or forks
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:my-org/hello:ref:refs/heads/main",
        }
    }


def test_a_github_environment_replaces_the_branch_in_the_subject() -> None:
    trust = _trust(role("github", GitHubEnvironment="production"))
    assert trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        "repo:my-org/hello:environment:production"
    )


def test_an_existing_oidc_provider_is_trusted_instead_of_a_new_one() -> None:
    existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    assert _trust(role("github", ExistingOidcProviderArn=existing))["Principal"] == {"Federated": existing}


def test_gitlab_pipelines_of_one_project_branch_assume_it_with_oidc() -> None:
    trust = _trust(role("gitlab"))
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"] == {
        "StringEquals": {
            "gitlab.com:aud": "sts.amazonaws.com",
            "gitlab.com:sub": "project_path:my-group/hello:ref_type:branch:ref:main",
        }
    }


def test_jenkins_agents_assume_it_with_their_own_role() -> None:
    trust = _trust(role("jenkins"))
    assert trust == {
        "Sid": "JenkinsAgents",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/jenkins-agents"},
        "Action": "sts:AssumeRole",
    }


def test_the_oidc_provider_is_created_only_when_none_is_given() -> None:
    provider = TEMPLATE["Resources"]["OidcProvider"]
    assert provider["Condition"] == "CreateOidcProvider"
    assert TEMPLATE["Conditions"]["CreateOidcProvider"] == {
        "Fn::And": [{"Condition": "UsesOidc"}, {"Fn::Equals": [{"Ref": "ExistingOidcProviderArn"}, ""]}]
    }
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
