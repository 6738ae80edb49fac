"""How a Step Functions execution ends on the local cloud: as on AWS, and announced as on AWS.

moto 5.2.5 runs executions but ends them unlike AWS (the seams are listed, with the rest, in
``conveyor_local.moto_patches.stepfunctions``; ``moto_patches.apply`` installs these replacements):

- ``StopExecution`` only asks the interpreter to stop. The execution stays RUNNING until its
  thread notices, which is after the Lambda call in flight returns; inside a Map the stop then
  surfaced as ``States.Runtime`` (``AttributeError('str' object has no attribute 'get')``)
  because ``Environment.set_error`` overwrites the stopped state; a Task whose call returned
  after the stop went on to set its next state; and the ``error``/``cause`` given to the stop
  were dropped. Here a stop ends the execution ABORTED at once (``stopDate``, ``error``,
  ``cause``), the history ends with ``ExecutionAborted`` and takes no later event, no state runs
  after it, and a Lambda call in flight runs to its end in its worker with its result discarded.
- A timed-out execution (``TimeoutSeconds``) got its ``ExecutionTimedOut`` event only once its
  last state returned; it is now appended when the execution times out, and the history sealed.
- No "Step Functions Execution Status Change" event was ever emitted. Every status change of a
  STANDARD execution (RUNNING at start, SUCCEEDED, FAILED, TIMED_OUT, ABORTED) now puts one on the
  account's default EventBridge bus, shaped as AWS sends it, and matching rules deliver it
  through the patched ``Rule.send_to_targets`` (a Lambda target is invoked asynchronously).

``abort_orphaned_execution(execution, cause)`` is for a restarted local cloud: it ends an execution
that was RUNNING when the previous server died (no thread runs it any more) ABORTED with ``cause``
and emits its status-change event, as the reconciler on AWS would see it.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger(__name__)

SFN_EXECUTION = "moto.stepfunctions.parser.backend.execution"
SFN_WORKER = "moto.stepfunctions.parser.backend.execution_worker.ExecutionWorker"
SFN_ENVIRONMENT = "moto.stepfunctions.parser.asl.eval.environment.Environment"
SFN_EVENT_MANAGER = "moto.stepfunctions.parser.asl.eval.event.event_manager.EventManager"
SFN_PROGRAM_STATE = "moto.stepfunctions.parser.asl.eval.program_state"
SFN_API = "moto.stepfunctions.parser.api"
SFN_RESPONSE = "moto.stepfunctions.responses.StepFunctionResponse"

STATUS_CHANGE_SOURCE = "aws.states"
STATUS_CHANGE_DETAIL_TYPE = "Step Functions Execution Status Change"
#: How long a stop waits for an execution thread that is still parsing its definition to build its
#: environment (moto parses the ASL on the thread, ~0.2 s for Conveyor's); never for a Lambda call.
ENVIRONMENT_WAIT_SECONDS = 30.0

_ABORTED_MARK = "_conveyor_aborted"
_SEALED_MARK = "_conveyor_sealed"
#: Serializes "is it still RUNNING?" with "it ended": a stop racing the execution's own end.
_LIFECYCLE_LOCK = threading.RLock()
#: Serializes appending to a history with sealing it, so no event lands after the terminal one.
_HISTORY_LOCK = threading.RLock()


def _moto(name: str) -> Any:
    from conveyor_local.moto_patches.registry import resolve_dotted

    return resolve_dotted(name)


def _original(name: str) -> Any:
    from conveyor_local.moto_patches.registry import original

    return original(name)


def _status(execution: Any) -> str:
    status = execution.exec_status
    return str(getattr(status, "value", status))


def _is_standard(execution: Any) -> bool:
    sm_type = getattr(execution, "sm_type", "STANDARD")
    return str(getattr(sm_type, "value", sm_type)) == "STANDARD"


def _environment(execution: Any) -> Any:
    worker = getattr(execution, "exec_worker", None)
    return None if worker is None else worker.env


# ------------------------------------------------------------------------------ history


def is_sealed(event_manager: Any) -> bool:
    """True once the execution ended: its history takes no more events."""
    return bool(getattr(event_manager, _SEALED_MARK, False))


def add_event(self: Any, *args: Any, **kwargs: Any) -> int:
    """Replacement for ``EventManager.add_event``: a sealed history (its execution ended) takes no more events.

    An event a stopped execution's thread still produces (the Task whose Lambda call returned after
    the stop, the Map iteration it was in) is dropped, as AWS records nothing after ExecutionAborted.
    """
    with _HISTORY_LOCK:
        if is_sealed(self):
            return len(self._history_event_list)
        return int(_original(f"{SFN_EVENT_MANAGER}.add_event")(self, *args, **kwargs))


def _seal_history(env: Any, terminal_event: str | None, details: dict[str, Any] | None = None) -> None:
    """Append ``terminal_event`` (unless the history already ends with it) and accept no event after it."""
    history_event_type = _moto(f"{SFN_API}.HistoryEventType")
    manager = env.event_manager
    with _HISTORY_LOCK:
        if is_sealed(manager):
            return
        if terminal_event is not None:
            events = manager.get_event_history()
            if not events or events[-1]["type"] != terminal_event:
                event_details = _moto("moto.stepfunctions.parser.asl.eval.event.event_detail.EventDetails")
                manager.add_event(
                    context=env.event_history_context,
                    event_type=history_event_type(terminal_event),
                    event_details=event_details(**details) if details else None,
                )
        setattr(manager, _SEALED_MARK, True)


# --------------------------------------------------------------------------- program state


def _keeps_its_end(env: Any) -> bool:
    stopped = _moto(f"{SFN_PROGRAM_STATE}.ProgramStopped")
    timed_out = _moto(f"{SFN_PROGRAM_STATE}.ProgramTimedOut")
    return isinstance(env._program_state, stopped | timed_out)


def set_error(self: Any, error: Any) -> None:
    """Replacement for ``Environment.set_error``: a stopped or timed-out program stays so.

    moto overwrote the stop with the error the interrupted Map iteration raised on its way out.
    """
    with self._state_mutex:
        if _keeps_its_end(self):
            return
        _original(f"{SFN_ENVIRONMENT}.set_error")(self, error)


def set_timed_out(self: Any) -> None:
    """Replacement for ``Environment.set_timed_out``: a stopped program is not turned TIMED_OUT afterwards."""
    with self._state_mutex:
        if _keeps_its_end(self):
            return
        _original(f"{SFN_ENVIRONMENT}.set_timed_out")(self)


# ------------------------------------------------------------------------------- ending


def _wait_for_environment(execution: Any, timeout: float) -> Any:
    """The execution's interpreter environment once it runs (its thread builds it after parsing the ASL)."""
    deadline = time.monotonic() + timeout
    while True:
        env = _environment(execution)
        if env is not None and env._program_state is not None:
            return env
        if time.monotonic() >= deadline:
            return env
        time.sleep(0.01)


def abort_execution(
    execution: Any, *, error: str | None = None, cause: str | None = None, wait_for_thread: bool = True
) -> bool:
    """End a RUNNING execution ABORTED now, as ``StopExecution`` does on AWS; False if it had already ended.

    Status, ``stopDate``, ``error`` and ``cause`` are set before returning; the history gets its
    ``ExecutionAborted`` and is sealed; the interpreter is told to stop, so no further state runs.
    A Lambda call in flight is not waited for: its worker finishes it and the result is dropped.
    """
    execution_status = _moto(f"{SFN_API}.ExecutionStatus")
    with _LIFECYCLE_LOCK:
        if execution.exec_status != execution_status.RUNNING:
            return False
        stop_date = datetime.now(UTC)
        execution.exec_status = execution_status.ABORTED
        execution.stop_date = stop_date
        execution.error = error or None
        execution.cause = cause or None
        setattr(execution, _ABORTED_MARK, True)
    env = _wait_for_environment(execution, ENVIRONMENT_WAIT_SECONDS if wait_for_thread else 0.0)
    if env is not None:
        aborted = {key: value for key, value in (("error", error), ("cause", cause)) if value}
        _seal_history(env, "ExecutionAborted", {"executionAbortedEventDetails": aborted})
        env.set_stop(stop_date=stop_date, cause=cause, error=error)
    emit_status_change(execution)
    return True


def abort_orphaned_execution(execution: Any, cause: str) -> bool:
    """End an execution left RUNNING by a local cloud that died: ABORTED with ``cause``, status-change event emitted.

    For the restart path: no thread runs ``execution`` any more, so nothing is waited for. Returns
    False (and changes nothing) when the execution is not RUNNING.
    """
    return abort_execution(execution, cause=cause, wait_for_thread=False)


def running_executions() -> Iterator[Any]:
    """Every RUNNING execution of every account and region of the executing Step Functions backend."""
    backends = _moto("moto.stepfunctions.parser.models.stepfunctions_parser_backends")
    for account_id in list(backends.keys()):
        for region in list(backends[account_id].keys()):
            for state_machine in list(backends[account_id][region].state_machines):
                for execution in list(state_machine.executions):
                    if _status(execution) == "RUNNING":
                        yield execution


def execution_stop(self: Any, stop_date: Any = None, error: str | None = None, cause: str | None = None) -> None:
    """Replacement for the executing backend's ``Execution.stop``: ABORTED at once (see ``abort_execution``)."""
    abort_execution(self, error=error, cause=cause)


def stop_execution_response(self: Any) -> Any:
    """Replacement for ``StepFunctionResponse.stop_execution``: keep the ``error`` and ``cause`` moto drops."""
    from moto.core.responses import ActionResult

    backend = self.stepfunction_backend
    arn = self._get_param("executionArn")
    execution = backend.describe_execution(arn)  # moto's own ExecutionDoesNotExist / validation errors
    if not hasattr(execution, "exec_status"):
        execution = backend.stop_execution(arn)  # the non-executing backend: moto's own behaviour
    else:
        abort_execution(execution, error=self._get_param("error"), cause=self._get_param("cause"))
    return ActionResult({"stopDate": execution.stop_date})


def terminated(self: Any) -> None:
    """Replacement for ``BaseExecutionWorkerCommunication.terminated``: a stopped execution keeps its stop;
    every other end is moto's, then the history is sealed and the status-change event emitted."""
    execution = self.execution
    with _LIFECYCLE_LOCK:
        if getattr(execution, _ABORTED_MARK, False):
            return
        _original(f"{SFN_EXECUTION}.BaseExecutionWorkerCommunication.terminated")(self)
    env = _environment(execution)
    if env is not None:
        terminal = {"SUCCEEDED": "ExecutionSucceeded", "FAILED": "ExecutionFailed", "TIMED_OUT": "ExecutionTimedOut"}
        status = _status(execution)
        details: dict[str, Any] | None = {"executionTimedOutEventDetails": {}} if status == "TIMED_OUT" else None
        _seal_history(env, terminal.get(status), details)
    emit_status_change(execution)


def worker_start(self: Any) -> None:
    """Replacement for ``ExecutionWorker.start``: announce RUNNING before the first state can end it."""
    execution = getattr(self._execution_communication, "execution", None)
    if execution is not None:
        emit_status_change(execution)
    _original(f"{SFN_WORKER}.start")(self)


# ------------------------------------------------------------------- status-change events


def _epoch_millis(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    return int(float(value) * 1000)


def _redrive(status: str) -> tuple[str, str]:
    if status in {"RUNNING", "SUCCEEDED"}:
        return "NOT_REDRIVABLE", f"Execution is {status} and cannot be redriven"
    return "REDRIVABLE", "Execution can be redriven"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def status_change_detail(execution: Any) -> dict[str, Any]:
    """The ``detail`` of a "Step Functions Execution Status Change" event for ``execution`` as it is now."""
    status = _status(execution)
    succeeded = status == "SUCCEEDED"
    redrive_status, redrive_reason = _redrive(status)
    state_machine = execution.state_machine
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": getattr(state_machine, "source_arn", None) or state_machine.arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_millis(execution.start_date),
        "stopDate": _epoch_millis(execution.stop_date) if status != "RUNNING" else None,
        "input": _json(execution.input_data),
        "output": _json(execution.output) if succeeded else None,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if succeeded else None,
        "error": execution.error,
        "cause": execution.cause,
        "redriveCount": 0,
        "redriveDate": None,
        "redriveStatus": redrive_status,
        "redriveStatusReason": redrive_reason,
    }


def status_change_event(execution: Any) -> dict[str, Any]:
    """The whole EventBridge event (``time`` in epoch seconds, as moto's rules and targets expect it)."""
    now = time.time()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATUS_CHANGE_DETAIL_TYPE,
        "source": STATUS_CHANGE_SOURCE,
        "account": execution.account_id,
        "time": now,
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": status_change_detail(execution),
        "ingestion-time": now,
    }


def emit_status_change(execution: Any) -> None:
    """Put the execution's status-change event on its account's default bus (STANDARD executions only).

    Best effort, as on AWS: a rule or target that fails is logged and never fails the execution.
    """
    if not _is_standard(execution):
        return
    try:
        event = status_change_event(execution)
        backend = _moto("moto.events.models.events_backends")[execution.account_id][execution.region_name]
        rules = list(backend.describe_event_bus("default").rules.values())
    except Exception:
        LOG.exception("could not build the status-change event of %s", execution.exec_arn)
        return
    for rule in rules:
        try:
            rule.send_to_targets(copy.deepcopy(event))
        except Exception:
            LOG.exception("rule %s could not take the status-change event of %s", rule.name, execution.exec_arn)
