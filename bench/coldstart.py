"""Figure 3: cold start of every stage function, and the size of what ``sam build`` produces.

``sam build`` (offline, no container) into a scratch directory; then, per function, its handler
module is imported in a fresh interpreter with ``python -S -X importtime`` and ``sys.path`` laid out
as Lambda's python3.11 runtime has it: the function (``/var/task``), the layer (``/opt/python``),
then the runtime's own packages (boto3, botocore, s3transfer, jmespath, urllib3, dateutil, six,
linked from this venv). ``-S`` keeps this venv's site-packages out, so a dependency missing from
the layer fails the import instead of being found by accident. Nothing is written back
(``PYTHONDONTWRITEBYTECODE``), so every run compiles what the build did not ship compiled, as a
read-only Lambda filesystem would.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conveyor_cli.sample import ROOT

#: What the Lambda python3.11 runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py")
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


@dataclass
class Package:
    name: str
    bytes: int
    largest: list[tuple[str, int]]


#: Modules whose import is Tracer's cost: Powertools' tracing, the X-Ray SDK, and wrapt (which only the SDK uses).
TRACER_MODULES = ("aws_lambda_powertools.tracing", "aws_xray_sdk", "wrapt")
#: The baseline every handler import is compared with, imported the same way in the same round-robin.
BASELINE = "boto3"


@dataclass
class HandlerImport:
    function: str
    median_ms: float
    runs_ms: list[float]
    top: list[tuple[str, float]]  # slowest modules by self time (ms), from the median run
    tracer_ms: float = 0.0  # median self time of TRACER_MODULES
    first_call_ms: float = 0.0  # median of import + routing one call (see first_call_once)
    # The same, in the process's CPU time: on a shared machine it moves far less with the load than wall time.
    cpu_median_ms: float = 0.0
    first_call_cpu_ms: float = 0.0

    def ratio(self, baseline: HandlerImport) -> float:
        return self.median_ms / baseline.median_ms

    def cpu_ratio(self, baseline: HandlerImport) -> float:
        return self.cpu_median_ms / baseline.cpu_median_ms


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def sam_build(build_dir: Path, log: callable = print) -> Path:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    sam = Path(sys.executable).with_name("sam")
    command = [str(sam), "build", "--template", str(ROOT / "template.yaml"), "--build-dir", str(build_dir)]
    command += ["--cache-dir", str(build_dir.parent / "sam-cache")]
    result = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return build_dir


def packages(build_dir: Path) -> list[Package]:
    found = []
    for artifact in sorted(p for p in build_dir.iterdir() if p.is_dir()):
        root = artifact / "python" if (artifact / "python").is_dir() else artifact
        largest = sorted(
            ((c.name, tree_size(c) if c.is_dir() else c.stat().st_size) for c in root.iterdir()),
            key=lambda item: -item[1],
        )[:5]
        found.append(Package(artifact.name, tree_size(artifact), largest))
    return found


def runtime_shim(directory: Path) -> Path:
    """A directory holding (links to) only what Lambda's runtime provides beyond the stdlib."""
    site = Path(sysconfig.get_paths()["purelib"])
    directory.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        link = directory / name
        if not link.exists():
            link.symlink_to(site / name)
    return directory


def _lambda_env(function_dir: Path, name: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(function_dir),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "POWERTOOLS_SERVICE_NAME": "conveyor",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TZ": ":UTC",
    }


FIRST_CALL_SETTINGS = {
    "LEDGER_TABLE": "conveyor-bench-ledger",
    "ARTIFACT_BUCKET": "conveyor-bench-artifacts",
    "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:conveyor-bench",
    "EVENT_BUS_NAME": "conveyor-bench",
}
"""The stage functions' variables as the template sets them (``conveyor.settings``), for a first call: no call
reaches AWS (validation refuses the empty request first; an empty stream batch puts nothing)."""


def _cpu_timed(statements: str) -> str:
    """``statements`` preceded and followed by what prints the CPU milliseconds they took, as the last line."""
    return f"import time\n_cpu = time.process_time()\n{statements}\nprint((time.process_time() - _cpu) * 1000)\n"


def import_once(
    function_dir: Path, layer_dir: Path, shim: Path, name: str, module: str = "app"
) -> tuple[float, list[tuple[str, float]], float]:
    """Import ``module`` in a fresh interpreter laid out as Lambda's; (its cumulative ms, every module's self ms,
    the CPU ms the import took)."""
    env = _lambda_env(function_dir, name)
    env["PYTHONPATH"] = os.pathsep.join([str(function_dir), str(layer_dir), str(shim)])
    result = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", _cpu_timed(f"import {module}")],
        check=False,
        cwd=function_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"importing {module} for {name} failed:\n{result.stderr[-2000:]}")
    total = 0.0
    selfs: list[tuple[str, float]] = []
    for line in result.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        self_us, cumulative_us, _, imported = match.groups()
        selfs.append((imported, int(self_us) / 1000))
        if imported == module:
            total = int(cumulative_us) / 1000
    cpu = float(result.stdout.strip().splitlines()[-1])
    return total, sorted(selfs, key=lambda item: -item[1]), cpu


def host_layer(layer: Path, directory: Path) -> tuple[Path, list[str]]:
    """The layer as this machine can import it: links to its entries, except that a package with
    native code built for another architecture (the layer is arm64) is replaced by this venv's
    build of it (the same pinned version). Returns the directory and the replaced names."""
    site = Path(sysconfig.get_paths()["platlib"])
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    directory.mkdir(parents=True, exist_ok=True)
    replaced = []
    for entry in layer.iterdir():
        source = entry
        foreign = entry.is_dir() and any(not so.name.endswith(suffix) for so in entry.rglob("*.so"))
        if foreign and (site / entry.name).is_dir():
            source = site / entry.name
            replaced.append(entry.name)
        (directory / entry.name).symlink_to(source)
    return directory, sorted(replaced)


_TRACER_SNIPPET = (
    "import time, aws_lambda_powertools as powertools\n"
    "started = time.perf_counter()\n"
    "powertools.Tracer()\n"
    "print((time.perf_counter() - started) * 1000)\n"
)


def tracer_once(function_dir: Path, layer_dir: Path, shim: Path, name: str) -> float:
    """Milliseconds ``Tracer()`` takes in a fresh Lambda-like interpreter once Powertools is imported: the
    X-Ray SDK import (Powertools loads it lazily, on first Tracer) and its patching of what it traces."""
    env = _lambda_env(function_dir, name)
    env["PYTHONPATH"] = os.pathsep.join([str(function_dir), str(layer_dir), str(shim)])
    result = subprocess.run(
        [sys.executable, "-S", "-c", _TRACER_SNIPPET],
        check=False,
        cwd=function_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Tracer() for {name} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


_FIRST_CALL_SNIPPET = """
import time
started, cpu = time.perf_counter(), time.process_time()
import app
class Context:
    function_name = "conveyor-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:conveyor-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
stages = getattr(app, "STAGES", None)
# a stage function gets its first stage with an empty request; a stream consumer (Publish), an empty batch
event = {"stage": next(iter(stages)), "input": {}} if stages else {"Records": []}
try:
    app.handler(event, Context())
except Exception as exc:
    if type(exc).__name__ != "ValidationError":
        raise
print((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000)
"""


def first_call_once(function_dir: Path, layer_dir: Path, shim: Path, name: str) -> tuple[float, float]:
    """Milliseconds from ``import app`` to the end of its first call in a fresh Lambda-like interpreter: the call
    names the function's first stage with an empty request, so it is routed (the stage's modules imported, the
    envelope's and the request's models built) and refused by validation before any AWS call (the stream
    consumer gets an empty batch: its settings read and its adapter built, nothing to put). What a cold start
    pays before its first AWS call: import time moved into the first call (deferred models, lazy stages) shows
    up here, so a lower import figure cannot hide it. Run under
    ``-X importtime`` like ``import_once``, so both carry its overhead. Returns (wall ms, CPU ms)."""
    env = _lambda_env(function_dir, name) | FIRST_CALL_SETTINGS
    env["PYTHONPATH"] = os.pathsep.join([str(function_dir), str(layer_dir), str(shim)])
    result = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", _FIRST_CALL_SNIPPET],
        check=False,
        cwd=function_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"first call of {name} failed:\n{result.stderr[-2000:]}")
    wall, cpu = result.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def tracer_ms(selfs: list[tuple[str, float]]) -> float:
    return sum(ms for module, ms in selfs if module.startswith(TRACER_MODULES))


def handler_imports(build_dir: Path, runs: int) -> tuple[list[HandlerImport], HandlerImport, list[str], list[float]]:
    """Each handler's import, ``import boto3`` as the baseline, and ``Tracer()`` alone, round-robin in fresh
    interpreters. Returns (handlers, baseline, native packages replaced, Tracer() ms per run)."""
    scratch = Path(tempfile.mkdtemp(prefix="lambda-runtime-"))
    layer, replaced = host_layer(build_dir / "ConveyorLayer" / "python", scratch / "opt-python")
    shim = runtime_shim(scratch / "var-runtime")
    functions = [p for p in sorted(build_dir.iterdir()) if (p / "app.py").is_file()]
    jobs = [(fn.name, fn, "app") for fn in functions] + [(f"import {BASELINE}", functions[0], BASELINE)]
    results: dict[str, list[tuple[float, list[tuple[str, float]], float]]] = {label: [] for label, _, _ in jobs}
    tracer: list[float] = []
    first_calls: dict[str, list[tuple[float, float]]] = {fn.name: [] for fn in functions}
    # Round-robin, so a burst of load on the machine does not land on one function (or the baseline) only.
    for _ in range(runs):
        for label, fn, module in jobs:
            results[label].append(import_once(fn, layer, shim, fn.name, module))
            if module == "app":
                first_calls[label].append(first_call_once(fn, layer, shim, fn.name))
        tracer.append(tracer_once(functions[0], layer, shim, functions[0].name))
    out = []
    for name, samples in results.items():
        ordered = sorted(samples, key=lambda s: s[0])
        median_run = ordered[len(ordered) // 2]
        out.append(
            HandlerImport(
                name,
                statistics.median(s[0] for s in samples),
                [s[0] for s in samples],
                median_run[1][:6],
                statistics.median(tracer_ms(s[1]) for s in samples),
                statistics.median(c[0] for c in first_calls[name]) if first_calls.get(name) else 0.0,
                statistics.median(s[2] for s in samples),
                statistics.median(c[1] for c in first_calls[name]) if first_calls.get(name) else 0.0,
            )
        )
    return out[:-1], out[-1], replaced, tracer
