"""Local Lambda execution environments: one pool of worker processes per function version.

A pool is keyed by (function ARN, version, code sha256), like Lambda's execution
environments: the first invocation cold-starts a worker (spawn + handler import), later
ones reuse an idle warm worker, a worker serves one invocation at a time and concurrent
invocations spawn more workers up to ``max_workers_per_version``. A worker that times out
or crashes is killed and replaced on the next invocation.

This module knows nothing about moto: ``moto_patches`` snapshots a moto ``LambdaFunction``
into a :class:`FunctionSpec` and hands it here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from conveyor_local import runtime_site

LOG = logging.getLogger(__name__)

#: Lambda gives a function's init phase 10 s before it is retried inside the invoke phase.
INIT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_WORKERS_PER_VERSION = 8
#: Lambda reclaims an idle execution environment after minutes (undocumented; 5 to 15 observed).
DEFAULT_IDLE_SECONDS = 300.0
#: Bounds on what the local cloud's workers hold at once (a worker is ~60-100 MB resident).
DEFAULT_MAX_LIVE_WORKERS = 24
DEFAULT_MAX_LIVE_MEMORY_MB = 2048
#: The worker's entry point, run as a script so that nothing of the server's packages is importable.
WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))
#: Environment variables of the server process a worker inherits; everything else is the function's.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@dataclass(frozen=True)
class LayerSpec:
    sha256: str
    zip_bytes: bytes = field(repr=False)


@dataclass(frozen=True)
class FunctionSpec:
    """Everything a worker needs about one function version, detached from moto's objects."""

    function_name: str
    version: str
    unqualified_arn: str
    handler: str
    code_sha256: str
    code_zip: bytes = field(repr=False)
    layers: tuple[LayerSpec, ...]
    environment: Mapping[str, str]
    timeout_seconds: float
    memory_size_mb: int
    region: str
    runtime: str = "python3.11"

    @property
    def config_digest(self) -> str:
        """Changes when configuration changes, so ``$LATEST`` gets fresh environments as on AWS."""
        config = [self.handler, sorted(self.environment.items()), self.timeout_seconds, self.memory_size_mb]
        config.append([layer.sha256 for layer in self.layers])
        return hashlib.sha256(json.dumps(config).encode()).hexdigest()[:16]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.unqualified_arn, self.version, self.code_sha256, self.config_digest)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"


@dataclass(frozen=True)
class InvocationResult:
    """One invocation's outcome, in the shape moto's ``_invoke_lambda`` returns plus telemetry."""

    request_id: str
    payload: str
    errored: bool
    logs: str
    duration_ms: float
    init_duration_ms: float | None
    timed_out: bool
    worker_pid: int
    log_stream_name: str
    max_memory_used_mb: int | None


class WorkerLostError(Exception):
    """The worker process died or went silent before answering."""


class CodeCache:
    """Extracts code and layer zips once per sha256 (a content address, so never stale)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._runtime: str | None = None

    def materialize(self, kind: str, sha256: str, zip_bytes: bytes) -> Path:
        target = self._root / kind / sha256
        with self._lock:
            if not target.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
                with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
                    archive.extractall(staging)
                staging.rename(target)
        return target

    def search_path(self, spec: FunctionSpec) -> list[str]:
        """``sys.path`` entries before the standard library: the code dir (``/var/task``), then each layer's
        ``python/`` (``/opt/python``) followed by the dependencies its build installs beside it."""
        paths = [str(self.materialize("code", spec.code_sha256, spec.code_zip))]
        for layer in spec.layers:
            layer_dir = self.materialize("layers", layer.sha256, layer.zip_bytes)
            python_dir = layer_dir / "python"
            paths.append(str(python_dir if python_dir.is_dir() else layer_dir))
            dependencies = runtime_site.layer_dependencies(layer.sha256)
            if dependencies:
                with self._lock:
                    paths.append(str(runtime_site.site_dir(self._root / "sites", dependencies)))
        return paths

    def runtime_path(self) -> str:
        """The ``sys.path`` entry after the standard library: what the python3.11 runtime ships (boto3 & co)."""
        with self._lock:
            if self._runtime is None:
                self._runtime = str(runtime_site.site_dir(self._root / "sites", runtime_site.runtime_distributions()))
            return self._runtime


def _log_stream_name(version: str) -> str:
    today = datetime.now(UTC)
    return f"{today:%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"


def _max_memory_used_mb(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a live worker, for the REPORT line; None off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


class Worker:
    """One warm-able worker process and the two pipes that talk to it."""

    def __init__(
        self,
        spec: FunctionSpec,
        endpoint_url: str,
        cache: CodeCache,
        log_dir: Path,
        cloud_environment: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self._cloud_environment = dict(cloud_environment or {})
        self.log_stream_name = _log_stream_name(spec.version)
        self._log_file = log_dir / f"{uuid.uuid4().hex}.log"
        self._buffer = b""
        paths = cache.search_path(spec)
        read_fd, write_fd = os.pipe()
        # -I -S: no site-packages, no PYTHON* variables, no script directory; -B: no bytecode written.
        command = [sys.executable, "-I", "-S", "-B", WORKER_SCRIPT, "--response-fd", str(write_fd)]
        command += ["--log-file", str(self._log_file), "--runtime-path", cache.runtime_path()]
        for path in paths:
            command += ["--path", path]
        started = time.perf_counter()
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                cwd=paths[0],
                env=self._environment(endpoint_url, paths[0]),
                pass_fds=(write_fd,),
                start_new_session=True,  # so a timeout kills the handler's own children too
            )
        finally:
            os.close(write_fd)
        self._responses = read_fd
        assert self.process.stdin is not None
        self._requests: IO[bytes] = self.process.stdin
        try:
            self._read_message(INIT_TIMEOUT_SECONDS)
        except WorkerLostError:
            self.kill()
            raise
        self.init_duration_ms = (time.perf_counter() - started) * 1000
        self.pending_logs = self._read_logs()  # output of the init phase goes to the first invocation
        self.cold = True
        self.idle_since = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def _environment(self, endpoint_url: str, task_root: str) -> dict[str, str]:
        spec = self.spec
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        env.update(spec.environment)
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint_url,
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
                "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream_name,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "LAMBDA_TASK_ROOT": task_root,
                "_HANDLER": spec.handler,
                "TZ": ":UTC",
                "PYTHONDONTWRITEBYTECODE": "1",
                "POWERTOOLS_TRACE_DISABLED": "1",
            }
        )
        env.update(self._cloud_environment)
        return env

    def _read_message(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._responses], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._responses, 1 << 16)
            if not chunk:
                raise WorkerLostError(f"worker {self.pid} exited with status {self.process.wait()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)  # type: ignore[no-any-return]

    def _read_logs(self) -> str:
        try:
            return self._log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def invoke(self, event_json: str, request_id: str, invoked_arn: str) -> tuple[str, bool, bool]:
        """Run one invocation; returns (payload, errored, timed_out). Kills the worker on timeout."""
        timeout = self.spec.timeout_seconds
        request = {
            "event": event_json,
            "request_id": request_id,
            "invoked_function_arn": invoked_arn,
            "deadline_ms": int((time.time() + timeout) * 1000),
        }
        try:
            self._requests.write(json.dumps(request).encode() + b"\n")
            self._requests.flush()
            response = self._read_message(timeout)
        except TimeoutError:
            self.kill()
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            message = f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds"
            return json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}), True, True
        except (WorkerLostError, OSError, ValueError):
            status = self.process.wait()
            self.kill()
            body = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {status}",
            }
            return json.dumps(body), True, False
        return str(response["payload"]), bool(response["errored"]), False

    def take_logs(self) -> str:
        logs = self.pending_logs + self._read_logs()
        self.pending_logs = ""
        return logs

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(OSError):
            self._requests.close()
        if self._responses >= 0:
            os.close(self._responses)
            self._responses = -1
        with contextlib.suppress(FileNotFoundError):
            self._log_file.unlink()


class _VersionPool:
    """The execution environments of one function version."""

    def __init__(self, max_workers: int) -> None:
        self.idle: list[Worker] = []
        self.size = 0
        self.max_workers = max_workers
        self.changed = threading.Condition()


@dataclass(frozen=True)
class ReapingPolicy:
    """When idle execution environments are reclaimed, as Lambda reclaims them.

    Lambda keeps an idle environment for minutes, not forever, and no account holds unbounded
    memory. A worker idle for ``idle_seconds`` is killed; and while more than ``max_live_workers``
    are alive, or their resident memory adds up to more than ``max_live_memory_mb``, idle workers
    are killed oldest-idle first. A busy worker is never killed for a bound: the bound is restored
    as soon as enough workers are idle.
    """

    idle_seconds: float = DEFAULT_IDLE_SECONDS
    max_live_workers: int = DEFAULT_MAX_LIVE_WORKERS
    max_live_memory_mb: int = DEFAULT_MAX_LIVE_MEMORY_MB
    #: How often the background reaper looks for workers past ``idle_seconds``.
    check_interval_seconds: float = 5.0


def process_cpu_seconds(pid: int) -> float:
    """User+system CPU of a live process, from ``/proc/<pid>/stat`` (0.0 once it is gone or off Linux)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _resident_mb(pid: int) -> int:
    """Current resident set size of a live worker, in MB (0 once it is gone or off Linux)."""
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)


class WorkerPool:
    """All execution environments of the local cloud. Thread-safe: moto serves requests on threads.

    ``clock`` (monotonic seconds) is injectable so the reaping policy can be tested by its effect on
    ``worker_count()`` without waiting; ``reap()`` applies the policy at once.
    """

    def __init__(
        self,
        endpoint_url: str,
        cache_dir: Path,
        max_workers_per_version: int = DEFAULT_MAX_WORKERS_PER_VERSION,
        *,
        reaping: ReapingPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        background_reaper: bool = True,
        cloud_environment: Mapping[str, str] | None = None,
    ) -> None:
        """``cloud_environment``: variables the local cloud itself gives every execution environment (its
        time scale), beside each function's own configuration."""
        self.endpoint_url = endpoint_url
        self.cloud_environment = dict(cloud_environment or {})
        self._cache = CodeCache(cache_dir)
        self._log_dir = cache_dir / "worker-logs"
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._max_workers = max_workers_per_version
        self._pools: dict[tuple[str, str, str, str], _VersionPool] = {}
        self._live: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.reaping = reaping or ReapingPolicy()
        self._clock = clock
        self._stopping = threading.Event()
        if background_reaper:
            threading.Thread(target=self._reap_periodically, name="conveyor-local-reaper", daemon=True).start()

    def _pool(self, spec: FunctionSpec) -> _VersionPool:
        retired: list[_VersionPool] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the local cloud is shutting down")
            pool = self._pools.get(spec.key)
            if pool is None:
                # New code or configuration for this version: its old environments are never used again.
                for key in [key for key in self._pools if key[:2] == spec.key[:2]]:
                    retired.append(self._pools.pop(key))
                pool = self._pools[spec.key] = _VersionPool(self._max_workers)
        for old in retired:
            with old.changed:
                idle, old.idle = old.idle, []
            for worker in idle:
                self._forget(worker)
        return pool

    def _acquire(self, spec: FunctionSpec) -> Worker:
        pool = self._pool(spec)
        with pool.changed:
            while True:
                while pool.idle:
                    worker = pool.idle.pop()
                    if worker.alive():
                        return worker
                    pool.size -= 1
                if pool.size < pool.max_workers:
                    pool.size += 1
                    break
                pool.changed.wait()
        try:
            worker = Worker(spec, self.endpoint_url, self._cache, self._log_dir, self.cloud_environment)
        except BaseException:
            self._release(spec, None)
            raise
        with self._lock:
            self._live.add(worker)
        return worker

    def _release(self, spec: FunctionSpec, worker: Worker | None) -> None:
        if worker is not None and not worker.alive():
            self._forget(worker)
        pool = self._pool_or_none(spec)
        if pool is None:
            if worker is not None:
                self._forget(worker)
            return
        with pool.changed:
            if worker is not None and worker.alive() and not self._closed:
                worker.idle_since = self._clock()
                pool.idle.append(worker)
            else:
                pool.size -= 1
                if worker is not None:
                    self._forget(worker)
            pool.changed.notify()
        if worker is not None and self.worker_count() > self.reaping.max_live_workers:
            self.reap()

    def _forget(self, worker: Worker) -> None:
        worker.kill()
        with self._lock:
            self._live.discard(worker)

    def _pool_or_none(self, spec: FunctionSpec) -> _VersionPool | None:
        with self._lock:
            return self._pools.get(spec.key)

    def invoke(self, spec: FunctionSpec, event_json: str, invoked_arn: str) -> InvocationResult:
        """Run ``event_json`` through the version's code in a (warm if possible) worker."""
        request_id = str(uuid.uuid4())
        worker = self._acquire(spec)
        try:
            init_duration = worker.init_duration_ms if worker.cold else None
            worker.cold = False
            started = time.perf_counter()
            payload, errored, timed_out = worker.invoke(event_json, request_id, invoked_arn)
            duration_ms = (time.perf_counter() - started) * 1000
            memory = _max_memory_used_mb(worker.pid)
            logs = worker.take_logs()
            return InvocationResult(
                request_id=request_id,
                payload=payload,
                errored=errored,
                logs=logs,
                duration_ms=duration_ms,
                init_duration_ms=init_duration,
                timed_out=timed_out,
                worker_pid=worker.pid,
                log_stream_name=worker.log_stream_name,
                max_memory_used_mb=memory,
            )
        finally:
            self._release(spec, worker)

    def worker_count(self) -> int:
        with self._lock:
            return sum(pool.size for pool in self._pools.values())

    def live_cpu_seconds(self) -> float:
        """User+system CPU the live workers have used so far (a reaped worker's is the server's children's)."""
        with self._lock:
            pids = [worker.pid for worker in self._live]
        return sum(process_cpu_seconds(pid) for pid in pids)

    # ------------------------------------------------------------------------------ reaping

    def _idle_workers(self) -> list[tuple[float, _VersionPool, Worker]]:
        """Every idle worker with its pool, the longest idle first."""
        with self._lock:
            pools = list(self._pools.values())
        idle = []
        for pool in pools:
            with pool.changed:
                idle += [(worker.idle_since, pool, worker) for worker in pool.idle]
        return sorted(idle, key=lambda entry: entry[0])

    def _live_memory_mb(self) -> int:
        with self._lock:
            live = list(self._live)
        return sum(_resident_mb(worker.pid) for worker in live)

    def reap(self) -> int:
        """Apply the reaping policy now; returns how many idle workers were killed."""
        policy, now = self.reaping, self._clock()
        idle = self._idle_workers()
        expired = [entry for entry in idle if now - entry[0] >= policy.idle_seconds]
        kept = [entry for entry in idle if now - entry[0] < policy.idle_seconds]
        live = self.worker_count() - len(expired)
        memory = self._live_memory_mb() - sum(_resident_mb(worker.pid) for _, _, worker in expired)
        victims = list(expired)
        for entry in kept:  # the oldest idle first
            if live <= policy.max_live_workers and memory <= policy.max_live_memory_mb:
                break
            victims.append(entry)
            live -= 1
            memory -= _resident_mb(entry[2].pid)
        return sum(self._retire_idle(pool, worker) for _, pool, worker in victims)

    def _retire_idle(self, pool: _VersionPool, worker: Worker) -> int:
        """Kill ``worker`` if it is still idle in ``pool`` (an invocation may have taken it meanwhile)."""
        with pool.changed:
            if worker not in pool.idle:
                return 0
            pool.idle.remove(worker)
            pool.size -= 1
            pool.changed.notify()
        self._forget(worker)
        return 1

    def _reap_periodically(self) -> None:
        while not self._stopping.wait(self.reaping.check_interval_seconds):
            try:
                self.reap()
            except Exception:  # the reaper must outlive any one bad pass
                LOG.exception("reaping idle workers failed")

    def shutdown(self) -> None:
        """Kill every worker; invocations in flight fail as if their environment was reclaimed."""
        self._stopping.set()
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
            live = list(self._live)
            self._live.clear()
        for worker in live:
            worker.kill()
        for pool in pools:
            with pool.changed:
                pool.idle.clear()
                pool.changed.notify_all()
        shutil.rmtree(self._log_dir, ignore_errors=True)
