"""The local cloud's own request log: how many AWS API calls it served, by caller, service and operation.

Every request the server takes passes through ``RequestLog.middleware`` (outermost WSGI layer), which
names it the way AWS's own request metrics would:

- ``service``: the SigV4 signing name of the request's ``Authorization`` credential scope
  (``lambda``, ``dynamodb``, ``states``, ``s3``, ``sns``, ``events``, ``monitoring``, ...);
  unsigned requests (moto's ``/moto-api``, this log's own endpoint) are not AWS API calls and are
  not counted;
- ``operation``: ``X-Amz-Target``'s operation (JSON protocols), the ``Action`` parameter (query
  protocols), or, for REST protocols (Lambda, S3), the botocore operation whose HTTP method and
  ``requestUri`` template match the request (``Invoke``, ``UpdateAlias``, ``GetObject``, ...);
- ``caller``: ``lambda`` for code running in a local Lambda worker (botocore puts the runtime's
  ``exec-env/AWS_Lambda_*`` in its user agent), ``states`` for the Step Functions interpreter's own
  Task calls (its clients carry ``STATES_USER_AGENT``), ``app/<id>`` for a client that names itself
  with an SDK app id (``AWS_SDK_UA_APP_ID``, botocore's ``user_agent_appid``: the bench names its
  scripts so), ``client`` for everything else (the CLI, a test).

Counts only grow while the cloud runs; a reader takes one snapshot before and one after what it
measures and subtracts (``RequestCounts.since``), so concurrent readers never reset each other.

Each snapshot also carries ``cpu_seconds``: the user+system CPU the local cloud has used so far, its
own process (with the workers it already reaped) plus its live Lambda workers, so the same two
snapshots give a deployment's local CPU.

Read it over HTTP: ``GET <endpoint>/_conveyor/requests`` answers ``{"total": N, "cpu_seconds": S,
"calls": [{"caller": ..., "service": ..., "operation": ..., "count": ...}, ...]}``
(``read(endpoint_url)`` does that and returns a ``RequestCounts``), or in process through
``REQUEST_LOG.counts()``.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

ENDPOINT_PATH = "/_conveyor/requests"
#: Appended to the user agent of the Step Functions interpreter's clients (``moto_patches.stepfunctions``).
STATES_USER_AGENT = "conveyor-local-states"
_LAMBDA_USER_AGENT = "exec-env/AWS_Lambda"
_APP_ID = re.compile(r"(?:^|\s)app/(\S+)")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
#: SigV4 signing name -> botocore service name, where they differ.
_BOTOCORE_NAMES = {"states": "stepfunctions", "monitoring": "cloudwatch"}

CallKey = tuple[str, str, str]


@dataclass(frozen=True)
class RequestCounts:
    """A snapshot of the log: calls per (caller, service, operation)."""

    calls: Mapping[CallKey, int] = field(default_factory=dict)
    #: User+system CPU of the local cloud (server, reaped and live workers) when the snapshot was taken.
    cpu_seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def since(self, earlier: RequestCounts) -> RequestCounts:
        """The calls made between ``earlier`` and this snapshot."""
        delta = {key: count - earlier.calls.get(key, 0) for key, count in self.calls.items()}
        calls = {key: count for key, count in delta.items() if count > 0}
        return RequestCounts(calls, cpu_seconds=round(self.cpu_seconds - earlier.cpu_seconds, 3))

    def by(self, *, caller: str | None = None, service: str | None = None) -> int:
        """How many calls match the given caller and/or service."""
        return sum(
            count
            for (who, what, _), count in self.calls.items()
            if (caller is None or who == caller) and (service is None or what == service)
        )

    def to_json(self) -> dict[str, Any]:
        rows = [
            {"caller": caller, "service": service, "operation": operation, "count": count}
            for (caller, service, operation), count in sorted(self.calls.items())
        ]
        return {"total": self.total, "cpu_seconds": self.cpu_seconds, "calls": rows}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RequestCounts:
        calls = {(row["caller"], row["service"], row["operation"]): int(row["count"]) for row in body["calls"]}
        return cls(calls, cpu_seconds=float(body.get("cpu_seconds", 0.0)))


class RequestLog:
    """Thread-safe counts of the AWS API calls the server took (moto serves each request on a thread)."""

    def __init__(self, cpu_seconds: Callable[[], float] = lambda: 0.0) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[CallKey] = Counter()
        self.cpu_seconds = cpu_seconds

    def record(self, caller: str, service: str, operation: str) -> None:
        with self._lock:
            self._calls[caller, service, operation] += 1

    def counts(self) -> RequestCounts:
        with self._lock:
            calls = dict(self._calls)
        return RequestCounts(calls, cpu_seconds=round(self.cpu_seconds(), 3))

    def middleware(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """Wrap a WSGI app: count each signed request, and answer ``GET /_conveyor/requests`` itself."""

        def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == ENDPOINT_PATH:
                body = json.dumps(self.counts().to_json()).encode()
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            service = signing_name(environ)
            if service is not None:
                self.record(caller_of(environ), service, operation_of(service, environ))
            return app(environ, start_response)

        return logged


def local_cloud_cpu_seconds() -> float:
    """User+system CPU of this process, the children it reaped, and the live Lambda workers."""
    from conveyor_local.moto_patches import registry

    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    pool = registry.STATE.get("pool")
    return own + (pool.live_cpu_seconds() if pool is not None else 0.0)


#: The log of the local cloud running in this process.
REQUEST_LOG = RequestLog(local_cloud_cpu_seconds)


def read(endpoint_url: str, timeout: float = 10.0) -> RequestCounts:
    """The running local cloud's request counts, over HTTP."""
    # Bandit B310: the URL is a local cloud's own http endpoint, given by its caller.
    with urllib.request.urlopen(endpoint_url.rstrip("/") + ENDPOINT_PATH, timeout=timeout) as response:  # noqa: S310  # nosec B310
        return RequestCounts.from_json(json.loads(response.read()))


# ------------------------------------------------------------------------ naming a request


def signing_name(environ: Mapping[str, Any]) -> str | None:
    """The service a SigV4-signed request is for; None for an unsigned request."""
    match = _CREDENTIAL_SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return match.group(1) if match else None


def caller_of(environ: Mapping[str, Any]) -> str:
    user_agent = str(environ.get("HTTP_USER_AGENT", ""))
    if STATES_USER_AGENT in user_agent:
        return "states"
    if _LAMBDA_USER_AGENT in user_agent:
        return "lambda"
    named = _APP_ID.search(user_agent)
    return f"app/{named.group(1)}" if named else "client"


def operation_of(service: str, environ: dict[str, Any]) -> str:
    """The API operation a request names (``"unknown"`` when no protocol rule names it)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    action = parse_qs(str(environ.get("QUERY_STRING", ""))).get("Action")
    if action:
        return str(action[0])
    if str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body after us
        action = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
        if action:
            return str(action[0])
    method = str(environ.get("REQUEST_METHOD", "GET"))
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    headers = frozenset(key[5:].replace("_", "-").lower() for key in environ if key.startswith("HTTP_"))
    path = str(environ.get("PATH_INFO", ""))
    return _rest_operation(service, method, path, frozenset(query), headers) or "unknown"


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    path: re.Pattern[str]
    query_keys: frozenset[str]
    headers: frozenset[str]
    specificity: tuple[int, int, int]


def _route(
    operation: str,
    method: str,
    request_uri: str,
    required_query: frozenset[str] = frozenset(),
    required_headers: frozenset[str] = frozenset(),
) -> _Route:
    """``required_query`` and ``required_headers`` (lower case): the operation's required query-string and header
    members, which tell apart operations on one path (S3's ``ListParts`` is ``GetObject``'s path plus
    ``?uploadId``; ``CopyObject`` is ``PutObject``'s plus an ``x-amz-copy-source`` header)."""
    path, _, query = request_uri.partition("?")
    pattern = ""
    for literal, label in re.findall(r"([^{]*)(?:\{([^}]*)\})?", path):
        pattern += re.escape(literal)
        if label:
            pattern += ".+" if label.endswith("+") else "[^/]+"
    keys = frozenset(part.split("=", 1)[0] for part in query.split("&") if part) | required_query
    literal_length = len(re.sub(r"\{[^}]*\}", "", path))
    specificity = (len(keys), len(required_headers), literal_length)
    return _Route(operation, method, re.compile(pattern.rstrip("/") + "/?$"), keys, required_headers, specificity)


@functools.cache
def _routes(service: str) -> tuple[_Route, ...]:
    """The REST routes of ``service``'s botocore model, most specific first (loaded once per service)."""
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(_BOTOCORE_NAMES.get(service, service))
    except Exception:  # an unknown service: its calls are counted as "unknown"
        return ()
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        shape = operation.input_shape

        http = operation.http
        routes.append(
            _route(
                name,
                str(http.get("method", "POST")),
                str(http.get("requestUri", "/")),
                _required(shape, "querystring"),
                frozenset(header.lower() for header in _required(shape, "header")),
            )
        )
    return tuple(sorted(routes, key=lambda route: route.specificity, reverse=True))


def _required(shape: Any, location: str) -> frozenset[str]:
    """The wire names of ``shape``'s required members sent in ``location`` (``querystring``, ``header``)."""
    return frozenset(
        str(member.serialization.get("name", key))
        for key, member in (shape.members.items() if shape is not None else ())
        if member.serialization.get("location") == location and key in shape.required_members
    )


def _rest_operation(
    service: str, method: str, path: str, query_keys: frozenset[str], headers: frozenset[str] = frozenset()
) -> str | None:
    for route in _routes(service):
        if (
            route.method == method
            and route.query_keys <= query_keys
            and route.headers <= headers
            and route.path.match(path)
        ):
            return route.operation
    return None
