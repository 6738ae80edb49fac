"""Figure 1: orchestration overhead, Conveyor vs the bare boto3 calls the same deployment needs.

Conveyor: the sample app (``examples/pipelines/hello.yaml``: staging then production, all at
once, no bake), timed from the completed S3 upload to the execution's stop time. Bare: on the
same local cloud, in the same run, interleaved with Conveyor's runs: download the bundle, then
per environment update the function code, publish a version, point the alias at it.
"""

from __future__ import annotations

import io
import statistics
import time
import zipfile
from dataclasses import dataclass

from conveyor.domain.manifest import PACKAGE_NAME

from bench.stack import Bench, BenchError, Finished

_BARE_PREFIX = "bench/bare/"


@dataclass
class OverheadResult:
    conveyor: list[float]
    bare: list[float]
    warmup_conveyor: float
    warmup_bare: float
    finished: list[Finished]

    @property
    def ratio(self) -> float:
        return statistics.median(self.conveyor) / statistics.median(self.bare)


def bare_sequence(bench: Bench, key: str, functions: dict[str, str]) -> float:
    """The calls a deployment needs without an orchestrator; returns seconds."""
    s3, lam = bench.client("s3"), bench.client("lambda")
    started = time.perf_counter()
    bundle = s3.get_object(Bucket=bench.cloud.outputs.bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        package = archive.read(PACKAGE_NAME)
    for function in functions.values():
        lam.update_function_code(FunctionName=function, ZipFile=package)
        version = lam.publish_version(FunctionName=function)["Version"]
        lam.update_alias(FunctionName=function, Name="live", FunctionVersion=version)
    return time.perf_counter() - started


def run(bench: Bench, runs: int, log: callable = print) -> OverheadResult:
    sample = bench.create_sample()
    bare_functions = bench.create_app("bench-bare", {"type": "all_at_once"})
    conveyor: list[float] = []
    bare: list[float] = []
    finished: list[Finished] = []
    warm_c = warm_b = 0.0
    for index in range(runs + 1):
        version = f"2.0.{index}"
        data = bench.bundle("hello", version)
        bare_key = f"{_BARE_PREFIX}{version}.zip"
        bench.client("s3").put_object(Bucket=bench.cloud.outputs.bucket, Key=bare_key, Body=data)

        done = bench.follow(bench.push("hello", version, data))
        if done.execution["status"] != "SUCCEEDED":
            raise BenchError(f"hello {version} ended {done.execution['status']}: {done.record.failure}")
        after = {env: bench.alias(fn)["version"] for env, fn in sample.items()}
        bare_seconds = bare_sequence(bench, bare_key, bare_functions)
        if index == 0:
            warm_c, warm_b = done.seconds, bare_seconds
            log(f"    warm-up (cold workers): conveyor {done.seconds:.2f}s, bare {bare_seconds:.3f}s")
            continue
        conveyor.append(done.seconds)
        bare.append(bare_seconds)
        finished.append(done)
        log(f"    run {index}: conveyor {done.seconds:.2f}s, bare {bare_seconds:.3f}s, aliases now {after}")
    return OverheadResult(conveyor, bare, warm_c, warm_b, finished)
