"""boto3 clients and resources of a session, built once per session and service, with retries for throttling
and 5xx.

Every adapter is built from a ``boto3.session.Session`` passed in: ``conveyor.runtime`` builds one per Lambda
execution environment (``AWS_ENDPOINT_URL``, honoured by botocore itself, points it at the local cloud), the
CLI its own, pointed at the local cloud or at a deployed stack.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from boto3.session import Session
from botocore.config import Config

# Standard mode retries throttling and transient 5xx with exponential backoff and full jitter.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=5,
    read_timeout=60,
)
# The ledger fails fast (about 3 s at worst instead of about 30 s): a stage on the rollback path must not
# sit in client back-off while a failing version serves traffic; the state machine's Retry and the
# reconciler own the longer horizon.
_OVERRIDES = {"dynamodb": Config(retries={"mode": "standard", "max_attempts": 3})}


def _config(service: str) -> Config:
    override = _OVERRIDES.get(service)
    return _CONFIG.merge(override) if override is not None else _CONFIG


@cache
def client(session: Session, service: str) -> Any:
    """The ``service`` client of ``session`` (one per session: adapters that share a session share it)."""
    return session.client(service, config=_config(service))  # type: ignore[call-overload]


@cache
def resource(session: Session, service: str) -> Any:
    """The ``service`` resource of ``session`` (one per session: the ledger, locks and owners share one table)."""
    return session.resource(service, config=_config(service))  # type: ignore[call-overload]


def error_code(exc: Exception) -> str:
    """The AWS error code of a ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
