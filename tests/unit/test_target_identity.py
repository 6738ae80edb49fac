"""One canonical identity per target function, and one owner per function."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from conveyor.domain.errors import ForeignTargetError, PipelineInvalidError, TargetClaimedError, TargetIdentityError
from conveyor.domain.ownership import claim_targets
from conveyor.domain.pipeline import PipelineSpec
from conveyor.domain.target_identity import FunctionRef, Home, resolve_function

from tests.fakes import DEFAULT_SPEC, FakeTargetOwners
from tests.unit.conftest import HOME

ARN = "arn:aws:lambda:us-east-1:123456789012:function:hello-staging"


@pytest.mark.parametrize(
    "written",
    ["hello-staging", "123456789012:function:hello-staging", ARN],
    ids=["name", "partial ARN", "full ARN"],
)
def test_every_spelling_of_a_function_is_one_identity(written: str) -> None:
    assert resolve_function(written, HOME, field="target.function_name").arn == ARN


@pytest.mark.parametrize(
    "written",
    ["hello-staging:live", "123456789012:function:hello-staging:3", f"{ARN}:live", f"{ARN}:$LATEST"],
)
def test_a_qualifier_in_function_name_is_refused_in_favour_of_the_alias_field(written: str) -> None:
    with pytest.raises(ValueError, match=r"qualifier .*put the alias in target\.alias"):
        FunctionRef.parse(written)
    with pytest.raises(TargetIdentityError, match=r"environments\[0\]\.target\.function_name"):
        resolve_function(written, HOME, field="environments[0].target.function_name")


@pytest.mark.parametrize(
    ("written", "part"),
    [
        ("210987654321:function:hello-staging", "account 210987654321"),
        ("arn:aws:lambda:us-east-1:210987654321:function:hello-staging", "account 210987654321"),
        ("arn:aws:lambda:eu-west-1:123456789012:function:hello-staging", "region eu-west-1"),
        ("arn:aws-cn:lambda:us-east-1:123456789012:function:hello-staging", "partition aws-cn"),
    ],
)
def test_another_accounts_or_regions_function_is_refused_naming_the_field(written: str, part: str) -> None:
    with pytest.raises(ForeignTargetError) as raised:
        resolve_function(written, HOME, field="pipelines/hello.yaml: environments[0].target.function_name")
    message = str(raised.value)
    assert message.startswith("pipelines/hello.yaml: environments[0].target.function_name: ")
    assert part in message
    assert "Conveyor runs in" in message


def test_home_is_read_from_a_resource_arn_of_conveyor_itself() -> None:
    function = Home.from_arn("arn:aws:lambda:us-east-1:123456789012:function:conveyor-AcquireLock:live")
    machine = Home.from_arn("arn:aws:states:eu-west-1:210987654321:stateMachine:conveyor-deployments")
    assert (function.account, function.region, function.partition) == ("123456789012", "us-east-1", "aws")
    assert (machine.account, machine.region) == ("210987654321", "eu-west-1")
    with pytest.raises(ValueError, match="not a regional resource ARN"):
        Home.from_arn("arn:aws:iam::123456789012:role/x")


def _spec(app: str, *targets: tuple[str, str]) -> PipelineSpec:
    spec: dict[str, Any] = copy.deepcopy(DEFAULT_SPEC)
    first = spec["environments"][0]
    spec["app"] = app
    spec["environments"] = [
        {**copy.deepcopy(first), "name": name, "target": {"function_name": function}} for name, function in targets
    ]
    return PipelineSpec.model_validate(spec)


def test_two_environments_of_one_pipeline_on_one_function_are_refused_however_written() -> None:
    spec: dict[str, Any] = copy.deepcopy(DEFAULT_SPEC)
    production = {**copy.deepcopy(spec["environments"][0]), "name": "production", "target": {"function_name": ARN}}
    spec["environments"].append(production)
    with pytest.raises(PipelineInvalidError, match="'staging' and 'production' both target function 'hello-staging'"):
        PipelineSpec.from_yaml(yaml.safe_dump(spec), "pipelines/hello.yaml")


def test_a_function_claimed_by_one_app_is_refused_to_another_naming_both() -> None:
    # Given app hello owns hello-staging (written as a name)
    owners = FakeTargetOwners()
    claim_targets(_spec("hello", ("staging", "hello-staging")), HOME, owners, source="pipelines/hello.yaml")

    # When app billing claims the same function, written as a full ARN
    with pytest.raises(TargetClaimedError) as raised:
        claim_targets(_spec("billing", ("prod", ARN)), HOME, owners, source="pipelines/billing.yaml")

    # Then it is refused, naming the field and both claimants; hello still owns it
    message = str(raised.value)
    assert message.startswith("pipelines/billing.yaml: environments[0] (prod).target.function_name: ")
    assert f"function {ARN} belongs to app 'hello' (environment 'staging')" in message
    assert "app 'billing' (environment 'prod') may not deploy to it" in message
    owner = owners.owner(ARN)
    assert owner is not None
    assert owner.app == "hello"


def test_an_app_re_claiming_its_own_function_from_a_renamed_environment_keeps_it() -> None:
    owners = FakeTargetOwners()
    claim_targets(_spec("hello", ("staging", "hello-staging")), HOME, owners, source="a")
    resolved = claim_targets(_spec("hello", ("preprod", ARN)), HOME, owners, source="b")
    assert resolved["preprod"].arn == ARN
    owner = owners.owner(ARN)
    assert owner is not None
    assert (owner.app, owner.environment) == ("hello", "preprod")


def test_targets_already_the_apps_for_the_same_environment_are_not_claimed_again() -> None:
    # Given hello's two functions claimed by its first deployment
    owners = FakeTargetOwners()
    spec = _spec("hello", ("staging", "hello-staging"), ("production", "hello-prod"))
    claim_targets(spec, HOME, owners, source="a")
    first, owners.asked = dict(owners.claims), []

    # When its next deployment claims them, and then a spec moving production to another function
    claim_targets(spec, HOME, owners, source="a")
    moved = _spec("hello", ("staging", "hello-staging"), ("production", "hello-prod-2"))
    claim_targets(moved, HOME, owners, source="b")

    # Then the steady state writes nothing (the claims are as they were), and only the new function is claimed
    assert {target: owners.claims[target] for target in first} == first
    assert owners.asked == [ARN.replace("hello-staging", "hello-prod-2")]


def test_a_foreign_target_is_refused_before_anything_is_claimed() -> None:
    owners = FakeTargetOwners()
    spec = _spec("hello", ("staging", "hello-staging"), ("production", "210987654321:function:hello-prod"))
    with pytest.raises(ForeignTargetError, match=r"environments\[1\] \(production\).target.function_name"):
        claim_targets(spec, HOME, owners, source="pipelines/hello.yaml")
    assert owners.claims == {}
