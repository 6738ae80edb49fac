"""Figure 5: N apps pushed at once. All deployed exactly once? Wall time, deployments per minute, cost.

Each app is generated like the sample (two environments, all at once, synthetic health check).
The N bundles are uploaded concurrently; wall time runs from the first upload to the last
execution's stop. "Exactly once" is checked three ways: one ledger record per app, SUCCEEDED with
one attempt; exactly N executions started by the batch; every alias moved from version 1 to 2.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.stack import Bench, BenchError, Pushed
from bench.transitions import Cost, cost_of


@dataclass
class ScaleRun:
    apps: int
    wall_seconds: float
    succeeded: int
    executions: int
    exactly_once: bool
    problems: list[str]
    costs: list[Cost]

    @property
    def per_minute(self) -> float:
        return self.apps / self.wall_seconds * 60


def run(bench: Bench, n: int, time_scale: float, *, timeout: float = 300.0, log: callable = print) -> ScaleRun:
    prefix = f"scale{n}"
    apps = [f"{prefix}-app{i:02d}" for i in range(n)]
    functions = {app: bench.create_app(app, {"type": "all_at_once"}) for app in apps}
    bundles = {app: bench.bundle(app, "1.0.1") for app in apps}
    sfn = bench.client("stepfunctions")
    batch_start = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=16) as pool:
        pushed: list[Pushed] = list(pool.map(lambda app: bench.push(app, "1.0.1", bundles[app]), apps))

    # Follow from one thread: the ledger's boto3 resource is not thread-safe.
    deadline = time.monotonic() + timeout
    pending = {p.deployment_id: p for p in pushed}
    records = {}
    while pending and time.monotonic() < deadline:
        for ident in list(pending):
            record = bench.ledger.get(ident)
            if record is not None and record.finished_at is not None:
                records[ident] = record
                del pending[ident]
        if pending:
            time.sleep(0.25)
    if pending:
        raise BenchError(f"{len(pending)} of {n} deployments not finished after {timeout:.0f}s")

    executions = []
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=bench.cloud.outputs.state_machine_arn)
    for page in pages:
        executions += [e for e in page["executions"] if e["startDate"] >= batch_start]
    settle = time.monotonic() + 30
    while any(e["status"] == "RUNNING" for e in executions) and time.monotonic() < settle:
        time.sleep(0.25)
        executions = [sfn.describe_execution(executionArn=e["executionArn"]) for e in executions]
    stops = [e["stopDate"] for e in executions if e.get("stopDate")]
    wall = (max(stops) - batch_start).total_seconds() if stops else float("nan")

    problems = []
    for p in pushed:
        record = records[p.deployment_id]
        if record.status.value != "SUCCEEDED" or record.attempts != 1:
            problems.append(f"{p.app}: {record.status.value}, attempts {record.attempts}")
        for env, function in functions[p.app].items():
            version = bench.alias(function)["version"]
            if version != "2":
                problems.append(f"{p.app} {env}: alias on v{version}, expected v2")
    if len(executions) != n:
        problems.append(f"{len(executions)} executions started for {n} pushes")
    costs = [cost_of(bench.history(e["executionArn"]), time_scale) for e in executions]
    succeeded = sum(r.status.value == "SUCCEEDED" for r in records.values())
    log(f"    N={n}: {succeeded}/{n} succeeded, {len(executions)} executions, wall {wall:.1f}s")
    return ScaleRun(n, wall, succeeded, len(executions), not problems, problems, costs)
