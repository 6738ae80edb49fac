"""Helpers shared by the local cloud tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[2]
TIME_SCALE = 0.01


def invoke(lambda_client: Any, function: str, event: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Invoke synchronously; returns (decoded payload, raw response)."""
    response = lambda_client.invoke(FunctionName=function, Payload=json.dumps(event))
    return json.loads(response["Payload"].read()), response


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy; returns its value or fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")
