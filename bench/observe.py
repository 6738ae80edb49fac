"""What a deployment cost the local cloud, observed from outside the code under test.

- CPU: the local cloud's whole process tree (the moto server, its Step Functions threads, every
  Lambda worker it spawned), read from ``/proc`` before and after, so nothing has to be hooked.
  Workers that exited in between are in the server's ``cutime``/``cstime`` once reaped.
- API calls: the local cloud's own request log (``conveyor_local.requests_log``), split by caller:
  Conveyor's are its Lambda workers' and Step Functions' own; the bench's scripts name themselves
  with an SDK app id, and its own uploads and polling are left out.
- Cold starts: the ``REPORT`` lines in CloudWatch Logs that carry ``Init Duration`` (a worker's
  first invocation), as one would count them on AWS.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stack import BENCH_APP_ID
from conveyor_local import requests_log

__all__ = ["BENCH_APP_ID", "Calls", "Invocations", "RequestWindow", "invocations", "tree_cpu_seconds"]
#: Lambda operations that are not control-plane calls (the data plane).
LAMBDA_DATA_PLANE = frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"})
#: Control-plane operations with a quota of their own, outside the shared 15 requests/s one.
LAMBDA_OWN_QUOTA = frozenset({"GetFunction", "GetPolicy"})
#: AWS Lambda quota: control-plane API requests per second per account and Region (not raisable).
LAMBDA_CONTROL_PLANE_PER_SECOND = 15
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_INIT_DURATION = re.compile(r"Init Duration: ([\d.]+) ms")
_BILLED_DURATION = re.compile(r"Billed Duration: (\d+) ms")


# ------------------------------------------------------------------------------ CPU


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses


def _children(pid: int) -> list[int]:
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid``, its reaped children and every live descendant."""
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(f"no process {pid} to measure")
    # Fields 14-17 of /proc/<pid>/stat (utime, stime, cutime, cstime), counted from 1 with pid and comm.
    ticks = sum(int(value) for value in fields[11:15])
    pending = _children(pid)
    while pending:
        child = pending.pop()
        child_fields = _stat_fields(child)
        if child_fields is None:
            continue  # exited between the listing and the read; its parent's cutime will carry it
        ticks += int(child_fields[11]) + int(child_fields[12])
        pending += _children(child)
    return ticks / _CLOCK_TICKS


# ------------------------------------------------------------------------------ API calls


@dataclass
class Calls:
    """API calls by (service, operation)."""

    by_operation: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def by_service(self) -> Counter[str]:
        services: Counter[str] = Counter()
        for (service, _), count in self.by_operation.items():
            services[service] += count
        return services

    def count(self, service: str, operations: Iterable[str] | None = None) -> int:
        wanted = None if operations is None else set(operations)
        return sum(n for (s, op), n in self.by_operation.items() if s == service and (wanted is None or op in wanted))

    @property
    def lambda_control_plane(self) -> int:
        """Lambda calls other than invocations."""
        return sum(n for (s, op), n in self.by_operation.items() if s == "lambda" and op not in LAMBDA_DATA_PLANE)

    @property
    def lambda_quota_bound(self) -> int:
        """Lambda control-plane calls that count against the shared 15 requests/s quota."""
        return sum(
            n
            for (s, op), n in self.by_operation.items()
            if s == "lambda" and op not in LAMBDA_DATA_PLANE and op not in LAMBDA_OWN_QUOTA
        )

    def deployments_per_minute_ceiling(self) -> float:
        """Deployments a minute one account and Region can run before Lambda's control plane throttles."""
        if not self.lambda_quota_bound:
            return float("inf")
        return LAMBDA_CONTROL_PLANE_PER_SECOND * 60 / self.lambda_quota_bound

    def describe(self, service: str) -> str:
        ops = sorted(((op, n) for (s, op), n in self.by_operation.items() if s == service), key=lambda i: (-i[1], i[0]))
        return ", ".join(f"{op} {n}" for op, n in ops)


class RequestWindow:
    """The requests the local cloud served between ``open`` and ``close``, split by caller."""

    CONVEYOR = frozenset({"lambda", "states"})
    """Conveyor's own callers: its stage functions and the state machine's Task calls."""
    STATE_MACHINE = "states"
    """Step Functions' own calls: its Task states' invocations of the stage functions."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.start = requests_log.read(endpoint_url)
        self.counts = requests_log.RequestCounts()

    def close(self) -> RequestWindow:
        self.counts = requests_log.read(self.endpoint_url).since(self.start)
        return self

    def calls(self, app_id: str | None, *, callers: Iterable[str] | None = None) -> Calls:
        """The calls of one caller (None: Conveyor's own, its Lambda functions' and Step Functions'), or of
        ``callers`` as the log names them."""
        if callers is None:
            callers = self.CONVEYOR if app_id is None else {f"app/{app_id}"}
        callers = set(callers)
        return Calls(
            Counter({(service, op): n for (caller, service, op), n in self.counts.calls.items() if caller in callers})
        )


# ------------------------------------------------------------------------------ cold starts


@dataclass
class Invocations:
    """Per function, the REPORT lines seen in a window: worker starts (cold) and billed milliseconds."""

    cold: Counter[str] = field(default_factory=Counter)
    invocations: Counter[str] = field(default_factory=Counter)
    billed_ms: Counter[str] = field(default_factory=Counter)
    init_ms: Counter[str] = field(default_factory=Counter)

    def add_report(self, function: str, message: str) -> None:
        self.invocations[function] += 1
        if billed := _BILLED_DURATION.search(message):
            self.billed_ms[function] += int(billed.group(1))
        if init := _INIT_DURATION.search(message):
            self.cold[function] += 1
            self.init_ms[function] += round(float(init.group(1)))

    def without(self, functions: Iterable[str]) -> Invocations:
        drop = set(functions)

        def keep(counter: Mapping[str, int]) -> Counter[str]:
            return Counter({name: n for name, n in counter.items() if name not in drop})

        return Invocations(keep(self.cold), keep(self.invocations), keep(self.billed_ms), keep(self.init_ms))

    def only(self, functions: Iterable[str]) -> Invocations:
        keep_names = set(functions)
        return self.without(name for name in self.invocations if name not in keep_names)


def invocations(logs: Any, start_ms: int, end_ms: int) -> Invocations:
    """Every ``REPORT`` line written to ``/aws/lambda/*`` between the two instants (ms since the epoch)."""
    found = Invocations()
    groups = [
        group["logGroupName"]
        for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix="/aws/lambda/")
        for group in page["logGroups"]
    ]
    for group in groups:
        function = group.removeprefix("/aws/lambda/")
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=start_ms, endTime=end_ms)
        for page in pages:
            for event in page["events"]:
                if event["message"].startswith("REPORT RequestId:"):
                    found.add_report(function, event["message"])
    return found
