"""Idle execution environments are reclaimed as Lambda reclaims them, and the live ones are bounded.

Driven through ``WorkerPool`` itself with an injected clock: each test reads the worker count after
``reap()``, never waits for a time window to pass.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_local.workers import FunctionSpec, ReapingPolicy, WorkerPool

_HANDLER = "import os\n\n\ndef handler(event, context):\n    return {'pid': os.getpid()}\n"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _spec(version: str) -> FunctionSpec:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", _HANDLER)
    code = buffer.getvalue()
    return FunctionSpec(
        function_name="reaped",
        version=version,
        unqualified_arn="arn:aws:lambda:us-east-1:123456789012:function:reaped",
        handler="app.handler",
        code_sha256=f"{version:0>64}",
        code_zip=code,
        layers=(),
        environment={},
        timeout_seconds=30.0,
        memory_size_mb=128,
        region="us-east-1",
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _pool(tmp_path: Path, clock: FakeClock, policy: ReapingPolicy) -> WorkerPool:
    return WorkerPool("http://127.0.0.1:9", tmp_path / "cache", reaping=policy, clock=clock, background_reaper=False)


@pytest.fixture
def pools() -> Iterator[list[WorkerPool]]:
    made: list[WorkerPool] = []
    yield made
    for pool in made:
        pool.shutdown()


def _pid(pool: WorkerPool, version: str) -> int:
    result = pool.invoke(_spec(version), "{}", "arn")
    assert not result.errored, result.payload
    return int(json.loads(result.payload)["pid"])


def test_a_worker_idle_past_the_timeout_is_reaped(tmp_path: Path, clock: FakeClock, pools: list[WorkerPool]) -> None:
    # Given two versions, each with one warm worker, idle since now
    pool = _pool(tmp_path, clock, ReapingPolicy(idle_seconds=300))
    pools.append(pool)
    _pid(pool, "1")
    _pid(pool, "2")
    assert pool.worker_count() == 2

    # When less than the idle timeout has passed, nothing is reaped
    clock.now += 299
    assert pool.reap() == 0
    assert pool.worker_count() == 2

    # When one is used again and then the timeout passes for the other only
    _pid(pool, "2")
    clock.now += 1
    assert pool.reap() == 1

    # Then only the worker idle for the whole timeout is gone
    assert pool.worker_count() == 1
    clock.now += 300
    assert pool.reap() == 1
    assert pool.worker_count() == 0


def test_over_the_live_bound_the_oldest_idle_worker_goes_first(
    tmp_path: Path, clock: FakeClock, pools: list[WorkerPool]
) -> None:
    # Given at most two live workers
    pool = _pool(tmp_path, clock, ReapingPolicy(idle_seconds=3600, max_live_workers=2))
    pools.append(pool)
    first = _pid(pool, "1")
    clock.now += 1
    second = _pid(pool, "2")
    clock.now += 1

    # When a third version starts a worker
    _pid(pool, "3")

    # Then the bound holds by reaping the longest idle one (version 1), and version 2 stays warm
    assert pool.worker_count() == 2
    assert _pid(pool, "2") == second
    assert _pid(pool, "1") != first  # a cold start: its environment was reclaimed


def test_over_the_memory_bound_idle_workers_are_reaped(
    tmp_path: Path, clock: FakeClock, pools: list[WorkerPool]
) -> None:
    # Given a memory bound no worker fits in
    pool = _pool(tmp_path, clock, ReapingPolicy(idle_seconds=3600, max_live_memory_mb=1))
    pools.append(pool)
    _pid(pool, "1")
    assert pool.worker_count() == 1

    # When the reaper runs
    assert pool.reap() == 1

    # Then no idle worker is kept over the bound
    assert pool.worker_count() == 0
