"""The local cloud keeps its state: snapshots of moto's backends, written atomically, restored at start.

How (as LocalStack persists moto): every per-account, per-region backend of the services Conveyor
uses is pickled in ONE pickle, so objects shared between services (a Lambda function holds its
CloudWatch Logs backend) stay shared after a restore. ``pickle`` alone cannot take everything moto
holds; ``_BackendPickler.reducer_override`` rebuilds what it cannot:

- locks, conditions and events (SQS queues, S3 keys, DynamoDB) come back new and released;
- ``weakref.WeakValueDictionary`` (Lambda's ARN index) comes back from its live items;
- a ``defaultdict`` whose factory is a lambda (Lambda's aliases) comes back with the builtin
  container type its factory makes;
- KMS private keys go through PEM;
- a DynamoDB stream shard comes back without its records (their sequence numbers are not reused): they
  were delivered to its mappings (``moto_patches.dynamodbstreams``), and a ledger's stream holds old and
  new image of every change, so keeping them would make each snapshot many times the size of the tables;
- a Step Functions execution keeps its record (status, dates, input, output, error, cause) and
  its history; its worker thread is not state and cannot be pickled, so a restored execution gets
  a stand-in worker that answers history, task-token and map-run look-ups as an ended one does.

When: a ``ChangeTracker`` (a WSGI middleware on the server) counts requests that may change state,
and a ``Snapshotter`` thread writes a snapshot when something changed, at most every
``interval`` seconds (longer when a snapshot takes long: ``REST_PER_SNAPSHOT_SECOND``), and once more on
clean shutdown. An ended execution's history is pickled once and its bytes reused. An execution that
ends is a change no request makes; the snapshotter notices one leaving RUNNING within an interval and
counts it.
A crash loses at most the last interval.
Each snapshot is written to a temp file, fsynced and renamed over the last one, so a crash while
writing leaves the previous snapshot whole. ``manifest.json`` beside it says which generation is on
disk and the highest change sequence it covers (every tracked response carries its sequence
number in the ``x-conveyor-local-change`` header), so a test or a tool can wait for "my write is on
disk" without sleeping.

Restart: executions that were RUNNING when the cloud died cannot resume (their threads are gone);
``abort_orphaned_executions`` ends each ABORTED with ``RESTART_CAUSE`` and hands it to
``emit_status_change`` so Conveyor's reconciler can restore traffic and close the ledger.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import io
import logging
import os
import pickle  # nosec B403 - only our own snapshots, in the local cloud's own state dir, are unpickled
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, Field

from conveyor_local.executions import is_sealed
from conveyor_local.moto_patches.registry import resolve_dotted

LOG = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshot"
SNAPSHOT_FILE = "state.pickle"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
CHANGE_HEADER = "x-conveyor-local-change"
DEFAULT_INTERVAL_SECONDS = 0.5
#: After a snapshot that took t seconds the snapshotter waits at least this many times t: at most a fifth of
#: the server's time goes to snapshots.
REST_PER_SNAPSHOT_SECOND = 4.0

RESTART_ERROR = "States.Aborted"
RESTART_CAUSE = "local cloud restarted while the execution ran"

#: service -> moto's ``BackendDict`` of it. Step Functions: the executing (parser) backend, the one
#: ``execute_state_machine`` routes every request to.
BACKENDS: Mapping[str, str] = {
    "s3": "moto.s3.models.s3_backends",
    "dynamodb": "moto.dynamodb.models.dynamodb_backends",
    "iam": "moto.iam.models.iam_backends",
    "lambda": "moto.awslambda.models.lambda_backends",
    "stepfunctions": "moto.stepfunctions.parser.models.stepfunctions_parser_backends",
    "sns": "moto.sns.models.sns_backends",
    "sqs": "moto.sqs.models.sqs_backends",
    "events": "moto.events.models.events_backends",
    "cloudwatch": "moto.cloudwatch.models.cloudwatch_backends",
    "logs": "moto.logs.models.logs_backends",
    "kms": "moto.kms.models.kms_backends",
    # Its environments' processes are started again by conveyor_local.beanstalk once the cloud serves.
    "elasticbeanstalk": "moto.elasticbeanstalk.models.eb_backends",
}
#: every moto name used here is registered in ``conveyor_local.moto_patches.SEAM_SIGNATURES``.
_EXECUTION = "moto.stepfunctions.parser.backend.execution.Execution"
_VERSIONED_KEY_STORE = "moto.s3.utils._VersionedKeyStore"
_STREAM_SHARD = "moto.dynamodb.models.table.StreamShard"


class SnapshotError(Exception):
    """A snapshot could not be written or read back; the message names the file and what to do."""


class SnapshotManifest(BaseModel):
    """What ``manifest.json`` says about the snapshot on disk (written after it, for observers)."""

    format: int = FORMAT_VERSION
    moto_version: str
    generation: int = Field(ge=1, description="1 for the first snapshot in this state dir, +1 for each after")
    changes: int = Field(ge=0, description="every tracked change with a sequence number up to this one is in it")
    taken_at: datetime
    size_bytes: int = Field(ge=0)
    capture_seconds: float = Field(default=0.0, ge=0, description="how long pickling the backends took")


# ------------------------------------------------------------------ pickling what moto holds


def _new_lock() -> Any:
    return threading.Lock()


def _new_rlock() -> Any:
    return threading.RLock()


def _new_condition() -> threading.Condition:
    return threading.Condition()


def _new_event(was_set: bool) -> threading.Event:
    event = threading.Event()
    if was_set:
        event.set()
    return event


def _weak_value_dictionary(items: dict[Any, Any]) -> weakref.WeakValueDictionary[Any, Any]:
    return weakref.WeakValueDictionary(items)


def _defaultdict(factory: type, items: dict[Any, Any]) -> collections.defaultdict[Any, Any]:
    return collections.defaultdict(factory, items)


def _versioned_key_store(cls: type, versions: dict[str, list[Any]]) -> Any:
    store = cls()
    for key, keys in versions.items():
        dict.__setitem__(store, key, keys)
    return store


def _private_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem, password=None)


_BUILTIN_FACTORIES = (dict, list, set)


def _picklable_factory(factory: Callable[[], Any]) -> type | None:
    """The builtin container type a lambda factory makes (``lambda: {}`` -> dict), or None."""
    if factory in _BUILTIN_FACTORIES:
        return None  # pickle handles these itself
    made = factory()
    kind = type(made)
    return kind if kind in _BUILTIN_FACTORIES and not made else None


class _BackendPickler(pickle.Pickler):
    """A pickler that rebuilds the parts of moto's state ``pickle`` refuses (see the module docstring).

    ``reducer_override`` runs for every object that is not a plain builtin, so which reducer a type
    needs is decided once per type and remembered.
    """

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._execution = resolve_dotted(_EXECUTION)
        self._key_store = resolve_dotted(_VERSIONED_KEY_STORE)
        self._stream_shard = resolve_dotted(_STREAM_SHARD)
        self._reducers: dict[type, Callable[[Any], Any] | None] = {}

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind not in self._reducers:
            self._reducers[kind] = self._reducer_for(kind)
        reducer = self._reducers[kind]
        return NotImplemented if reducer is None else reducer(obj)

    def _reducer_for(self, kind: type) -> Callable[[Any], Any] | None:
        if issubclass(kind, type(threading.RLock())):
            return lambda _: (_new_rlock, ())
        if issubclass(kind, type(threading.Lock())):
            return lambda _: (_new_lock, ())
        if issubclass(kind, threading.Condition):
            return lambda _: (_new_condition, ())
        if issubclass(kind, threading.Event):
            return lambda event: (_new_event, (event.is_set(),))
        if issubclass(kind, self._key_store):
            # Its items() yields the newest version of each key only; pickle would drop every older one.
            return lambda store: (
                _versioned_key_store,
                (type(store), {key: list(dict.__getitem__(store, key)) for key in dict(store)}),
            )
        if issubclass(kind, self._stream_shard):
            return _reduce_stream_shard
        if issubclass(kind, weakref.WeakValueDictionary):
            return lambda index: (_weak_value_dictionary, (dict(index.items()),))
        if issubclass(kind, collections.defaultdict):
            return _reduce_defaultdict
        if kind.__module__.startswith("cryptography.") and hasattr(kind, "private_bytes"):
            return lambda key: (_private_key, (_pem(key),))
        if issubclass(kind, self._execution):
            return lambda execution: (_restore_execution, (_execution_record(execution), _pickled_history(execution)))
        return None


def _reduce_stream_shard(shard: Any) -> Any:
    state = dict(shard.__dict__)
    state["starting_sequence_number"] = int(shard.starting_sequence_number) + len(shard.items)
    state["items"] = []
    return (_stream_shard, (type(shard), state))


def _stream_shard(kind: type, state: dict[str, Any]) -> Any:
    shard = kind.__new__(kind)
    shard.__dict__.update(state)
    return shard


def _reduce_defaultdict(obj: collections.defaultdict[Any, Any]) -> Any:
    factory = _picklable_factory(obj.default_factory) if obj.default_factory is not None else None
    return NotImplemented if factory is None else (_defaultdict, (factory, dict(obj)))


def _pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    data: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return data


# ------------------------------------------------------------- step functions executions


class _RestoredEventManager:
    def __init__(self, history: list[dict[str, Any]]) -> None:
        self._history = history

    def get_event_history(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._history)


class _NoCallbacks:
    """Task tokens and map runs of a restored execution: none is pending any more."""

    def notify(self, callback_id: str, outcome: Any) -> bool:
        return False

    def heartbeat(self, callback_id: str) -> bool:
        return False

    def get(self, key: str) -> None:
        return None

    def get_all(self) -> list[Any]:
        return []


class _RestoredEnvironment:
    def __init__(self, history: list[dict[str, Any]]) -> None:
        self.event_manager = _RestoredEventManager(history)
        self.callback_pool_manager = _NoCallbacks()
        self.map_run_record_pool_manager = _NoCallbacks()


class RestoredExecutionWorker:
    """Stands in for the worker of an execution restored from a snapshot: its thread is gone."""

    def __init__(self, history: list[dict[str, Any]]) -> None:
        self.env = _RestoredEnvironment(history)

    def stop(self, stop_date: datetime, cause: str | None, error: str | None) -> None:
        """Stopping an ended execution changes nothing (as on AWS, where it is refused)."""


#: the execution attributes that are its record; everything else belongs to its (gone) worker.
_EXECUTION_FIELDS = (
    "name",
    "sm_type",
    "role_arn",
    "exec_arn",
    "execution_arn",
    "account_id",
    "region_name",
    "state_machine",
    "_cloud_watch_logging_session",
    "input_data",
    "input_details",
    "trace_header",
    "exec_status",
    "stop_date",
    "output",
    "output_details",
    "error",
    "cause",
    "_activity_store",
    "state_machine_arn",
    "start_date",
    "execution_input",
)


def _execution_record(execution: Any) -> dict[str, Any]:
    record = {name: getattr(execution, name) for name in _EXECUTION_FIELDS if hasattr(execution, name)}
    record["__class__"] = type(execution)
    return record


def _history(manager: Any) -> list[dict[str, Any]]:
    if isinstance(manager, _RestoredEventManager):
        return manager._history  # nothing appends to it but this thread
    events, mutex = getattr(manager, "_history_event_list", None), getattr(manager, "_mutex", None)
    if events is None or mutex is None:
        return list(manager.get_event_history())  # a deep copy, under its lock
    # A shallow copy under moto's own lock: an event is never changed once appended, and moto's
    # get_event_history deep-copies every event of every execution ever run, on every snapshot.
    with mutex:
        return list(events)


#: An ended execution's history, pickled, by its event manager: it takes no more events (a restored one only
#: its ``ExecutionAborted``, which changes its length), so a snapshot copies these bytes instead of pickling
#: every event of every execution ever run again; that made each snapshot cost more than the last.
_ENDED_HISTORIES: weakref.WeakKeyDictionary[Any, tuple[int, bytes]] = weakref.WeakKeyDictionary()


def _pickled_history(execution: Any) -> bytes:
    env = getattr(execution.exec_worker, "env", None)
    if env is None:
        return _pickle([])
    manager = env.event_manager
    history = _history(manager)
    if not (isinstance(manager, _RestoredEventManager) or is_sealed(manager)):
        return _pickle(history)
    ended = _ENDED_HISTORIES.get(manager)
    if ended is None or ended[0] != len(history):
        ended = (len(history), _pickle(history))
        _ENDED_HISTORIES[manager] = ended
    return ended[1]


def _pickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    _BackendPickler(buffer).dump(value)
    return buffer.getvalue()


def _restore_execution(record: dict[str, Any], history: bytes | list[dict[str, Any]]) -> Any:
    cls = record.pop("__class__")
    execution = cls.__new__(cls)
    execution.__dict__.update(record)
    if isinstance(history, bytes):
        history = pickle.loads(history)  # noqa: S301 # nosec B301 - from our own snapshot, like the rest of it
    execution.exec_worker = RestoredExecutionWorker(history)
    return execution


def is_running(execution: Any) -> bool:
    return str(getattr(execution.exec_status, "value", execution.exec_status)) == "RUNNING"


def executions() -> Iterator[Any]:
    """Every Step Functions execution in the executing backend, of every account and region."""
    for _, _, backend in resolve_dotted(BACKENDS["stepfunctions"]).iter_backends():
        for state_machine in backend.state_machines:
            yield from state_machine.executions


def _running_executions() -> frozenset[str] | None:
    """The ARNs of the RUNNING executions; None when a request thread changed the backends meanwhile."""
    try:
        return frozenset(str(execution.exec_arn) for execution in executions() if is_running(execution))
    except RuntimeError:  # a dict changed size under the iteration: look again next interval
        return None


def abort_execution(execution: Any, cause: str = RESTART_CAUSE, *, now: datetime | None = None) -> None:
    """End a restored execution ABORTED (status, stop date, error, cause, an ``ExecutionAborted`` event).

    Only for executions without a live worker: a live one is stopped through moto's StopExecution.
    """
    stopped = now or datetime.now(UTC)
    execution.exec_status = resolve_dotted("moto.stepfunctions.parser.api.ExecutionStatus").ABORTED
    execution.stop_date = stopped
    execution.error = RESTART_ERROR
    execution.cause = cause
    worker = execution.exec_worker
    if isinstance(worker, RestoredExecutionWorker):
        history = worker.env.event_manager._history
        last_id = max((int(event.get("id", 0)) for event in history), default=0)
        history.append(
            {
                "timestamp": stopped,
                "type": "ExecutionAborted",
                "id": last_id + 1,
                "previousEventId": last_id,
                "executionAbortedEventDetails": {"error": RESTART_ERROR, "cause": cause},
            }
        )


def abort_orphaned_executions(now: datetime | None = None) -> list[Any]:
    """End ABORTED every execution that was RUNNING when the last cloud died; returns them."""
    orphans = [execution for execution in executions() if is_running(execution)]
    for execution in orphans:
        abort_execution(execution, now=now)
        LOG.warning("execution %s was running when the local cloud stopped: ABORTED", execution.exec_arn)
    return orphans


#: The seam the Step Functions status-change emitter plugs into (``set_status_change_emitter``).
_STATUS_CHANGE_EMITTER: list[Callable[[Any], None]] = []


def set_status_change_emitter(emitter: Callable[[Any], None] | None) -> None:
    """Route ``emit_status_change`` to ``emitter`` (the local cloud's EventBridge "Execution Status
    Change" publisher); None unplugs it."""
    _STATUS_CHANGE_EMITTER.clear()
    if emitter is not None:
        _STATUS_CHANGE_EMITTER.append(emitter)


def emit_status_change(execution: Any) -> bool:
    """Publish a Step Functions "Execution Status Change" event for ``execution``; False when no
    emitter is plugged in (logged) or it failed (logged: one execution never blocks a restart)."""
    if not _STATUS_CHANGE_EMITTER:
        LOG.warning("no status-change emitter is plugged in: %s ended ABORTED silently", execution.exec_arn)
        return False
    try:
        _STATUS_CHANGE_EMITTER[0](execution)
    except Exception:
        LOG.exception("could not emit the status change of %s", execution.exec_arn)
        return False
    return True


# -------------------------------------------------------------------------- capture/install


@functools.cache
def moto_version() -> str:
    return package_version("moto")


#: what every ``BackendDict`` has; anything else on one is service-wide state (S3's bucket namespace).
_BACKEND_DICT_BASE_ATTRIBUTES = frozenset(
    {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}
)


def _live_backends() -> dict[str, dict[str, dict[str, Any]]]:
    live: dict[str, dict[str, dict[str, Any]]] = {}
    for service, dotted in BACKENDS.items():
        for account, region, backend in resolve_dotted(dotted).iter_backends():
            live.setdefault(service, {}).setdefault(account, {})[region] = backend
    return live


def _service_wide_state() -> dict[str, dict[str, Any]]:
    """Per service, the attributes its ``BackendDict`` holds besides the backends (S3: which account
    owns each bucket name; without it a restored bucket is invisible to CreateBucket and replaced)."""
    return {
        service: {
            name: value
            for name, value in vars(resolve_dotted(dotted)).items()
            if name not in _BACKEND_DICT_BASE_ATTRIBUTES
        }
        for service, dotted in BACKENDS.items()
    }


def capture(*, attempts: int = 5) -> bytes:
    """Pickle every backend (one pickle, so shared objects stay shared).

    Request threads keep running meanwhile; a dict that changes size under the pickler raises
    RuntimeError, and the capture is simply taken again.
    """
    atomic = _dynamodb_write_lock()
    for attempt in range(1, attempts + 1):
        buffer = io.BytesIO()
        try:
            # DynamoDB's single-item writes are serialized on this lock: a snapshot never holds half a transaction.
            with atomic:
                _BackendPickler(buffer).dump(
                    {
                        "format": FORMAT_VERSION,
                        "moto": moto_version(),
                        "backends": _live_backends(),
                        "service_wide": _service_wide_state(),
                    }
                )
        except RuntimeError as exc:
            if attempt == attempts:
                raise SnapshotError(f"the local cloud's state kept changing while it was captured: {exc}") from exc
            continue
        return buffer.getvalue()
    raise AssertionError("unreachable")  # pragma: no cover


def _dynamodb_write_lock() -> contextlib.AbstractContextManager[Any]:
    from conveyor_local.moto_patches.dynamodb import DYNAMODB_LOCK

    return DYNAMODB_LOCK


def install(blob: bytes, source: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Put the backends of a snapshot in place of moto's (call before the server takes requests)."""
    try:
        data = pickle.loads(blob)  # noqa: S301 # nosec B301 - our own snapshot, from our own state dir
    except Exception as exc:
        raise SnapshotError(
            f"{source} cannot be read back ({type(exc).__name__}: {exc}); "
            "start with `conveyor local up --fresh` to discard it"
        ) from exc
    if data.get("format") != FORMAT_VERSION or data.get("moto") != moto_version():
        raise SnapshotError(
            f"{source} was written by format {data.get('format')} on moto {data.get('moto')}, this is format "
            f"{FORMAT_VERSION} on moto {moto_version()}; start with `conveyor local up --fresh` to discard it"
        )
    backends: dict[str, dict[str, dict[str, Any]]] = data["backends"]
    for service, attributes in data["service_wide"].items():
        backend_dict = resolve_dotted(BACKENDS[service])
        for name, value in attributes.items():
            setattr(backend_dict, name, value)
    for service, accounts in backends.items():
        backend_dict = resolve_dotted(BACKENDS[service])
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backend_dict[account][region] = backend
    return backends


# ------------------------------------------------------------------------------ the store


@dataclass
class SnapshotStore:
    """``<state-dir>/snapshot/``: the last snapshot and its manifest."""

    directory: Path

    @property
    def snapshot_path(self) -> Path:
        return self.directory / SNAPSHOT_FILE

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_FILE

    def manifest(self) -> SnapshotManifest | None:
        try:
            return SnapshotManifest.model_validate_json(self.manifest_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            LOG.warning("%s is unreadable (%s); the snapshot itself is what counts", self.manifest_path, exc)
            return None

    def read(self) -> bytes | None:
        try:
            return self.snapshot_path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, blob: bytes, manifest: SnapshotManifest) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.snapshot_path, blob)
        _write_atomically(self.manifest_path, (manifest.model_dump_json(indent=2) + "\n").encode())

    def discard(self) -> bool:
        """Remove the snapshot and its manifest; True when there was one."""
        existed = self.snapshot_path.exists()
        for path in (self.snapshot_path, self.manifest_path):
            path.unlink(missing_ok=True)
        return existed


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old file or the new one, whole."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# --------------------------------------------------------------------------- change tracking

#: Operation names (X-Amz-Target suffix or query ``Action``) that never change state.
_READ_PREFIXES = ("Describe", "Get", "List", "Query", "Scan", "BatchGet", "Head", "Lookup", "Filter", "Test")


def is_read_only(method: str, operation: str | None) -> bool:
    """True for a request that cannot change state: GET/HEAD, or a named read operation."""
    if method in {"GET", "HEAD", "OPTIONS"}:
        return True
    return operation is not None and operation.startswith(_READ_PREFIXES)


def _operation(environ: dict[str, Any]) -> str | None:
    """The API operation a JSON (``X-Amz-Target``) or query (``Action=``) protocol request names."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return str(action[0])
    if str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body after us
        action = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
        return str(action[0]) if action else None
    return None


class ChangeTracker:
    """Counts the changes to the local cloud's state; wakes whoever waits for one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = 0
        self.changed = threading.Event()

    @property
    def sequence(self) -> int:
        with self._lock:
            return self._sequence

    def resume(self, sequence: int) -> None:
        """Go on from the restored snapshot's last change, so sequence numbers only grow across restarts."""
        with self._lock:
            self._sequence = max(self._sequence, sequence)

    def record(self) -> int:
        """One more change happened (already applied); returns its sequence number."""
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        self.changed.set()
        return sequence

    def middleware(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """Wrap a WSGI app: each response to a request that may change state records one change and
        carries its sequence number in ``x-conveyor-local-change``."""

        def tracked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if is_read_only(str(environ.get("REQUEST_METHOD", "GET")), _operation(environ)):
                return app(environ, start_response)

            def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                # start_response runs once moto's handler returned: the change is applied by now.
                return start_response(status, [*headers, (CHANGE_HEADER, str(self.record()))], *args)

            return app(environ, start)

        return tracked


# ------------------------------------------------------------------------------ snapshotter


@dataclass
class Snapshotter:
    """Writes a snapshot when something changed, at most every ``interval`` seconds, and on ``stop``."""

    store: SnapshotStore
    tracker: ChangeTracker
    interval: float = DEFAULT_INTERVAL_SECONDS
    generation: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    _covered: int = -1

    def start(self) -> None:
        previous = self.store.manifest()
        self.generation = previous.generation if previous else 0
        self._thread = threading.Thread(target=self._run, name="conveyor-local-snapshots", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        running = _running_executions()
        while not self._stopping.is_set():
            if not self.tracker.changed.wait(self.interval):
                # An execution ending is a change no request made: its thread just finished.
                now_running = _running_executions()
                if running is not None and now_running is not None and running - now_running:
                    self.tracker.record()
                running = now_running if now_running is not None else running
                continue
            if self._stopping.is_set():
                return
            started = time.perf_counter()
            try:
                self.snapshot()
            except Exception:
                LOG.exception("snapshot of the local cloud failed; the previous one is kept")
            spent = time.perf_counter() - started
            running = _running_executions()
            # Debounce (changes meanwhile go into the next one), and rest in proportion to what the snapshot
            # cost: the server's requests wait while one is captured, however large the state has grown.
            self._stopping.wait(max(self.interval, REST_PER_SNAPSHOT_SECOND * spent))

    def snapshot(self) -> SnapshotManifest | None:
        """Write a snapshot now unless nothing changed since the last one; returns its manifest."""
        with self._write_lock:
            self.tracker.changed.clear()
            covered = self.tracker.sequence
            if covered == self._covered and self.store.snapshot_path.exists():
                return None
            started = time.perf_counter()
            blob = capture()
            captured = time.perf_counter() - started
            self.generation += 1
            manifest = SnapshotManifest(
                moto_version=moto_version(),
                generation=self.generation,
                changes=covered,
                taken_at=datetime.now(UTC),
                size_bytes=len(blob),
                capture_seconds=round(captured, 4),
            )
            self.store.write(blob, manifest)
            self._covered = covered
            LOG.debug("snapshot %d (%d bytes) in %.3fs", self.generation, len(blob), time.perf_counter() - started)
            return manifest

    def stop(self) -> SnapshotManifest | None:
        """Stop the thread and write the last snapshot (the server must no longer take requests)."""
        self._stopping.set()
        self.tracker.changed.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.tracker.record()  # whatever ran since the last request (an execution ending) is in this one
        return self.snapshot()


# --------------------------------------------------------------------------- restore summary


class RestoreSummary(BaseModel):
    """What a start restored, for ``conveyor local up`` to say."""

    fresh: bool = Field(description="started empty on purpose (--fresh)")
    restored: bool = Field(description="a snapshot was found and loaded")
    generation: int | None = None
    taken_at: datetime | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    aborted_executions: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        if self.fresh:
            return "started empty (--fresh: any saved state was discarded)"
        if not self.restored:
            return "started empty (no saved state)"
        counts = ", ".join(f"{count} {kind}" for kind, count in self.counts.items() if count) or "nothing"
        text = f"restored {counts}"
        if self.aborted_executions:
            text += f"; {len(self.aborted_executions)} running execution(s) ended ABORTED ({RESTART_CAUSE})"
        return text


def _paged(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page.get(key, [])]


def inventory(endpoint_url: str, region: str) -> dict[str, int]:
    """How many of each kind of resource the local cloud holds, read through its own API."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the local cloud's fake credentials
        region_name=region,
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    lambda_, s3, dynamodb, sfn = client("lambda"), client("s3"), client("dynamodb"), client("stepfunctions")
    functions = [f["FunctionName"] for f in _paged(lambda_, "list_functions", "Functions")]
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    tables = _paged(dynamodb, "list_tables", "TableNames")
    machines = [m["stateMachineArn"] for m in _paged(sfn, "list_state_machines", "stateMachines")]
    return {
        "functions": len(functions),
        "function versions": sum(
            len(
                [
                    v
                    for v in _paged(lambda_, "list_versions_by_function", "Versions", FunctionName=f)
                    if v["Version"] != "$LATEST"
                ]
            )
            for f in functions
        ),
        "aliases": sum(len(_paged(lambda_, "list_aliases", "Aliases", FunctionName=f)) for f in functions),
        "buckets": len(buckets),
        "object versions": sum(len(_paged(s3, "list_object_versions", "Versions", Bucket=b)) for b in buckets),
        "tables": len(tables),
        "items": sum(
            page.get("Count", 0)
            for table in tables
            for page in dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
        ),
        "state machines": len(machines),
        "executions": sum(len(_paged(sfn, "list_executions", "executions", stateMachineArn=m)) for m in machines),
        "topics": len(_paged(client("sns"), "list_topics", "Topics")),
        "queues": len(_paged(client("sqs"), "list_queues", "QueueUrls")),
        "event rules": len(_paged(client("events"), "list_rules", "Rules")),
        "roles": len(_paged(client("iam"), "list_roles", "Roles")),
        "alarms": len(_paged(client("cloudwatch"), "describe_alarms", "MetricAlarms")),
        "log groups": len(_paged(client("logs"), "describe_log_groups", "logGroups")),
    }
