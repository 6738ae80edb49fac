"""The sample events in events/ are real-shaped and mean what events/README.md says."""

import json
from pathlib import Path

import pytest
from conveyor.domain.errors import ArtifactLayoutError
from conveyor.domain.layout import ArtifactKey
from conveyor.domain.pushed_object import PushedObject

EVENTS = Path(__file__).parents[2] / "events"
S3_DETAIL_KEYS = {"version", "bucket", "object", "request-id", "requester", "source-ip-address", "reason"}


def _load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("*.json")))
def test_every_sample_is_an_eventbridge_s3_object_created_event(name: str) -> None:
    event = _load(name)
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert set(event["detail"]) == S3_DETAIL_KEYS
    assert set(event["detail"]["object"]) == {"key", "size", "etag", "version-id", "sequencer"}
    assert event["resources"] == [f"arn:aws:s3:::{event['detail']['bucket']['name']}"]
    assert event["detail"]["object"]["key"].startswith("artifacts/")  # what the EventBridge rule matches


def test_the_sample_push_is_hello_1_0_0() -> None:
    pushed = PushedObject.from_event(_load("s3_object_created.json"))
    assert ArtifactKey.parse(pushed.key) == ArtifactKey(app="hello", version="1.0.0")
    assert pushed.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"


def test_the_duplicate_is_another_delivery_of_the_same_deployment() -> None:
    original, duplicate = _load("s3_object_created.json"), _load("s3_object_created_duplicate.json")
    assert original["id"] != duplicate["id"]
    assert PushedObject.from_event(original).deployment_id == PushedObject.from_event(duplicate).deployment_id


def test_the_outside_layout_sample_is_refused() -> None:
    pushed = PushedObject.from_event(_load("s3_object_created_outside_layout.json"))
    with pytest.raises(ArtifactLayoutError, match="is not of the form"):
        ArtifactKey.parse(pushed.key)
