"""Figure 1: orchestration overhead, Conveyor against the minimum safe sequence, side by side.

Three ways to take the sample app (``examples/pipelines/hello.yaml``: staging then production,
all at once, no bake) to a new version, run in turn on the same local cloud, run after run:

- **Conveyor**: push the bundle; timed from the completed upload to the execution's stop time.
- **Minimum safe sequence**: what a careful script with plain boto3 must do for the same
  guarantees on AWS: a conditional claim write in DynamoDB (one deployment per bundle), get the
  bundle from S3, then per environment UpdateFunctionCode, wait for ``LastUpdateStatus``
  Successful (PublishVersion during an update in progress is refused on AWS), PublishVersion
  with the uploaded ``CodeSha256``, one health invoke of the new version, UpdateAlias; then one
  outcome write.
- **Bare sequence** (kept for comparison with earlier runs): get the bundle, then per environment
  UpdateFunctionCode, PublishVersion, UpdateAlias. It would fail on AWS: it publishes while the
  code update is still in progress.

For each: wall time, CPU (the local cloud's process tree, plus the script's own thread for the
two scripts; Conveyor's orchestrator is inside the cloud), and the API calls the local cloud
served, by service, from its own request log. The first run of each is a warm-up that
cold-starts every worker (Conveyor's stage functions included); medians of the runs after it.
"""

from __future__ import annotations

import io
import json
import statistics
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.domain.manifest import PACKAGE_NAME

from bench.observe import BENCH_APP_ID, Calls, Invocations, RequestWindow, invocations, tree_cpu_seconds
from bench.stack import Bench, BenchError, Finished

SAFE_APP_ID = "bench-safe-sequence"
BARE_APP_ID = "bench-bare-sequence"
_BUNDLE_PREFIX = "bench/scripts/"
_CLAIMS_TABLE = "bench-safe-sequence-deployments"
_HEALTH_PAYLOAD = {"probe": "health"}
_HEALTH_EXPECT = {"status": "ok"}


@dataclass
class Measured:
    """One run of one contender."""

    wall: float
    cpu: float
    calls: Calls


@dataclass
class ConveyorRun(Measured):
    finished: Finished | None = None
    by_state_machine: Calls = field(default_factory=Calls)
    """Of ``calls``, Step Functions' own: its Task states' invocations of the stage functions."""
    invocations: Invocations = field(default_factory=Invocations)
    bench_requests: int = 0  # the bench's own polling, served inside Conveyor's CPU window


@dataclass
class Contender:
    name: str
    runs: list[Measured] = field(default_factory=list)
    warmup: Measured | None = None

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def median_by_calls(self) -> Measured:
        """The median run by call count (the count should not vary from run to run)."""
        ordered = sorted(self.runs, key=lambda r: r.calls.total)
        return ordered[len(ordered) // 2]

    @property
    def calls(self) -> Calls:
        return self.median_by_calls.calls


@dataclass
class OverheadResult:
    conveyor: Contender
    safe: Contender
    bare: Contender
    targets: dict[str, str]

    def ratio(self, other: Contender, of: Callable[[Contender], float]) -> float:
        return of(self.conveyor) / of(other)


class Scripts:
    """The two boto3 scripts, each with clients that name it in their User-Agent (its app id)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.bucket = bench.cloud.outputs.bucket
        self.safe = {s: bench.client(s, app_id=SAFE_APP_ID) for s in ("s3", "lambda", "dynamodb")}
        self.bare = {s: bench.client(s, app_id=BARE_APP_ID) for s in ("s3", "lambda")}
        self.safe_functions = bench.create_app("bench-safe", {"type": "all_at_once"})
        self.bare_functions = bench.create_app("bench-bare", {"type": "all_at_once"})
        self._create_claims_table()

    def _create_claims_table(self) -> None:
        ddb = self.bench.client("dynamodb")
        ddb.create_table(
            TableName=_CLAIMS_TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.get_waiter("table_exists").wait(TableName=_CLAIMS_TABLE)

    def stage(self, version: str, data: bytes) -> str:
        key = f"{_BUNDLE_PREFIX}{version}.zip"
        self.bench.client("s3").put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def _package(self, s3: Any, key: str) -> bytes:
        bundle = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            return archive.read(PACKAGE_NAME)

    def safe_sequence(self, key: str, version: str) -> None:
        """The minimum a script needs to deploy safely on AWS; raises BenchError if a step fails."""
        s3, lam, ddb = self.safe["s3"], self.safe["lambda"], self.safe["dynamodb"]
        deployment = {"S": f"bench-safe#{version}"}
        ddb.put_item(
            TableName=_CLAIMS_TABLE,
            Item={"pk": deployment, "status": {"S": "CLAIMED"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        package = self._package(s3, key)
        waiter = lam.get_waiter("function_updated")
        for function in self.safe_functions.values():
            updated = lam.update_function_code(FunctionName=function, ZipFile=package)
            waiter.wait(FunctionName=function, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            published = lam.publish_version(FunctionName=function, CodeSha256=updated["CodeSha256"])
            health = lam.invoke(FunctionName=f"{function}:{published['Version']}", Payload=json.dumps(_HEALTH_PAYLOAD))
            answer = json.loads(health["Payload"].read())
            if health.get("FunctionError") or not _matches(answer, _HEALTH_EXPECT):
                raise BenchError(f"safe sequence: {function}:{published['Version']} is unhealthy: {answer}")
            lam.update_alias(FunctionName=function, Name="live", FunctionVersion=published["Version"])
        ddb.update_item(
            TableName=_CLAIMS_TABLE,
            Key={"pk": deployment},
            UpdateExpression="SET #s = :done",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":done": {"S": "SUCCEEDED"}},
        )

    def bare_sequence(self, key: str) -> None:
        """Seven calls; on AWS the PublishVersion right after UpdateFunctionCode is refused (update in progress)."""
        s3, lam = self.bare["s3"], self.bare["lambda"]
        package = self._package(s3, key)
        for function in self.bare_functions.values():
            lam.update_function_code(FunctionName=function, ZipFile=package)
            version = lam.publish_version(FunctionName=function)["Version"]
            lam.update_alias(FunctionName=function, Name="live", FunctionVersion=version)


def _matches(answer: Any, expect: Mapping[str, Any]) -> bool:
    return isinstance(answer, dict) and all(answer.get(k) == v for k, v in expect.items())


def _measure_script(bench: Bench, app_id: str, script: Callable[[], None]) -> Measured:
    window = RequestWindow(bench.endpoint)
    cloud_before, thread_before = tree_cpu_seconds(bench.server_pid), time.thread_time()
    started = time.perf_counter()
    script()
    wall = time.perf_counter() - started
    cpu = time.thread_time() - thread_before + tree_cpu_seconds(bench.server_pid) - cloud_before
    return Measured(wall=wall, cpu=cpu, calls=window.close().calls(app_id))


def _measure_conveyor(bench: Bench, version: str, data: bytes) -> ConveyorRun:
    window = RequestWindow(bench.endpoint)
    cloud_before = tree_cpu_seconds(bench.server_pid)
    start_ms = int(time.time() * 1000)
    done = bench.follow(bench.push("hello", version, data), poll=0.25)
    cpu = tree_cpu_seconds(bench.server_pid) - cloud_before
    end_ms = int(time.time() * 1000) + 1
    if done.execution["status"] != "SUCCEEDED":
        raise BenchError(f"hello {version} ended {done.execution['status']}: {done.record.failure}")
    window.close()
    return ConveyorRun(
        wall=done.seconds,
        cpu=cpu,
        calls=window.calls(None),
        by_state_machine=window.calls(None, callers={RequestWindow.STATE_MACHINE}),
        finished=done,
        invocations=invocations(bench.client("logs"), start_ms, end_ms),
        bench_requests=window.calls(BENCH_APP_ID).total,
    )


def run(bench: Bench, runs: int, log: Callable[[str], None] = print) -> OverheadResult:
    targets = bench.create_sample()
    scripts = Scripts(bench)
    conveyor, safe, bare = Contender("Conveyor"), Contender("minimum safe sequence"), Contender("bare sequence")
    for index in range(runs + 1):
        version = f"2.0.{index}"
        data = bench.bundle("hello", version)
        key = scripts.stage(version, data)
        c = _measure_conveyor(bench, version, data)
        s = _measure_script(bench, SAFE_APP_ID, lambda: scripts.safe_sequence(key, version))  # noqa: B023
        b = _measure_script(bench, BARE_APP_ID, lambda: scripts.bare_sequence(key))  # noqa: B023
        label = "warm-up (cold workers)" if index == 0 else f"run {index}"
        log(
            f"    {label}: Conveyor {c.wall:.2f}s wall {c.cpu:.2f} CPU-s {c.calls.total} calls;"
            f" safe {s.wall:.3f}s {s.cpu:.3f} CPU-s {s.calls.total} calls;"
            f" bare {b.wall:.3f}s {b.cpu:.3f} CPU-s {b.calls.total} calls"
        )
        if index == 0:
            conveyor.warmup, safe.warmup, bare.warmup = c, s, b
            continue
        conveyor.runs.append(c)
        safe.runs.append(s)
        bare.runs.append(b)
    return OverheadResult(conveyor, safe, bare, targets)
