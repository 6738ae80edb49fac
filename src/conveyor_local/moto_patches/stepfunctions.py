"""Step Functions: time on the local scale, AWS's error names and causes, and how an execution ends.

Seams (moto 5.2.5) and why:

``...wait.wait_function.wait_function.WaitFunction._wait_interval(self, env, wait_seconds)``
and ``...common.retry.retrier_decl.time``
    Step Functions Wait states and Retry back-off really sleep; both are multiplied by
    ``CONVEYOR_LOCAL_TIME_SCALE`` (e.g. 0.01) so a pipeline with minutes of bake time runs in
    seconds. A Wait still ends early when its execution is stopped.

``...common.timeouts.timeout.TimeoutSecondsPath._eval_seconds(self, env)``
    a task timeout read from the state (``TimeoutSecondsPath``: the approval window of a
    ``.waitForTaskToken`` task, hours on AWS) is scaled the same way. Fixed ``TimeoutSeconds`` (a
    stage's own limit, which bounds real work rather than a wait) is left as written.

``...common.timeouts.heartbeat.HeartbeatSecondsPath._eval_seconds(self, env)``
    a task-token hook's ``HeartbeatSecondsPath`` (read from the spec, like its ``TimeoutSecondsPath``) is
    scaled too, so a heartbeat window stays the same fraction of the timeout it sits in; without it a hook
    on a 0.01 time scale would have 100 times longer to send its heartbeat than to finish.

``...eval.callback.callback.CallbackEndpoint.setup_heartbeat_endpoint(self, heartbeat_seconds)`` and
``...CallbackEndpoint.notify_heartbeat(self)``
    moto invokes a ``.waitForTaskToken`` task's resource first and only then sets up its heartbeat
    endpoint. A hook invoked asynchronously answers from its own worker at once, so it can land in that
    gap: its ``SendTaskHeartbeat`` was refused ``InvalidToken``, and its ``SendTaskSuccess`` was stored but
    never woke the heartbeat wait (the task then ended ``States.Timeout`` with the answer in hand). On AWS
    the token is valid from the moment the task is scheduled. A heartbeat in the gap is now kept and an
    answer in the gap wakes the wait as soon as the heartbeat endpoint exists.

``...state.exec.state_task.state_task.StateTask._from_error(self, env, ex)``
    moto reports every ``TimeoutError`` of a task as ``States.Timeout``, its heartbeat timeout
    (``HeartbeatTimeoutError``, relied on) included; AWS names a missed heartbeat ``States.HeartbeatTimeout``,
    and a hook's notice says which one happened. That one error is named so; every other is moto's own.

``...state_map.iteration.iteration_worker.CustomErrorName``
    when a Map iteration fails, moto names the Map's error with ``CustomErrorName``, which refuses
    any name starting with ``States.``; so an iteration ending in ``States.Timeout`` surfaced as
    ``States.Runtime`` instead of the iteration's own error, as AWS reports it. We give the
    iteration worker a stand-in that names ``States.*`` errors with moto's own ``StatesErrorName``
    (relied on: ``StatesErrorName.from_name``) and every other one as before.

``moto.stepfunctions.responses.StepFunctionResponse.send_task_failure(self)``
    moto's handler drops the request's ``cause`` (it passes only ``error`` to the backend), so a
    ``Catch`` after a rejected ``.waitForTaskToken`` task got ``"Cause": null``. We pass both; the
    executing backend's ``send_task_failure(task_token, error, cause)`` is moto's own.

``moto.stepfunctions.parser.models.StepFunctionsParserBackend.start_execution(self, state_machine_arn, name, ...)``
    a ``StartExecution`` without a ``name`` (the console's "Start execution" and the CLI may leave it out) got an
    execution named ``None``: a second one then failed ``ExecutionAlreadyExists``. Step Functions names such an
    execution with a new UUID; so do we, and hand every other call to moto's own.

``moto.stepfunctions.parser.backend.execution.Execution.get_start_execution_details(self)``
    Step Functions keeps an execution's start to the millisecond, and its context object says it as ISO 8601 text:
    ``$$.Execution.StartTime`` reads ``2026-12-06T20:14:13.192Z``, the instant DescribeExecution's ``startDate`` and
    the status-change event's ``startDate`` (epoch milliseconds) name. moto put the start ``datetime`` itself in the
    context, microseconds and all: a state passing it on reached a Lambda function as Python's ``str()`` of it, an
    execution ending with it in its output could not be described (HTTP 500), and a key built from it (a lock
    queue's waiter) never matched one built from the event (the reconciler's). The start is cut to the millisecond
    and the context gets AWS's text.

``moto.stepfunctions.parser.models.StepFunctionsParserBackend.send_task_failure(self, task_token, error, cause)``
    moto looks for the token in every execution, ended ones included, so a ``SendTaskFailure`` with the token of a
    task already answered (an approval already decided, the execution gone on or ended) succeeded. Step Functions
    refuses it, and moto's own ``send_task_success`` looks only at running executions (``InvalidToken``
    otherwise). moto's ``send_task_failure`` runs as it is, seeing only the running executions (relied on:
    ``_get_executions``, ``ExecutionStatus``).

``moto.stepfunctions.parser.backend.execution_worker.ExecutionWorker._get_evaluation_entrypoint(self)``
    moto lexes, parses and preprocesses the whole definition for every execution (~0.2 CPU-s for
    Conveyor's 750-line ASL). We parse each definition once (keyed by its SHA-256, relied on:
    ``AmazonStateLanguageParser.parse``) and give each execution its own copy of the parsed program,
    so no evaluation state (a Retrier's attempt count, say) is shared between executions. The copy is
    unpickled from the program pickled once: ~1 ms against ~20 ms for ``copy.deepcopy``, the same
    object graph (the parser's classes define no copy or pickle hooks of their own); a program that
    cannot be pickled is deep-copied.

``boto_client_for`` as imported by the Task state modules (``lambda_eval_utils`` and the ``aws-sdk``,
``dynamodb``, ``sns``, ``sqs``, ``events`` and ``states`` service integrations)
    moto builds a new boto3 client for every Task it runs. We keep one per region and service
    (boto3 clients are thread-safe), built with moto's own configuration, addressed to this server
    and tagged ``conveyor_local.requests_log.STATES_USER_AGENT`` so the request log can tell the
    interpreter's calls from a stage's.

``moto.stepfunctions.parser.asl.utils.json_path.parse`` and
``moto.stepfunctions.parser.asl.component.common.path.result_path.parse``
    every JSONPath a state evaluates (``InputPath``, ``Parameters``' ``.$`` fields, ``ResultPath``)
    is parsed again by ``jsonpath_ng``, which builds a whole PLY parser per call. The parsed
    expression is immutable: we parse each path text once.

How an execution ends (the replacements live in ``conveyor_local.executions``; its docstring says why):

``...backend.execution.Execution.stop(self, stop_date, error, cause)``,
``moto.stepfunctions.responses.StepFunctionResponse.stop_execution(self)``
    ``StopExecution`` ends the execution ABORTED at once with the request's ``error`` and ``cause``;
    relied on: ``Environment.set_stop``.
``...asl.eval.environment.Environment.{set_error,set_timed_out}``
    a stopped (or timed-out) program keeps that end. Relied on: ``program_state.ProgramStopped``/``ProgramTimedOut``.
``...asl.eval.event.event_manager.EventManager.add_event``
    a history takes no event after its terminal one; relied on: ``get_event_history``.
``...backend.execution.BaseExecutionWorkerCommunication.terminated(self)`` and
``...backend.execution_worker.ExecutionWorker.start(self)``
    every status change of a STANDARD execution puts a "Step Functions Execution Status Change"
    event on the default bus (relied on: ``moto.events.models.events_backends``).
"""

from __future__ import annotations

import copy
import datetime
import functools
import hashlib
import math
import pickle  # nosec B403 - copies of our own parsed programs, never bytes from outside
import threading
import time
import uuid
from typing import Any

from conveyor_local import executions
from conveyor_local.moto_patches.registry import original, patches, relies_on, resolve_dotted, time_scale
from conveyor_local.requests_log import STATES_USER_AGENT

SFN_ASL = "moto.stepfunctions.parser.asl"
SFN_PARSER_BACKEND = "moto.stepfunctions.parser.models.StepFunctionsParserBackend"
WAIT_FUNCTION = f"{SFN_ASL}.component.state.wait.wait_function.wait_function.WaitFunction"
RETRIER_DECL = f"{SFN_ASL}.component.common.retry.retrier_decl"
TIMEOUT_PATH = f"{SFN_ASL}.component.common.timeouts.timeout.TimeoutSecondsPath"
HEARTBEAT_PATH = f"{SFN_ASL}.component.common.timeouts.heartbeat.HeartbeatSecondsPath"
CALLBACK_ENDPOINT = f"{SFN_ASL}.eval.callback.callback.CallbackEndpoint"
HEARTBEAT_TIMEOUT_ERROR = f"{SFN_ASL}.eval.callback.callback.HeartbeatTimeoutError"
STATE_TASK = f"{SFN_ASL}.component.state.exec.state_task.state_task.StateTask"
ITERATION_WORKER = f"{SFN_ASL}.component.state.exec.state_map.iteration.iteration_worker"
STATES_ERROR_NAME = f"{SFN_ASL}.component.common.error_name.states_error_name.StatesErrorName"
SFN_RESPONSE = "moto.stepfunctions.responses.StepFunctionResponse"
EXECUTION_WORKER = "moto.stepfunctions.parser.backend.execution_worker.ExecutionWorker"
ASL_PARSER = f"{SFN_ASL}.parse.asl_parser.AmazonStateLanguageParser"
_TASK_STATE = f"{SFN_ASL}.component.state.exec.state_task"
#: The modules whose Task states build a client with ``boto_client_for`` (imported by name into each).
CLIENT_USERS = (
    f"{_TASK_STATE}.lambda_eval_utils",
    *(
        f"{_TASK_STATE}.service.state_task_service_{service}"
        for service in ("aws_sdk", "dynamodb", "sns", "sqs", "events", "sfn")
    ),
)
#: Parsed definitions kept (each a few MB of components); executions of older ones parse again.
PARSED_DEFINITIONS_KEPT = 16


# ----------------------------------------------------------------------- time scaling


class ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier: ``sleep`` is scaled, the rest is ``time``."""

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) * time_scale())

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
    """Replacement for ``WaitFunction._wait_interval``: scaled, still interruptible by stopping the execution."""
    deadline = time.monotonic() + max(0.0, float(wait_seconds)) * time_scale()
    while (remaining := deadline - time.monotonic()) > 0:
        env.program_state_event.wait(remaining)
        if not env.is_running():
            return


def timeout_seconds_path(self: Any, env: Any) -> int:
    """Replacement for ``TimeoutSecondsPath._eval_seconds``: the state's timeout on the local time scale,
    in whole seconds (as the execution history reports it), at least one."""
    seconds = original(f"{TIMEOUT_PATH}._eval_seconds")(self, env)
    return max(1, math.ceil(float(seconds) * time_scale()))


def heartbeat_seconds_path(self: Any, env: Any) -> int:
    """Replacement for ``HeartbeatSecondsPath._eval_seconds``: the heartbeat window on the local time scale
    (whole seconds, at least one), as ``timeout_seconds_path`` scales the timeout."""
    seconds = original(f"{HEARTBEAT_PATH}._eval_seconds")(self, env)
    return max(1, math.ceil(float(seconds) * time_scale()))


#: Serializes a heartbeat arriving before its endpoint exists with that endpoint's set-up (see the docstring).
_HEARTBEAT_SETUP = threading.Lock()
_EARLY_HEARTBEAT = "_conveyor_early_heartbeat"


def setup_heartbeat_endpoint(self: Any, heartbeat_seconds: int) -> Any:
    """Replacement for ``CallbackEndpoint.setup_heartbeat_endpoint``: a heartbeat or an answer that came before
    the endpoint existed counts, as on AWS, where the token is valid from the moment the task is scheduled."""
    with _HEARTBEAT_SETUP:
        endpoint = original(f"{CALLBACK_ENDPOINT}.setup_heartbeat_endpoint")(self, heartbeat_seconds)
        if self.__dict__.pop(_EARLY_HEARTBEAT, False) or self.get_outcome() is not None:
            endpoint.notify()
    return endpoint


def notify_heartbeat(self: Any) -> bool:
    """Replacement for ``CallbackEndpoint.notify_heartbeat``: a heartbeat before the endpoint exists is kept."""
    with _HEARTBEAT_SETUP:
        if self._heartbeat_endpoint is None:
            setattr(self, _EARLY_HEARTBEAT, True)
            return True
    return bool(original(f"{CALLBACK_ENDPOINT}.notify_heartbeat")(self))


# ------------------------------------------------------------------ errors and causes


def task_error(self: Any, env: Any, ex: Exception) -> Any:
    """Replacement for ``StateTask._from_error``: a missed heartbeat is ``States.HeartbeatTimeout``, as on AWS."""
    if not isinstance(ex, resolve_dotted(HEARTBEAT_TIMEOUT_ERROR)):
        return original(f"{STATE_TASK}._from_error")(self, env, ex)
    from moto.stepfunctions.parser.api import HistoryEventType, TaskTimedOutEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    name = resolve_dotted(STATES_ERROR_NAME).from_name("States.HeartbeatTimeout")
    return FailureEvent(
        env=env,
        error_name=name,
        event_type=HistoryEventType.TaskTimedOut,
        event_details=EventDetails(taskTimedOutEventDetails=TaskTimedOutEventDetails(error="States.HeartbeatTimeout")),
    )


def iteration_error_name(error_name: str) -> Any:
    """Stand-in for ``CustomErrorName`` in moto's Map iteration worker: ``States.*`` names are moto's own."""
    if error_name.startswith("States."):
        return resolve_dotted(f"{STATES_ERROR_NAME}.from_name")(error_name)
    return original(f"{ITERATION_WORKER}.CustomErrorName")(error_name=error_name)


def _send_task_failure(self: Any) -> Any:
    """Replacement for ``StepFunctionResponse.send_task_failure``: keep the ``cause`` moto drops."""
    import inspect

    from moto.core.responses import EmptyResult

    backend = self.stepfunction_backend
    options = {"error": self._get_param("error")}
    # Only the executing backend (``execute_state_machine``) takes a cause; the plain one has no use for it.
    if "cause" in inspect.signature(backend.send_task_failure).parameters:
        options["cause"] = self._get_param("cause")
    backend.send_task_failure(self._get_param("taskToken"), **options)
    return EmptyResult()


def start_execution(
    self: Any, state_machine_arn: str, name: str | None = None, execution_input: Any = None, trace_header: Any = None
) -> Any:
    """Replacement for ``StepFunctionsParserBackend.start_execution``: an execution without a name gets a UUID."""
    return original(f"{SFN_PARSER_BACKEND}.start_execution")(
        self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
    )


def start_execution_details(self: Any) -> Any:
    """Replacement for ``Execution.get_start_execution_details``: the start cut to the millisecond, as Step Functions
    keeps it, and the context's ``StartTime`` as AWS writes it (``2026-12-06T20:14:13.192Z``)."""
    self.start_date = self.start_date.replace(microsecond=self.start_date.microsecond // 1000 * 1000)
    details = original(f"{executions.SFN_EXECUTION}.Execution.get_start_execution_details")(self)
    details.start_time = (
        self.start_date.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    return details


class _RunningExecutionsOnly:
    """The parser backend as ``send_task_failure`` sees it: only its running executions."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def _get_executions(self, execution_status: Any = None) -> list[Any]:
        running = resolve_dotted(f"{executions.SFN_API}.ExecutionStatus").RUNNING
        return list(self._backend._get_executions(running))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def send_task_failure(self: Any, task_token: str, error: Any = None, cause: Any = None) -> Any:
    """Replacement for ``StepFunctionsParserBackend.send_task_failure``: a running execution's task only."""
    return original(f"{SFN_PARSER_BACKEND}.send_task_failure")(_RunningExecutionsOnly(self), task_token, error, cause)


# ------------------------------------------------------------- one parse per definition


@functools.lru_cache(maxsize=PARSED_DEFINITIONS_KEPT)
def _parsed(definition_sha256: str, definition: str) -> bytes | Any:
    """The parsed program of ``definition``, pickled (a template: never evaluated itself, only copied)."""
    del definition_sha256  # the cache key; the text is what is parsed
    program = resolve_dotted(ASL_PARSER).parse(definition)[0]
    try:
        return pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):  # a lambda or a lock in some component
        return program


def parsed_program(definition: str) -> Any:
    """A program of ``definition`` for one execution: parsed once per definition, copied per execution."""
    template = _parsed(hashlib.sha256(definition.encode()).hexdigest(), definition)
    return pickle.loads(template) if isinstance(template, bytes) else copy.deepcopy(template)  # noqa: S301 # nosec B301 - pickled above


def _evaluation_entrypoint(self: Any) -> Any:
    """Replacement for ``ExecutionWorker._get_evaluation_entrypoint``: a cached parse, copied."""
    return parsed_program(self._evaluation_details.state_machine_details.definition)


# ------------------------------------------------------------- one parse per JSONPath

JSON_PATH_PARSE = f"{SFN_ASL}.utils.json_path.parse"  # jsonpath_ng.ext.parse(path, debug=None)
RESULT_PATH_PARSE = f"{SFN_ASL}.component.common.path.result_path.parse"  # jsonpath_ng.parse(string)
#: JSONPath texts kept parsed (a definition has tens; a few definitions are live at once).
PARSED_PATHS_KEPT = 4096


@functools.lru_cache(maxsize=PARSED_PATHS_KEPT)
def _json_path(path: str) -> Any:
    return original(JSON_PATH_PARSE)(path)


@functools.lru_cache(maxsize=PARSED_PATHS_KEPT)
def _result_path(string: str) -> Any:
    return original(RESULT_PATH_PARSE)(string)


def parse_json_path(path: str, debug: bool | None = None) -> Any:
    """Replacement for the ``parse`` moto's JSONPath evaluation imported: each path text parsed once."""
    return original(JSON_PATH_PARSE)(path, debug) if debug else _json_path(path)


def parse_result_path(string: str) -> Any:
    """Replacement for the ``parse`` moto's ``ResultPath`` imported: each path text parsed once."""
    return _result_path(string)


# ------------------------------------------------------------- one client per service

_CLIENTS: dict[tuple[str, str, str | None], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _endpoint_url() -> str | None:
    """Where moto's interpreter sends Task calls: this server, unless moto's in-process stubber is on."""
    if resolve_dotted("moto.core.models.botocore_stubber").enabled:
        return None
    return f"http://127.0.0.1:{resolve_dotted('moto.settings.moto_server_port')()}"


def _new_client(region: str, service: str, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    timeout = resolve_dotted(f"{SFN_ASL}.component.common.timeouts.timeout.TimeoutSeconds").DEFAULT_TIMEOUT_SECONDS
    config = Config(
        parameter_validation=False,
        retries={"max_attempts": 0, "total_max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=64,  # many executions at once share the client
        user_agent_extra=STATES_USER_AGENT,
    )
    options = {"endpoint_url": endpoint_url} if endpoint_url else {}
    # moto's own fixed test keys (the server does not check them): not a secret.
    credentials = {"aws_access_key_id": "ak", "aws_secret_access_key": "sk"}
    return boto3.client(service, region_name=region, config=config, **credentials, **options)


def shared_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """Replacement for ``boto_client_for``: one client per region, service and endpoint.

    moto's own ignores ``state_credentials`` too (every call signs with fixed test keys)."""
    del state_credentials
    key = (region, service, _endpoint_url())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _new_client(region, service, key[2])
        return client


# ----------------------------------------------------------------------------- registry

patches(f"{WAIT_FUNCTION}._wait_interval", ("self", "env", "wait_seconds"), _wait_interval)
patches(f"{RETRIER_DECL}.time", None, ScaledTime())
patches(f"{TIMEOUT_PATH}._eval_seconds", ("self", "env"), timeout_seconds_path)
patches(f"{HEARTBEAT_PATH}._eval_seconds", ("self", "env"), heartbeat_seconds_path)
patches(f"{CALLBACK_ENDPOINT}.setup_heartbeat_endpoint", ("self", "heartbeat_seconds"), setup_heartbeat_endpoint)
patches(f"{CALLBACK_ENDPOINT}.notify_heartbeat", ("self",), notify_heartbeat)
relies_on(f"{CALLBACK_ENDPOINT}.get_outcome", ("self",))
patches(f"{STATE_TASK}._from_error", ("self", "env", "ex"), task_error)
relies_on(HEARTBEAT_TIMEOUT_ERROR)
patches(f"{ITERATION_WORKER}.CustomErrorName", ("error_name",), iteration_error_name)
relies_on(f"{STATES_ERROR_NAME}.from_name", ("error_name",))
patches(f"{SFN_RESPONSE}.send_task_failure", ("self",), _send_task_failure)
patches(f"{SFN_PARSER_BACKEND}.send_task_failure", ("self", "task_token", "error", "cause"), send_task_failure)
relies_on(f"{SFN_PARSER_BACKEND}._get_executions", ("self", "execution_status"))
patches(
    f"{SFN_PARSER_BACKEND}.start_execution",
    ("self", "state_machine_arn", "name", "execution_input", "trace_header"),
    start_execution,
)
patches(f"{executions.SFN_EXECUTION}.Execution.get_start_execution_details", ("self",), start_execution_details)
patches(f"{EXECUTION_WORKER}._get_evaluation_entrypoint", ("self",), _evaluation_entrypoint)
relies_on(f"{ASL_PARSER}.parse", ("definition",))
patches(JSON_PATH_PARSE, ("path", "debug"), parse_json_path)
patches(RESULT_PATH_PARSE, ("string",), parse_result_path)
for _module in CLIENT_USERS:
    patches(f"{_module}.boto_client_for", ("region", "service", "state_credentials"), shared_client)
relies_on("moto.core.models.botocore_stubber")
relies_on("moto.settings.moto_server_port", ())
relies_on(f"{SFN_ASL}.component.common.timeouts.timeout.TimeoutSeconds")

# conveyor_local.executions: how an execution ends, and the status-change events
patches(
    f"{executions.SFN_EXECUTION}.Execution.stop", ("self", "stop_date", "error", "cause"), executions.execution_stop
)
patches(f"{executions.SFN_EXECUTION}.BaseExecutionWorkerCommunication.terminated", ("self",), executions.terminated)
patches(f"{executions.SFN_WORKER}.start", ("self",), executions.worker_start)
patches(f"{executions.SFN_ENVIRONMENT}.set_error", ("self", "error"), executions.set_error)
patches(f"{executions.SFN_ENVIRONMENT}.set_timed_out", ("self",), executions.set_timed_out)
patches(
    f"{executions.SFN_EVENT_MANAGER}.add_event",
    ("self", "context", "event_type", "event_details", "timestamp", "update_source_event_id"),
    executions.add_event,
)
patches(f"{executions.SFN_RESPONSE}.stop_execution", ("self",), executions.stop_execution_response)
relies_on(f"{executions.SFN_ENVIRONMENT}.set_stop", ("self", "stop_date", "cause", "error"))
relies_on(f"{executions.SFN_EVENT_MANAGER}.get_event_history", ("self",))
relies_on(f"{executions.SFN_PROGRAM_STATE}.ProgramStopped")
relies_on(f"{executions.SFN_PROGRAM_STATE}.ProgramTimedOut")
relies_on(f"{SFN_ASL}.eval.event.event_detail.EventDetails")
relies_on(f"{executions.SFN_API}.ExecutionStatus")
relies_on(f"{executions.SFN_API}.HistoryEventType")
relies_on("moto.stepfunctions.parser.models.stepfunctions_parser_backends")
