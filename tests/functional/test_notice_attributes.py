"""SNS notices carry app, environment, outcome and severity, so a subscription filter policy picks what it wants."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from conveyor.domain.errors import PipelineNotFoundError
from conveyor.domain.ports import Invocation

from tests.functional.conftest import EXECUTION_ARN, STARTED_AT, Cloud, FakeLambdaContext, StageHandler
from tests.functional.test_outcomes import _notify, _roll_out
from tests.functional.test_rollout import CANARY_SPEC


def _subscribe(cloud: Cloud, name: str, policy: dict[str, Any]) -> str:
    url = cloud.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = cloud.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    cloud.sns.subscribe(
        TopicArn=cloud.topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"FilterPolicy": json.dumps(policy)}
    )
    return str(url)


def _received(cloud: Cloud, url: str) -> list[dict[str, Any]]:
    messages = cloud.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def _attributes(message: dict[str, Any]) -> dict[str, str]:
    return {name: value["Value"] for name, value in message["MessageAttributes"].items()}


def test_a_filter_policy_receives_only_the_notices_it_names(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    validated: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a team that wants staging's errors only, and a pager that wants critical notices only
    staging_errors = _subscribe(cloud, "staging-errors", {"environment": ["staging"], "severity": ["error"]})
    pager = _subscribe(cloud, "pager", {"severity": ["critical"]})
    # When a canary rolls back in staging
    state = validated(CANARY_SPEC)
    step = _roll_out(handlers, context, state, monkeypatch, Invocation({"status": "ok"}, None, "2", 3.0))
    rollback = handlers["roll_back"].handler(step, context)
    _notify(handlers, context, {k: v for k, v in state.items() if k != "deployment"}, "DeploymentRolledBackError", "x")
    # And another app's push is refused before any environment (it has no pipeline)
    put = cloud.put_bundle(app="other")
    refused = cloud.event_for(put, key="artifacts/other/1.0.0.zip")
    with pytest.raises(PipelineNotFoundError):
        handlers["validate_artifact"].handler(
            {"event": refused, "execution_arn": EXECUTION_ARN + "-other", "started_at": STARTED_AT}, context
        )
    handlers["notify_failure"].handler(
        {
            "execution_input": refused,
            "execution_arn": EXECUTION_ARN + "-other",
            "failure": {"Error": "PipelineNotFoundError", "Cause": "no pipeline"},
        },
        context,
    )
    # Then the topic's unfiltered subscriber got both, each with the four attributes
    everything = cloud.notifications()
    assert [_attributes(m)["app"] for m in everything] == ["hello", "other"]
    rolled_back, rejected = (_attributes(m) for m in everything)
    assert {k: rolled_back[k] for k in ("environment", "outcome", "severity")} == {
        "environment": "staging",
        "outcome": "ROLLED_BACK",
        "severity": "error",
    }
    assert {k: rejected[k] for k in ("environment", "outcome", "severity")} == {
        "environment": "none",
        "outcome": "FAILED",
        "severity": "error",
    }
    # And the filtered subscriptions got only what their policies name
    (staging,) = _received(cloud, staging_errors)
    assert _attributes(staging)["deployment_id"] == state["deployment"]["deployment_id"]
    assert rollback["environment"] == "staging"
    assert _received(cloud, pager) == []
