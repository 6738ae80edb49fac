"""The CLI reaches the local cloud through a boto3 session of its own, never by changing the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conveyor.adapters import aws

from conveyor_cli import operations
from conveyor_cli.context import Cloud
from conveyor_local.server import STATE_FILE

ENDPOINT = "http://127.0.0.1:4599"
OUTPUTS = {
    "ArtifactBucketName": "artifacts",
    "StateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:Deployment",
    "LedgerTableName": "ledger",
    "NotificationTopicArn": "arn:aws:sns:eu-west-1:123456789012:notices",
}


def _local_cloud(state_dir: Path) -> Path:
    (state_dir / STATE_FILE).write_text(json.dumps({"endpoint": ENDPOINT, "region": "eu-west-1", "outputs": OUTPUTS}))
    return state_dir


def test_opening_the_local_cloud_leaves_the_environment_as_it_was(tmp_path: Path) -> None:
    # Given a running local cloud's state
    state_dir = _local_cloud(tmp_path)
    before = dict(os.environ)
    # When the CLI opens it
    Cloud(local=True, local_state=state_dir)
    # Then no variable of this process changed (nothing else in it is steered at the local cloud)
    assert dict(os.environ) == before


def test_the_clis_clients_and_adapters_go_to_the_local_cloud(tmp_path: Path) -> None:
    # Given the CLI opened a running local cloud
    cloud = Cloud(local=True, local_state=_local_cloud(tmp_path))
    # When it builds a client and the library's ledger adapter
    s3 = cloud.client("s3")
    operations.ledger(cloud)
    dynamodb = aws.resource(cloud.session, "dynamodb").meta.client
    # Then both go to the local cloud's endpoint, in its region, with its credentials
    assert (s3.meta.endpoint_url, s3.meta.region_name) == (ENDPOINT, "eu-west-1")
    assert (dynamodb.meta.endpoint_url, dynamodb.meta.region_name) == (ENDPOINT, "eu-west-1")
    assert cloud.session.get_credentials().access_key == "testing"
    assert cloud.endpoint_url == ENDPOINT
