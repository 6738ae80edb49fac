"""One stage function, several states: how conveyor.entry routes a state's call to its stage."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from conveyor.domain.errors import UnknownStageError
from conveyor.domain.outcome import Outcome
from conveyor.entry import stage_function
from conveyor.observability import logger
from pydantic import BaseModel, ValidationError


class Answer(BaseModel):
    stage: str
    outcome: Outcome


class Context:
    function_name = "conveyor-intake"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:conveyor-intake"
    aws_request_id = "6f2c1f0e-0000-4000-8000-000000000001"


def _first(event: dict[str, Any], context: Any) -> Answer:
    logger.append_keys(environment=event["environment"])
    return Answer(stage="First", outcome=Outcome.SUCCEEDED)


def _second(event: dict[str, Any], context: Any) -> Answer:
    logger.info("second ran")
    return Answer(stage="Second", outcome=Outcome.FAILED)


HANDLER = stage_function({"First": _first, "Second": _second})


def test_a_call_is_answered_by_the_stage_it_names_as_json() -> None:
    answer = HANDLER({"stage": "Second", "input": {}}, Context())
    assert answer == {"stage": "Second", "outcome": "FAILED"}


def test_a_stage_the_function_does_not_serve_is_a_named_error() -> None:
    with pytest.raises(
        UnknownStageError, match=r"conveyor-intake does not serve stage 'Deploy' \(it serves First, Second\)"
    ):
        HANDLER({"stage": "Deploy", "input": {}}, Context())


def test_a_call_without_the_envelope_is_refused() -> None:
    with pytest.raises(ValidationError):
        HANDLER({"deployment": {"deployment_id": "d-1"}}, Context())


def test_a_warm_function_never_logs_with_the_last_invocation_s_keys() -> None:
    # Given a warm function that served a stage for one deployment's staging environment
    HANDLER({"stage": "First", "input": {"environment": "staging", "deployment": {"deployment_id": "d-1"}}}, Context())

    # When it serves another stage for another deployment
    written = io.StringIO()
    earlier = logger.registered_handler.setStream(written)
    try:
        HANDLER({"stage": "Second", "input": {"deployment": {"deployment_id": "d-2"}}}, Context())
    finally:
        logger.registered_handler.setStream(earlier)

    # Then that stage's log line carries its own stage and deployment, and no environment from before
    (line,) = [json.loads(text) for text in written.getvalue().splitlines() if "second ran" in text]
    assert line["stage"] == "Second"
    assert line["correlation_id"] == "d-2"
    assert "environment" not in line
