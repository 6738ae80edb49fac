"""The local cloud's own request log: which AWS API operation each request it served named.

Why on the server: a count taken inside the stages (a botocore hook in the handlers) sees only the
calls someone remembered to hook, and none of Step Functions' own calls (its Lambda invokes, its
direct service integrations). The server sees every request, whoever sent it, as AWS's CloudTrail
would. Each request is recorded with its service (botocore's name: ``lambda``, ``dynamodb``,
``s3``, ``stepfunctions``), its operation (``UpdateItem``, ``PublishVersion``) and the caller's
SDK app id (the ``app/<id>`` token botocore puts in the User-Agent when ``AWS_SDK_UA_APP_ID`` or
``Config(user_agent_appid=...)`` is set), so a tool that drives the cloud can leave its own calls
out of what it counts.

The log is a bounded ring (oldest entries drop first) with a sequence number that never repeats,
so a reader asks "everything since N" and learns from ``first`` whether some of it was dropped.
It is served as JSON at ``GET /conveyor-local/requests?since=N`` (not itself recorded);
``read_requests`` is the client.
"""

from __future__ import annotations

import collections
import io
import json
import re
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel

PATH = "/conveyor-local/requests"
DEFAULT_CAPACITY = 20_000
UNKNOWN = "Unknown"
#: SigV4 signing names that differ from botocore's service names.
_SIGNING_NAMES = {"states": "stepfunctions", "monitoring": "cloudwatch", "email": "ses"}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_APP_ID = re.compile(r"(?:^|\s)app/(\S+)")
#: moto names this module relies on (registered in ``moto_patches.SEAM_SIGNATURES``).
MOTO_NAMES = ("moto.core.routing.get_service_router", "moto.core.request.Request")


class ServedRequest(BaseModel):
    """One request the local cloud served."""

    sequence: int
    service: str
    operation: str
    app_id: str | None = None


class RequestPage(BaseModel):
    """The requests served since a sequence number; ``first`` > ``since`` means some were dropped."""

    since: int
    first: int
    next: int
    requests: list[ServedRequest]

    @property
    def complete(self) -> bool:
        return self.first <= self.since


class RequestLog:
    """Thread-safe: moto's server handles each request on its own thread."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[ServedRequest] = collections.deque(maxlen=capacity)
        self._next = 0

    def record(self, service: str, operation: str, app_id: str | None) -> int:
        with self._lock:
            sequence = self._next
            self._next += 1
            self._entries.append(ServedRequest(sequence=sequence, service=service, operation=operation, app_id=app_id))
        return sequence

    def since(self, sequence: int) -> RequestPage:
        with self._lock:
            entries = [entry for entry in self._entries if entry.sequence >= sequence]
            first = self._entries[0].sequence if self._entries else self._next
            return RequestPage(since=sequence, first=first, next=self._next, requests=entries)

    def middleware(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """Wrap a WSGI app: record every AWS request, and answer ``GET PATH`` with the log itself."""

        def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == PATH and environ.get("REQUEST_METHOD") == "GET":
                return self._serve(environ, start_response)
            service = service_of(environ)
            if service is not None:
                self.record(service, operation_of(service, environ), app_id_of(environ))
            return app(environ, start_response)

        return logged

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = parse_qs(str(environ.get("QUERY_STRING", ""))).get("since", ["0"])[0]
        if not raw.isdigit():
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"since={raw!r} is not a sequence number".encode()]
        body = self.since(int(raw)).model_dump_json().encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def service_of(environ: dict[str, Any]) -> str | None:
    """botocore's name of the service a SigV4-signed request is for; None for an unsigned request."""
    match = _CREDENTIAL_SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if match is None:
        return None
    signing_name = match.group(1).lower()
    return _SIGNING_NAMES.get(signing_name, signing_name)


def app_id_of(environ: dict[str, Any]) -> str | None:
    match = _APP_ID.search(str(environ.get("HTTP_USER_AGENT", "")))
    return match.group(1) if match else None


def operation_of(service: str, environ: dict[str, Any]) -> str:
    """The operation a request names: ``X-Amz-Target`` (JSON protocols), ``Action`` (query protocols),
    else its method and path matched against the service's botocore model (REST protocols), with
    moto's own router, the one moto dispatches by."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    action = parse_qs(str(environ.get("QUERY_STRING", ""))).get("Action") or _form_action(environ)
    if action:
        return str(action[0])
    return _rest_operation(service, environ)


def _form_action(environ: dict[str, Any]) -> list[str] | None:
    if not str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body after us
    return parse_qs(body.decode("utf-8", errors="replace")).get("Action")


def _rest_operation(service: str, environ: dict[str, Any]) -> str:
    from botocore.exceptions import DataNotFoundError
    from moto.core.request import Request
    from moto.core.routing import get_service_router
    from werkzeug.exceptions import HTTPException

    # Routing reads the method, path, query and headers only; an empty body keeps the stream for moto.
    bodiless = dict(environ, **{"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0"})
    try:
        operation, _ = get_service_router(service).match(Request(bodiless))
    except (HTTPException, NotImplementedError, DataNotFoundError, KeyError, ValueError):
        return UNKNOWN
    return str(operation.name)


def read_requests(endpoint_url: str, since: int = 0, timeout: float = 10.0) -> RequestPage:
    """The local cloud's requests since ``since`` (``page.next`` is where the next read starts)."""
    url = f"{endpoint_url.rstrip('/')}{PATH}?since={since}"
    # Bandit B310 suppressed below: the URL is a local cloud's own http endpoint, never user input.
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  # nosec B310
        return RequestPage.model_validate(json.loads(response.read()))
