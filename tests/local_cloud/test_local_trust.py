"""The template's trust boundaries as the local cloud provisions them: the dead-letter queue's only sender
is the artifact rule, and the bucket policy that keeps pushers out of pipelines/ and releases/ leaves the
local cloud usable (its conditions on principal tags are ones it cannot evaluate, so it drops them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from local_cloud_support import REPO_ROOT

from conveyor_local.provision import provision


def test_each_dead_letter_queue_accepts_only_its_rule(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given the real template provisioned as its own stack
    result = provision(REPO_ROOT / "template.yaml", local_cloud["endpoint"], stack_name="truststack")

    # Then each dead-letter queue's policy names, as its only sender, the rule that really feeds it
    for queue, rule_name in (
        ("ArtifactEventsDeadLetterQueue", "truststack-artifact-pushed"),
        ("ReconcileDeadLetterQueue", "truststack-execution-ended"),
    ):
        queue_url = result.resources[queue].ref
        attributes = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy", "QueueArn"])
        (statement,) = json.loads(attributes["Attributes"]["Policy"])["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        rule = aws("events").describe_rule(Name=rule_name)
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule["Arn"]}}
        (target,) = aws("events").list_targets_by_rule(Rule=rule_name)["Targets"]
        assert target["DeadLetterConfig"]["Arn"] == attributes["Attributes"]["QueueArn"]

    # And pipelines/ and releases/ stay writable locally (conveyor pipeline apply, ValidateArtifact)
    bucket = result.outputs["ArtifactBucketName"]
    for key in ("pipelines/hello.yaml", "releases/hello/abc/package.zip"):
        aws("s3").put_object(Bucket=bucket, Key=key, Body=b"x", ServerSideEncryption="AES256")
