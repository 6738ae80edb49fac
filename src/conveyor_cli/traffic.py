"""``conveyor local traffic``: steady invocations of an environment's alias, so canary analysis has real traffic.

Bounded on every side: a rate (at most ``MAX_RPS``), a duration (at most ``MAX_DURATION_SECONDS``), a
fixed pool of invoking threads (a request that finds every thread busy is dropped and counted, never
queued), and only ever against the local cloud's loopback endpoint. Counts what each version served,
as Lambda reports it in ``X-Amz-Executed-Version``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from boto3.session import Session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from conveyor_cli.context import CliError, Cloud

MAX_RPS = 500
MAX_DURATION_SECONDS = 3600
MAX_THREADS = 32
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class TrafficSummary:
    function_name: str
    alias: str
    rps: float
    sent: int = 0
    dropped: int = 0
    failed_calls: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    errors_by_version: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function_name,
            "alias": self.alias,
            "rps": self.rps,
            "sent": self.sent,
            "dropped": self.dropped,
            "failed_calls": self.failed_calls,
            "versions": {
                version: {"invocations": count, "errors": self.errors_by_version[version]}
                for version, count in sorted(self.by_version.items())
            },
        }


def loopback_endpoint(cloud: Cloud) -> str:
    """The local cloud's endpoint, refusing anything that is not a loopback address."""
    endpoint = cloud.endpoint_url or ""
    if not cloud.local or urlsplit(endpoint).hostname not in LOOPBACK_HOSTS:
        raise CliError("the traffic generator only runs against the local cloud's loopback endpoint (use --local)")
    return endpoint


class TrafficGenerator:
    """Invoke ``function:alias`` ``rps`` times a second on a background thread until stopped or ``duration`` ends."""

    def __init__(
        self,
        endpoint_url: str,
        function_name: str,
        alias: str,
        *,
        rps: float,
        duration_seconds: float = 60.0,
        payload: dict[str, Any] | None = None,
        session: Session,
    ) -> None:
        if not 0 < rps <= MAX_RPS:
            raise CliError(f"--rps must be in (0, {MAX_RPS}], got {rps}")
        if not 0 < duration_seconds <= MAX_DURATION_SECONDS:
            raise CliError(f"--duration must be in (0, {MAX_DURATION_SECONDS}] seconds, got {duration_seconds}")
        if urlsplit(endpoint_url).hostname not in LOOPBACK_HOSTS:
            raise CliError(f"refusing to send traffic to {endpoint_url}: not a loopback address")
        self.summary = TrafficSummary(function_name=function_name, alias=alias, rps=rps)
        self._duration = duration_seconds
        self._payload = json.dumps(payload if payload is not None else {"name": "traffic"}).encode()
        self._threads = max(1, min(MAX_THREADS, int(rps)))
        self._client = session.client(  # type: ignore[call-overload]
            "lambda",
            endpoint_url=endpoint_url,
            config=Config(max_pool_connections=self._threads, retries={"max_attempts": 1}, read_timeout=30),
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name=f"traffic-{function_name}", daemon=True)

    def start(self) -> TrafficGenerator:
        self._thread.start()
        return self

    def stop(self) -> TrafficSummary:
        self._stop.set()
        self._thread.join()
        return self.summary

    def wait(self) -> TrafficSummary:
        """Until the duration has elapsed (or ``stop``)."""
        self._thread.join()
        return self.summary

    def _run(self) -> None:
        interval = 1.0 / self.summary.rps
        deadline = time.monotonic() + self._duration
        next_at = time.monotonic()
        with ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="traffic-call") as pool:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    full = self._busy >= self._threads
                    if not full:
                        self._busy += 1
                if full:
                    with self._lock:
                        self.summary.dropped += 1
                else:
                    pool.submit(self._invoke)
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _invoke(self) -> None:
        try:
            response = self._client.invoke(
                FunctionName=f"{self.summary.function_name}:{self.summary.alias}", Payload=self._payload
            )
            response["Payload"].read()
            version = str(response.get("ExecutedVersion", "?"))
            with self._lock:
                self.summary.sent += 1
                self.summary.by_version[version] += 1
                if response.get("FunctionError"):
                    self.summary.errors_by_version[version] += 1
        except (ClientError, BotoCoreError):
            with self._lock:
                self.summary.sent += 1
                self.summary.failed_calls += 1
        finally:
            with self._lock:
                self._busy -= 1


def for_environment(
    cloud: Cloud, app: str, environment: str, *, rps: float, duration_seconds: float
) -> TrafficGenerator:
    """A generator for the alias of ``environment`` in ``app``'s registered pipeline, on the local cloud."""
    from conveyor_cli import operations

    endpoint = loopback_endpoint(cloud)
    target = operations.environment_target(cloud, app, environment)
    return TrafficGenerator(
        endpoint,
        target.function_name,
        target.alias,
        rps=rps,
        duration_seconds=duration_seconds,
        session=cloud.session,
    )
