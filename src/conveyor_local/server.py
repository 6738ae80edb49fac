"""Run the local cloud: moto's threaded server, our patches, and the stack from ``template.yaml``.

Foreground: ``python -m conveyor_local.server --port 4566 --template template.yaml --state-dir .conveyor``
runs until SIGTERM/SIGINT. Library (for the CLI and tests): ``start_background``, ``stop``,
``read_state``, ``client_env``.

The state file ``<state-dir>/local.json`` is written only once the cloud is provisioned and
removed on clean shutdown, so its presence (with a live pid) means "ready".

The cloud keeps its state in ``<state-dir>/snapshot/`` (``conveyor_local.persistence``): a start
restores the last snapshot before the server takes a request (``--fresh`` discards it), ends
ABORTED the executions the last cloud left running, then provisions the template over what was
restored (updating what changed, duplicating nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session

from conveyor_local import persistence
from conveyor_local.moto_patches.registry import TIME_SCALE_ENV

DEFAULT_PORT = 4566
DEFAULT_REGION = "us-east-1"
STATE_FILE = "local.json"
LOG_FILE = "server.log"

LOG = logging.getLogger("conveyor_local")


class LocalCloudError(Exception):
    """The local cloud could not be started, reached or stopped; the message says why."""


def time_scale_from_env() -> float:
    raw = os.environ.get(TIME_SCALE_ENV, "1.0")
    try:
        scale = float(raw)
    except ValueError as exc:
        raise LocalCloudError(f"{TIME_SCALE_ENV}={raw!r} is not a number") from exc
    if scale < 0:
        raise LocalCloudError(f"{TIME_SCALE_ENV}={raw!r} must not be negative")
    return scale


class LocalCloud:
    """moto server + patches + provisioned stack, in this process."""

    def __init__(
        self,
        template: Path,
        state_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        time_scale: float = 1.0,
        stack_name: str = "conveyor",
        region: str = DEFAULT_REGION,
        fresh: bool = False,
        snapshot_interval: float = persistence.DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self.template = Path(template).resolve()
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        self.time_scale = time_scale
        self.stack_name = stack_name
        self.region = region
        self.fresh = fresh
        self._server: _TrackedMotoServer | None = None
        self._tracker = persistence.ChangeTracker()
        self._snapshotter = persistence.Snapshotter(
            persistence.SnapshotStore(self.state_dir / persistence.SNAPSHOT_DIR),
            self._tracker,
            interval=snapshot_interval,
        )
        self.state: dict[str, Any] = {}

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def start(self) -> dict[str, Any]:
        """Restore, start serving, patch moto, enable state machine execution, provision; returns the state."""
        import boto3.session

        from conveyor_local import executions, moto_patches
        from conveyor_local.inbox import wire_inbox
        from conveyor_local.provision import provision

        started = time.perf_counter()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        summary, orphans = self._restore()
        self._server = _TrackedMotoServer(self.port, self._tracker)
        self._server.start()
        self.port = self._server.port
        # moto's Step Functions interpreter builds its own clients from MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.port)
        moto_patches.apply(
            moto_patches.Settings(
                endpoint_url=self.endpoint_url, cache_dir=self.state_dir / "cache", time_scale=self.time_scale
            )
        )
        # Must precede create_state_machine: machines land in the executing backend only then.
        self._post_json("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        if summary.restored:
            summary.counts = persistence.inventory(self.endpoint_url, self.region)
        result = provision(self.template, self.endpoint_url, stack_name=self.stack_name, region=self.region)
        inbox = wire_inbox(
            boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - the local cloud's fake credentials
                region_name=self.region,
            ),
            self.endpoint_url,
            self.stack_name,
            result.outputs,
        )
        # Only now can the status changes reach a rule and its target (the reconciler) on a serving cloud.
        persistence.set_status_change_emitter(executions.emit_status_change)
        for execution in orphans:
            persistence.emit_status_change(execution)
        self._snapshotter.start()
        self.state = {
            "endpoint": self.endpoint_url,
            "pid": os.getpid(),
            "port": self.port,
            "region": self.region,
            "stack_name": self.stack_name,
            "template": str(self.template),
            "time_scale": self.time_scale,
            "started_at": datetime.now(UTC).isoformat(),
            "startup_seconds": round(time.perf_counter() - started, 3),
            "outputs": result.outputs,
            "inbox": inbox.model_dump(),
            # Elastic Beanstalk CNAMEs are served here, routed by Host header (conveyor_local.beanstalk).
            "beanstalk_front": beanstalk_front_url(),
            "restored": summary.model_dump(mode="json"),
        }
        staging = self.state_file.with_suffix(".tmp")
        staging.write_text(json.dumps(self.state, indent=2) + "\n", encoding="utf-8")
        staging.replace(self.state_file)
        LOG.info("local cloud ready at %s in %.2fs", self.endpoint_url, self.state["startup_seconds"])
        LOG.info("%s", summary.describe())
        return self.state

    def _restore(self) -> tuple[persistence.RestoreSummary, list[Any]]:
        """Load the last snapshot (unless fresh) and end ABORTED what it left running, before any request."""
        store = self._snapshotter.store
        if self.fresh:
            if store.discard():
                LOG.info("--fresh: discarded the saved state in %s", store.directory)
            return persistence.RestoreSummary(fresh=True, restored=False), []
        blob = store.read()
        if blob is None:
            return persistence.RestoreSummary(fresh=False, restored=False), []
        persistence.install(blob, store.snapshot_path)
        orphans = persistence.abort_orphaned_executions()
        manifest = store.manifest()
        if manifest is not None:
            self._tracker.resume(manifest.changes)
        summary = persistence.RestoreSummary(
            fresh=False,
            restored=True,
            generation=manifest.generation if manifest else None,
            taken_at=manifest.taken_at if manifest else None,
            aborted_executions=[str(execution.exec_arn) for execution in orphans],
        )
        if orphans:
            self._tracker.record()  # their new status must reach the next snapshot
        return summary, orphans

    def _post_json(self, path: str, body: Mapping[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - loopback http only
            self.endpoint_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # Bandit B310 suppressed below: the URL is this local cloud's own http://127.0.0.1 endpoint, never input.
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # nosec B310
            response.read()

    def stop(self) -> None:
        """Stop the server, write the last snapshot, kill every worker, remove the state file. Safe to call twice."""
        from conveyor_local import moto_patches

        if self._server is not None:
            self._server.stop()
            self._server = None
            self._snapshotter.stop()
        moto_patches.restore()
        with contextlib.suppress(FileNotFoundError):
            if self.state_file.exists() and read_state(self.state_dir).get("pid") == os.getpid():
                self.state_file.unlink()


class _TrackedMotoServer:
    """moto's threaded server (as ``moto.server.ThreadedMotoServer`` builds it) with change tracking and the
    request log (``conveyor_local.requests_log``) in front.

    Bound at construction, so the port is known before ``start``; nothing is served before it.
    """

    def __init__(self, port: int, tracker: persistence.ChangeTracker) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        from conveyor_local.requests_log import REQUEST_LOG

        app = REQUEST_LOG.middleware(tracker.middleware(DomainDispatcherApplication(create_backend_app)))
        self._server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
        # serve_forever checks for shutdown between polls: a short poll lets `local down` stop it at once
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, wait for the serving loop to end, close the socket."""
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


# ------------------------------------------------------------------------- library API


def beanstalk_front_url() -> str | None:
    from conveyor_local.beanstalk import CLOUD

    return CLOUD.front.url if CLOUD.front is not None else None


def read_state(state_dir: Path | str) -> dict[str, Any]:
    """The running local cloud's state; raises ``LocalCloudError`` when there is none."""
    path = Path(state_dir) / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LocalCloudError(f"the local cloud is not running (no {path}); start it with `conveyor local up`") from exc
    except ValueError as exc:
        raise LocalCloudError(f"{path} is corrupt: {exc}") from exc
    return state


def client_env(state: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables that point any AWS SDK or CLI at the local cloud."""
    return {
        "AWS_ENDPOINT_URL": str(state["endpoint"]),
        "AWS_DEFAULT_REGION": str(state.get("region", DEFAULT_REGION)),
        "AWS_REGION": str(state.get("region", DEFAULT_REGION)),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it first if it is our own exited child, and an exited process another parent
    has not reaped yet (a zombie: the cloud started by an earlier command is init's child) is not running."""
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits for its parent to reap it (Linux ``/proc``; False where there is none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no server log)"


def start_background(
    port: int | None = None,
    template: Path | str = "template.yaml",
    state_dir: Path | str = ".conveyor",
    time_scale: float | None = None,
    *,
    fresh: bool = False,
    restart: bool = False,
    timeout: float = 120.0,
    snapshot_interval: float | None = None,
) -> dict[str, Any]:
    """Start the local cloud as a detached process and wait until it is provisioned.

    Returns the state (see ``read_state``; its ``restored`` says what the start restored). If one
    is already running for ``state_dir`` its state is returned unchanged, marked ``already_running``;
    asking it for another time scale or ``port`` is refused (its settings cannot change under it, and keeping
    the old ones silently would run every wait at a speed nobody asked for), as is ``fresh`` (its
    state cannot be discarded under it), unless ``restart``: that stops it first (its state kept).
    Raises ``LocalCloudError`` with the server log's tail if the server exits or is not ready within
    ``timeout`` seconds. ``snapshot_interval``: the least time between two snapshots of its state (default
    ``persistence.DEFAULT_INTERVAL_SECONDS``; a crash loses at most that much).
    """
    state_path = Path(state_dir).resolve()
    state_path.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] | None = None
    with contextlib.suppress(LocalCloudError):
        existing = read_state(state_path)
    if existing is not None and _alive(int(existing["pid"])) and restart:
        stop(state_path)
        existing = None
    if existing is not None:
        if _alive(int(existing["pid"])):
            if fresh:
                raise LocalCloudError(
                    f"the local cloud of {state_path} is already running (pid {existing['pid']}); "
                    "`conveyor local down` first, then `conveyor local up --fresh`"
                )
            running = float(existing.get("time_scale", 1.0))
            if time_scale is not None and time_scale != running:
                raise LocalCloudError(
                    f"the local cloud of {state_path} is already running at time scale {running:g} "
                    f"(pid {existing['pid']}), not {time_scale:g}; a running cloud keeps its settings: "
                    f"`conveyor local up --time-scale {time_scale:g} --restart` restarts it (its state is kept)"
                )
            serving = existing.get("port")
            if port not in (None, 0) and serving is not None and port != serving:
                raise LocalCloudError(
                    f"the local cloud of {state_path} is already running on port {serving} (pid {existing['pid']}), "
                    f"not {port}; a running cloud keeps its settings: `conveyor local up --port {port} --restart` "
                    "restarts it (its state is kept)"
                )
            return {**existing, "already_running": True}
        (state_path / STATE_FILE).unlink(missing_ok=True)  # left behind by a killed server
    log_path = state_path / LOG_FILE
    env = dict(os.environ)
    if time_scale is not None:
        env[TIME_SCALE_ENV] = str(time_scale)
    command = [sys.executable, "-m", "conveyor_local.server", "--port", str(DEFAULT_PORT if port is None else port)]
    command += ["--template", str(Path(template).resolve()), "--state-dir", str(state_path)]
    if fresh:
        command.append("--fresh")
    if snapshot_interval is not None:
        command += ["--snapshot-interval", str(snapshot_interval)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalCloudError(
                f"the local cloud exited with status {process.returncode} while starting; "
                f"{log_path} ends with:\n{_tail(log_path)}"
            )
        with contextlib.suppress(LocalCloudError):
            state = read_state(state_path)
            if state.get("pid") == process.pid:
                return state
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    raise LocalCloudError(
        f"the local cloud was not ready after {timeout:.0f}s; {log_path} ends with:\n{_tail(log_path)}"
    )


def stop(state_dir: Path | str = ".conveyor", timeout: float = 15.0) -> bool:
    """Stop the local cloud of ``state_dir`` (SIGTERM, then SIGKILL). False if none was running."""
    state_path = Path(state_dir)
    try:
        pid = int(read_state(state_path)["pid"])
    except LocalCloudError:
        return False
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
    (state_path / STATE_FILE).unlink(missing_ok=True)
    return True


# ------------------------------------------------------------------------- foreground


def share_botocore_loader() -> None:
    """Every botocore session of this process reads AWS's API models through one loader.

    moto builds sessions of its own as it is imported and as it serves (EC2's regions, imported with the Step
    Functions interpreter, read the whole EC2 model three times, through three new sessions: a second of every
    start), and so do the interpreter's and the provisioner's clients. The loader is a read-only cache of files
    shipped with botocore, one per data path as botocore would build it, so sharing it changes no client.
    """
    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor_local.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--state-dir", type=Path, default=Path(".conveyor"))
    parser.add_argument("--stack-name", default="conveyor")
    parser.add_argument("--time-scale", type=float, default=None, help=f"default: ${TIME_SCALE_ENV} or 1.0")
    parser.add_argument("--fresh", action="store_true", help="discard the saved state and start empty")
    parser.add_argument(
        "--snapshot-interval",
        type=float,
        default=persistence.DEFAULT_INTERVAL_SECONDS,
        help="least seconds between two snapshots of the state (a crash loses at most that much)",
    )
    args = parser.parse_args(argv)
    if not args.snapshot_interval > 0:
        parser.error(f"--snapshot-interval must be more than 0 seconds, not {args.snapshot_interval:g}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    share_botocore_loader()

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    cloud = LocalCloud(
        args.template,
        args.state_dir,
        port=args.port,
        time_scale=args.time_scale if args.time_scale is not None else time_scale_from_env(),
        stack_name=args.stack_name,
        fresh=args.fresh,
        snapshot_interval=args.snapshot_interval,
    )
    try:
        state = cloud.start()
        print(json.dumps(state), flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        cloud.stop()
        LOG.info("local cloud stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
