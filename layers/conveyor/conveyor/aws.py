"""boto3 clients, built lazily once per process, with retries for throttling and 5xx.

``AWS_ENDPOINT_URL`` (honoured by botocore itself) points them at the local cloud.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard mode retries throttling and transient 5xx with exponential backoff and full jitter.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=5,
    read_timeout=60,
)


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    return boto3.session.Session().resource(service, config=_CONFIG)  # type: ignore[call-overload]


def error_code(exc: Exception) -> str:
    """The AWS error code of a ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
