"""On AWS the CLI finds its region as AWS CLI v2 does: --region, then AWS_REGION, then AWS_DEFAULT_REGION."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor_cli import context
from conveyor_cli.context import Cloud

OUTPUTS = {
    "ArtifactBucketName": "b",
    "StateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:conveyor-deployments",
    "LedgerTableName": "t",
    "NotificationTopicArn": "arn:aws:sns:eu-west-1:123456789012:n",
}


@pytest.fixture
def regions(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    asked: list[Any] = []
    monkeypatch.setattr(context, "_stack_outputs", lambda session, name: asked.append(session) or OUTPUTS)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    return monkeypatch


def test_aws_region_alone_names_the_region(regions: pytest.MonkeyPatch) -> None:
    regions.delenv("AWS_DEFAULT_REGION", raising=False)
    regions.setenv("AWS_REGION", "eu-west-1")
    assert Cloud(local=False).session.region_name == "eu-west-1"


def test_region_flag_then_aws_region_then_aws_default_region(regions: pytest.MonkeyPatch) -> None:
    regions.setenv("AWS_DEFAULT_REGION", "us-west-2")
    regions.setenv("AWS_REGION", "eu-west-1")
    assert Cloud(local=False, region="ap-south-1").session.region_name == "ap-south-1"
    assert Cloud(local=False).session.region_name == "eu-west-1"
    regions.delenv("AWS_REGION")
    assert Cloud(local=False).session.region_name == "us-west-2"
