"""Every patch of moto internals the local cloud makes, in one place (moto pinned at 5.2.5).

``apply(settings)`` installs them (idempotent); ``SEAMS`` lists every moto attribute we
replace or rely on, and ``check_seams()`` verifies each still exists with the signature we
were written against, so a moto upgrade fails loudly here instead of subtly at runtime.

The seams and why:

``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)``
    moto runs Lambda code only in Docker. We run the version's real code in a worker
    process (``conveyor_local.workers``) and return moto's ``(payload, errored, logs)``;
    moto keeps doing version/alias resolution and ``x-amz-function-error``, and its Step
    Functions interpreter names a failed task's error after the payload's ``errorType``.
    Each invocation also writes AWS/Lambda metrics (Invocations, Errors, Duration) to
    moto's CloudWatch backend and its log lines to the ``/aws/lambda/<name>`` log group.

``moto.awslambda.models.LambdaBackend.invoke(self, function_name, qualifier, body, headers, response_headers)``
    moto stores an alias's ``RoutingConfig.AdditionalVersionWeights`` but never applies
    them. We resolve the alias ourselves, pick the executed version by weight, and
    remember how the function was addressed (for the ``Resource``/``ExecutedVersion``
    metric dimensions and the ``X-Amz-Executed-Version`` header). ``InvocationType=Event``
    runs on a background thread and returns 202 at once, as on AWS (moto runs it inline).
    Relies on ``LambdaStorage.split_function_arn``, ``LambdaStorage._get_function_aliases``
    and ``LambdaBackend.layers_versions_by_arn``.

``moto.awslambda.responses.LambdaResponse.invoke(self)``
    moto reads the qualifier from a ``qualifier`` query parameter, but boto3 sends
    ``Qualifier``, so ``invoke(FunctionName=f, Qualifier="live")`` silently ran
    ``$LATEST``. We copy ``Qualifier`` to ``qualifier`` before moto looks.

``moto.events.models.Rule.send_to_targets(self, original_event, transform_input)``
    raises NotImplementedError for Step Functions and Lambda targets, and the S3
    notification path swallows it with a bare ``except`` (dropping the event for every
    later target and rule). We deliver those two kinds ourselves, start each execution
    with a unique name (moto names an unnamed execution ``None``, and the next unnamed
    start then fails) and pass the event as EventBridge does; every other target kind
    still goes through moto's original. Relies on ``moto.stepfunctions.responses.get_backend``
    (it picks the executing backend when ``execute_state_machine`` is configured).

``...wait.wait_function.wait_function.WaitFunction._wait_interval(self, env, wait_seconds)``
and ``...common.retry.retrier_decl.time``
    Step Functions Wait states and Retry back-off really sleep; both are multiplied by
    ``CONVEYOR_LOCAL_TIME_SCALE`` (e.g. 0.01) so a pipeline with minutes of bake time runs
    in seconds. A Wait still ends early when its execution is stopped.

``...common.timeouts.timeout.TimeoutSecondsPath._eval_seconds(self, env)``
    a task timeout read from the state (``TimeoutSecondsPath``: the approval window of a
    ``.waitForTaskToken`` task, hours on AWS) is scaled the same way, so an approval that
    times out does so in seconds locally. Fixed ``TimeoutSeconds`` (a stage's own limit,
    which bounds real work rather than a wait) is left as written.

``...state_map.iteration.iteration_worker.CustomErrorName``
    when a Map iteration fails, moto names the Map's error with ``CustomErrorName``, which
    refuses any name starting with ``States.``; so an iteration ending in ``States.Timeout``
    (an approval nobody answered) surfaced as ``States.Runtime`` ("Custom Error Names MUST NOT
    begin with the prefix 'States.'") instead of the iteration's own error, as AWS reports it.
    We give the iteration worker a stand-in that names ``States.*`` errors with moto's own
    ``StatesErrorName`` (relied on: ``StatesErrorName.from_name``) and every other one as before.

``moto.s3.models.FakeBucket.get_permission(self, action, resource)``
    moto enforces bucket policies but ignores their ``Condition`` blocks, so the
    template's standard "Deny s3:* when aws:SecureTransport is false" statement denies
    every object request. We evaluate the conditions we understand (``aws:SecureTransport``
    holds as true: SDKs use TLS on AWS, the local loopback hop is plain HTTP) and leave
    out statements whose conditions we cannot evaluate, then let moto's ``IAMPolicy``
    (relied on: ``moto.iam.access_control.IAMPolicy``) decide.

``moto.stepfunctions.responses.StepFunctionResponse.send_task_failure(self)``
    moto's handler drops the request's ``cause`` (it passes only ``error`` to the backend), so
    a ``Catch`` after a rejected ``.waitForTaskToken`` task got ``"Cause": null`` instead of the
    reason (``conveyor reject``'s "rejected by <who>: <reason>"). We pass both; the executing
    backend's ``send_task_failure(task_token, error, cause)`` is moto's own.

``moto.cloudwatch.models.Statistics.get_statistics_for_type(self, stat)``
    moto computes Sum/Average/Minimum/Maximum/SampleCount only; a percentile (``p95``,
    ``p99.9``) returns None and GetMetricData then fails serializing it. Canary analysis
    reads Duration p95/p99 per version, so we compute percentiles (nearest rank, over the
    period's single values) and leave every other statistic to moto.

``moto.dynamodb.models.DynamoDBBackend.{get_item,put_item,update_item,delete_item,transact_write_items,
query,scan,batch_get_item}``
    moto evaluates a condition expression and then applies the write in separate steps, with
    nothing to stop another request thread in between, so two conditional writes racing for
    one item could both succeed. DynamoDB makes each single-item write atomic, and Conveyor's
    exactly-once claims and environment locks rely on it: we serialize these calls on one lock.
    Reads of many items are serialized with them: moto's UpdateItem of a new item stores it with
    only its key and then applies each SET in place, so a Query between saw a half-written item
    (the ledger read a deployment record without ``created_at`` under load).

``moto.awslambda.responses.LambdaResponse.{publish_version,update_alias,create_alias,delete_alias,
update_function_code,update_function_configuration}``
    fault injection (``conveyor_local.faults``): when ``<state-dir>/faults.json`` has a rule for
    the operation and function, the call fails with the rule's error code and HTTP status, as
    a throttle, an outage or a conflicting update would on AWS. No rule: moto's original.

``moto.awslambda.responses.LambdaResponse.{publish_version,create_function,update_function_configuration}``
    Lambda's preconditions, checked before moto changes anything (after an injected fault, if any):
    ``PublishVersion`` with a ``CodeSha256`` other than ``$LATEST``'s is refused (moto ignored it, so
    a version could carry code no deployment validated); an environment naming a variable Lambda
    reserves, or over 4 KB as compact JSON, is refused. Both with AWS's
    ``InvalidParameterValueException`` and message. moto's ``CodeSha256`` already is AWS's (base64
    of the package zip's SHA-256; relied on: ``LambdaFunction.code_sha_256``).

``moto.awslambda.models.LambdaFunction.invoke(self, body, request_headers, response_headers)``
    relied on by the asynchronous invocation thread: a function error (``x-amz-function-error``)
    is retried twice, one and then two (time-scaled) minutes later, as Lambda retries an
    asynchronous invocation, so an EventBridge Lambda target that hits a transient outage still runs.

How an execution ends (the replacements live in ``conveyor_local.executions``; its docstring says why):

``...backend.execution.Execution.stop(self, stop_date, error, cause)``,
``moto.stepfunctions.responses.StepFunctionResponse.stop_execution(self)``
    ``StopExecution`` ends the execution ABORTED at once with the request's ``error`` and ``cause``
    (moto dropped both, stayed RUNNING until the Lambda call in flight returned, and inside a Map
    then ended FAILED with ``States.Runtime``); relied on: ``Environment.set_stop``.
``...asl.eval.environment.Environment.{set_error,set_timed_out}``
    a stopped (or timed-out) program keeps that end; moto let the error the interrupted Map
    iteration raised on its way out overwrite it. Relied on: ``program_state.ProgramStopped``/``ProgramTimedOut``.
``...asl.eval.event.event_manager.EventManager.add_event``
    a history takes no event after its terminal one (``ExecutionAborted``/``ExecutionTimedOut``
    are appended when the execution ends, not when its last thread returns); relied on: ``get_event_history``.
``...backend.execution.BaseExecutionWorkerCommunication.terminated(self)`` and
``...backend.execution_worker.ExecutionWorker.start(self)``
    every status change of a STANDARD execution (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED)
    puts a "Step Functions Execution Status Change" event on the default bus (relied on:
    ``moto.events.models.events_backends``; rules deliver through ``Rule.send_to_targets`` above).
    ``executions.abort_orphaned_execution`` ends an execution a dead server left RUNNING (restart path;
    relied on: ``moto.stepfunctions.parser.models.stepfunctions_parser_backends``).

``moto.dynamodb.responses.DynamoHandler.{get_item,put_item,update_item,delete_item,query,scan,batch_get_item,
transact_write_items}`` and ``moto.sns.responses.SNSResponse.publish``
    fault injection for the ledger and the topic: a ``faults.json`` rule naming a ``table`` or a
    ``topic`` makes these calls fail with the rule's error code (raised as moto's own
    ``moto.core.exceptions.ServiceException``, so the service's protocol serializes it), as a
    DynamoDB or SNS outage would. No rule: moto's original.

``moto.awslambda.models.LambdaAlias.update(self, description, function_version, routing_config)``
and the ``UpdateAlias`` precondition in ``LambdaResponse.update_alias``
    moto gives an alias one ``RevisionId`` at creation and ignores ``RevisionId`` on ``UpdateAlias``.
    Lambda gives every change a new revision and refuses an update naming another one
    (``PreconditionFailedException``, 412): Conveyor's ShiftTraffic, RollBack and reconciler fence
    each other with it, so a write from a stage still running after its execution stopped cannot
    land after a restore. We renew the revision on every update and check the precondition and
    apply the write as one step.
``moto.awslambda.models.LambdaFunction.update_function_code(self, updated_spec)``
    moto ignores ``S3ObjectVersion`` and takes the key's latest version, so a test in which the
    key changed after validation would deploy the newer bytes where AWS deploys the version
    named. We read the named version (relied on: ``moto.s3.models.s3_backends`` and
    ``moto.awslambda.models._s3_content``), refuse a version that does not exist as AWS does
    (``InvalidParameterValueException``), and leave every other update to moto.

``moto.cloudwatch.models.cloudwatch_backends`` and ``moto.logs.models.logs_backends``
    written to in-process (the server is this process), not through HTTP.

Relied on by ``conveyor_local.persistence`` (not patched here): every service's ``BackendDict``
(``iter_backends``, and its extra attributes such as S3's ``bucket_accounts``), S3's
``_VersionedKeyStore`` (its ``items()`` hides older versions from pickle), the Step Functions
``Execution`` record (its fields, ``exec_worker.env`` and ``ExecutionStatus``); and, by
``conveyor_local.server``, moto's WSGI app and request handler (``moto.moto_server.werkzeug_app``),
served with change tracking in front.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import importlib
import inspect
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from conveyor_local import executions
from conveyor_local.faults import FAULTS_FILE, FaultPlan
from conveyor_local.workers import FunctionSpec, InvocationResult, LayerSpec, WorkerPool

LOG = logging.getLogger(__name__)

_WAIT_FUNCTION = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function.WaitFunction"
_RETRIER_DECL = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"
_TIMEOUT_PATH = "moto.stepfunctions.parser.asl.component.common.timeouts.timeout.TimeoutSecondsPath"
_ITERATION_WORKER = "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iteration_worker"
_STATES_ERROR_NAME = "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name.StatesErrorName"

_DYNAMODB_BACKEND = "moto.dynamodb.models.DynamoDBBackend"
_DYNAMODB_ATOMIC = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    # reads of many items: a query or scan must not see an UpdateItem half-applied
    "query",
    "scan",
    "batch_get_item",
)
_LAMBDA_RESPONSE = "moto.awslambda.responses.LambdaResponse"
_LAMBDA_ALIAS = "moto.awslambda.models.LambdaAlias"
_DYNAMODB_RESPONSE = "moto.dynamodb.responses.DynamoHandler"
_SNS_RESPONSE = "moto.sns.responses.SNSResponse"
_SERVICE_EXCEPTION = "moto.core.exceptions.ServiceException"
#: The DynamoDB calls a ledger fault fails (every one Conveyor makes).
_DYNAMODB_FAULT_METHODS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_write_items",
)

_LAMBDA_FUNCTION = "moto.awslambda.models.LambdaFunction"
#: Lambda API operation -> the ``LambdaResponse`` method serving it (the ones a fault may hit).
_FAULT_OPERATIONS = {
    "PublishVersion": "publish_version",
    "UpdateAlias": "update_alias",
    "CreateAlias": "create_alias",
    "DeleteAlias": "delete_alias",
    "UpdateFunctionCode": "update_function_code",
    "UpdateFunctionConfiguration": "update_function_configuration",
}

#: dotted name -> the parameter names we rely on (``None``: not a callable, existence only).
SEAM_SIGNATURES: Mapping[str, tuple[str, ...] | None] = {
    "moto.awslambda.models.LambdaFunction._invoke_lambda": ("self", "event"),
    f"{_LAMBDA_ALIAS}.update": ("self", "description", "function_version", "routing_config"),
    f"{_SNS_RESPONSE}.publish": ("self",),
    _SERVICE_EXCEPTION: None,
    **{f"{_DYNAMODB_RESPONSE}.{method}": ("self",) for method in _DYNAMODB_FAULT_METHODS},
    "moto.awslambda.models.LambdaBackend.invoke": (
        "self",
        "function_name",
        "qualifier",
        "body",
        "headers",
        "response_headers",
    ),
    "moto.awslambda.models.LambdaBackend.get_function": ("self", "function_name_or_arn", "qualifier"),
    "moto.awslambda.models.LambdaBackend.layers_versions_by_arn": ("self", "layer_version_arn"),
    "moto.awslambda.models.LambdaStorage.split_function_arn": ("self", "arn"),
    "moto.awslambda.models.LambdaStorage._get_function_aliases": ("self", "function_name"),
    "moto.awslambda.models.lambda_backends": None,
    "moto.awslambda.responses.LambdaResponse.invoke": ("self",),
    "moto.events.models.Rule.send_to_targets": ("self", "original_event", "transform_input"),
    "moto.stepfunctions.responses.get_backend": ("account", "region"),
    "moto.s3.models.FakeBucket.get_permission": ("self", "action", "resource"),
    "moto.iam.access_control.IAMPolicy.is_action_permitted": ("self", "action", "resource"),
    f"{_WAIT_FUNCTION}._wait_interval": ("self", "env", "wait_seconds"),
    f"{_RETRIER_DECL}.time": None,
    f"{_TIMEOUT_PATH}._eval_seconds": ("self", "env"),
    f"{_ITERATION_WORKER}.CustomErrorName": ("error_name",),
    f"{_STATES_ERROR_NAME}.from_name": ("error_name",),
    "moto.stepfunctions.responses.StepFunctionResponse.send_task_failure": ("self",),
    "moto.cloudwatch.models.cloudwatch_backends": None,
    "moto.cloudwatch.models.Statistics.get_statistics_for_type": ("self", "stat"),
    "moto.cloudwatch.models.Statistics.metric_single_values_list": None,
    "moto.logs.models.logs_backends": None,
    **{f"{_DYNAMODB_BACKEND}.{name}": ("self",) for name in _DYNAMODB_ATOMIC},
    **{f"{_LAMBDA_RESPONSE}.{method}": ("self",) for method in _FAULT_OPERATIONS.values()},
    f"{_LAMBDA_RESPONSE}.create_function": ("self",),
    "moto.awslambda.models.LambdaFunction.invoke": ("self", "body", "request_headers", "response_headers"),
    # conveyor_local.executions: how an execution ends, and the status-change events
    f"{executions.SFN_EXECUTION}.Execution.stop": ("self", "stop_date", "error", "cause"),
    f"{executions.SFN_EXECUTION}.BaseExecutionWorkerCommunication.terminated": ("self",),
    f"{executions.SFN_WORKER}.start": ("self",),
    f"{executions.SFN_ENVIRONMENT}.set_error": ("self", "error"),
    f"{executions.SFN_ENVIRONMENT}.set_timed_out": ("self",),
    f"{executions.SFN_ENVIRONMENT}.set_stop": ("self", "stop_date", "cause", "error"),
    f"{executions.SFN_EVENT_MANAGER}.add_event": (
        "self",
        "context",
        "event_type",
        "event_details",
        "timestamp",
        "update_source_event_id",
    ),
    f"{executions.SFN_EVENT_MANAGER}.get_event_history": ("self",),
    f"{executions.SFN_PROGRAM_STATE}.ProgramStopped": None,
    f"{executions.SFN_PROGRAM_STATE}.ProgramTimedOut": None,
    "moto.stepfunctions.parser.asl.eval.event.event_detail.EventDetails": None,
    f"{executions.SFN_API}.ExecutionStatus": None,
    f"{executions.SFN_API}.HistoryEventType": None,
    f"{executions.SFN_RESPONSE}.stop_execution": ("self",),
    "moto.stepfunctions.parser.models.stepfunctions_parser_backends": None,
    "moto.events.models.events_backends": None,
    f"{_LAMBDA_FUNCTION}.update_function_code": ("self", "updated_spec"),
    "moto.awslambda.models._s3_content": ("key",),
    "moto.s3.models.s3_backends": None,
    "moto.awslambda.exceptions.InvalidParameterValueException": ("message",),
    # Relied on by conveyor_local.persistence (snapshots of the backends) and conveyor_local.server.
    **dict.fromkeys(
        (
            "moto.s3.models.s3_backends",
            "moto.dynamodb.models.dynamodb_backends",
            "moto.iam.models.iam_backends",
            "moto.stepfunctions.parser.models.stepfunctions_parser_backends",
            "moto.sns.models.sns_backends",
            "moto.sqs.models.sqs_backends",
            "moto.events.models.events_backends",
            "moto.kms.models.kms_backends",
            "moto.s3.utils._VersionedKeyStore",
            "moto.stepfunctions.parser.api.ExecutionStatus",
            "moto.moto_server.werkzeug_app.MotoRequestHandler",
        )
    ),
    "moto.core.base_backend.BackendDict.iter_backends": ("self",),
    "moto.stepfunctions.parser.backend.execution.Execution": ("name", "sm_type", "role_arn", "exec_arn"),
    "moto.moto_server.werkzeug_app.DomainDispatcherApplication": ("create_app",),
    "moto.moto_server.werkzeug_app.create_backend_app": ("service",),
    # conveyor_local.request_log: names a REST request's operation with moto's own router.
    "moto.core.routing.get_service_router": ("service_name",),
    "moto.core.request.Request": None,
}
SEAMS: tuple[str, ...] = tuple(SEAM_SIGNATURES)


class SeamMovedError(RuntimeError):
    """moto changed under us: a patched or relied-on attribute moved or changed shape."""


@dataclass(frozen=True)
class Settings:
    """What the patches need from the running local cloud."""

    endpoint_url: str
    cache_dir: Path
    time_scale: float = 1.0
    max_workers_per_version: int = 8


def resolve_dotted(name: str) -> Any:
    """Import the longest importable module prefix of ``name`` and walk the rest as attributes."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(name)


def check_seams() -> list[str]:
    """One message per seam that no longer matches; empty when moto is as we expect."""
    problems = []
    for name, expected in SEAM_SIGNATURES.items():
        try:
            target = _ORIGINALS.get(name) or resolve_dotted(name)
        except (ImportError, AttributeError) as exc:
            problems.append(f"moto seam {name} moved ({exc}); conveyor_local.moto_patches needs updating")
            continue
        if expected is None:
            continue
        actual = tuple(inspect.signature(target).parameters)
        if actual[: len(expected)] != expected:
            problems.append(
                f"moto seam {name} changed signature {actual} (expected {expected}); "
                "conveyor_local.moto_patches needs updating"
            )
    return problems


# ----------------------------------------------------------------------------- state

_ORIGINALS: dict[str, Any] = {}
_APPLY_LOCK = threading.Lock()
_LOG_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}


@dataclass(frozen=True)
class InvocationTarget:
    """How a caller addressed the function, for metric dimensions (``Resource``)."""

    function_name: str
    qualifier: str | None

    @property
    def resource(self) -> str:
        return f"{self.function_name}:{self.qualifier}" if self.qualifier else self.function_name


_CURRENT_TARGET: contextvars.ContextVar[InvocationTarget | None] = contextvars.ContextVar(
    "conveyor_local_invocation_target", default=None
)


def _pool() -> WorkerPool:
    pool: WorkerPool | None = _STATE.get("pool")
    if pool is None:
        raise RuntimeError("conveyor_local.moto_patches.apply() has not been called")
    return pool


def _time_scale() -> float:
    return float(_STATE.get("time_scale", 1.0))


# ------------------------------------------------------------------ lambda: execution


def _hexdigest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def function_spec(fn: Any) -> FunctionSpec:
    """Snapshot a moto ``LambdaFunction`` (one version) into what a worker needs."""
    backend = resolve_dotted("moto.awslambda.models.lambda_backends")[fn.account_id][fn.region]
    layers = []
    for layer in fn.layers:
        layer_version = backend.layers_versions_by_arn(layer["Arn"])
        layers.append(LayerSpec(sha256=_hexdigest(layer_version.code_bytes), zip_bytes=layer_version.code_bytes))
    return FunctionSpec(
        function_name=fn.function_name,
        version=str(fn.version),
        unqualified_arn=f"arn:{fn.partition}:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}",
        handler=fn.handler,
        code_sha256=_hexdigest(fn.code_bytes),
        code_zip=fn.code_bytes,
        layers=tuple(layers),
        environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
        timeout_seconds=float(fn.timeout),
        memory_size_mb=int(fn.memory_size),
        region=fn.region,
        runtime=fn.run_time or "python3.11",
    )


def _event_json(event: Any) -> str:
    """moto hands ``_invoke_lambda`` the parsed body, or the string ``"{}"`` for an empty one."""
    if event is None:
        return "{}"
    if isinstance(event, str):
        try:
            json.loads(event)
        except ValueError:
            return json.dumps(event)
        return event
    return json.dumps(event)


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement for ``LambdaFunction._invoke_lambda``: run the version's code in a worker."""
    target = _CURRENT_TARGET.get() or InvocationTarget(
        self.function_name, None if str(self.version) == "$LATEST" else str(self.version)
    )
    spec = function_spec(self)
    invoked_arn = f"{spec.unqualified_arn}:{target.qualifier}" if target.qualifier else spec.unqualified_arn
    result = _pool().invoke(spec, _event_json(event), invoked_arn)
    record_invocation(self, target, result)
    return result.payload, result.errored, result.logs


# ---------------------------------------------------------------- lambda: telemetry


def _dimension_sets(target: InvocationTarget, executed_version: str) -> list[list[dict[str, str]]]:
    """The dimension sets AWS/Lambda publishes for one invocation."""
    by_function = [{"Name": "FunctionName", "Value": target.function_name}]
    by_resource = [*by_function, {"Name": "Resource", "Value": target.resource}]
    sets = [by_function, by_resource]
    if target.qualifier:
        sets.append([*by_resource, {"Name": "ExecutedVersion", "Value": executed_version}])
    return sets


def emit_metrics(fn: Any, target: InvocationTarget, result: InvocationResult) -> None:
    cloudwatch = resolve_dotted("moto.cloudwatch.models.cloudwatch_backends")[fn.account_id][fn.region]
    data = []
    for dimensions in _dimension_sets(target, str(fn.version)):
        for name, value, unit in (
            ("Invocations", 1.0, "Count"),
            ("Errors", 1.0 if result.errored else 0.0, "Count"),
            ("Duration", round(result.duration_ms, 2), "Milliseconds"),
        ):
            # No Timestamp: moto defaults to its own naive utcnow(), and compares naive and aware datetimes badly.
            data.append({"MetricName": name, "Value": value, "Unit": unit, "Dimensions": dimensions})
    cloudwatch.put_metric_data("AWS/Lambda", data)


def _log_lines(fn: Any, result: InvocationResult) -> list[str]:
    report = [
        f"REPORT RequestId: {result.request_id}",
        f"Duration: {result.duration_ms:.2f} ms",
        f"Billed Duration: {math.ceil(result.duration_ms)} ms",
        f"Memory Size: {fn.memory_size} MB",
    ]
    if result.max_memory_used_mb is not None:
        report.append(f"Max Memory Used: {result.max_memory_used_mb} MB")
    if result.init_duration_ms is not None:
        report.append(f"Init Duration: {result.init_duration_ms:.2f} ms")
    lines = [f"START RequestId: {result.request_id} Version: {fn.version}"]
    lines += [line for line in result.logs.splitlines() if line.strip()]
    if result.timed_out:
        lines.append(json.loads(result.payload)["errorMessage"])
    lines += [f"END RequestId: {result.request_id}", "\t".join(report)]
    return lines


def write_logs(fn: Any, result: InvocationResult) -> None:
    """Append the invocation to its execution environment's stream in ``/aws/lambda/<name>``."""
    logs = resolve_dotted("moto.logs.models.logs_backends")[fn.account_id][fn.region]
    group_name = f"/aws/lambda/{fn.function_name}"
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": line} for line in _log_lines(fn, result)]
    with _LOG_LOCK:  # moto's log streams are not thread-safe
        logs.ensure_log_group(group_name)
        if result.log_stream_name not in logs.groups[group_name].streams:
            logs.create_log_stream(group_name, result.log_stream_name)
        logs.put_log_events(group_name, result.log_stream_name, events)


def record_invocation(fn: Any, target: InvocationTarget, result: InvocationResult) -> None:
    try:
        emit_metrics(fn, target, result)
        write_logs(fn, result)
    except Exception:  # telemetry must never fail an invocation that ran
        LOG.exception("could not record telemetry for %s", fn.function_name)


# ------------------------------------------------------------- lambda: routing + async


def choose_version(primary: str, additional_weights: Mapping[str, float], draw: float | None = None) -> str:
    """Pick the version an alias invocation executes: each additional version by its weight, else primary."""
    point = random.random() if draw is None else draw  # noqa: S311 - traffic splitting, not crypto
    cumulative = 0.0
    for version, weight in additional_weights.items():
        cumulative += float(weight)
        if point < cumulative:
            return str(version)
    return primary


def _split_name(backend: Any, function_name: str, qualifier: str | None) -> tuple[str, str | None]:
    if function_name.startswith("arn:"):
        _, name, in_arn = backend._lambdas.split_function_arn(function_name)
        return name, in_arn or qualifier
    if ":" in function_name:
        name, _, in_name = function_name.partition(":")
        return name, in_name or qualifier
    return function_name, qualifier


def resolve_invocation(backend: Any, function_name: str, qualifier: str | None) -> tuple[Any, InvocationTarget]:
    """The version an invocation executes (alias weights applied) and how it was addressed."""
    name, qualifier = _split_name(backend, function_name, qualifier)
    fn = backend.get_function(name, qualifier)  # moto's own errors for unknown names/qualifiers
    target = InvocationTarget(fn.function_name, qualifier)
    if qualifier and qualifier != "$LATEST" and not qualifier.isdigit():
        alias = backend._lambdas._get_function_aliases(name).get(qualifier)
        weights = ((alias.routing_config or {}) if alias else {}).get("AdditionalVersionWeights") or {}
        if weights:
            executed = choose_version(str(alias.function_version), weights)
            if executed != str(fn.version):
                fn = backend.get_function(name, executed)
    return fn, target


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return None if value is None else str(value)


def _lambda_backend_invoke(  # noqa: PLR0917 - moto's signature
    self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> str | bytes | None:
    """Replacement for ``LambdaBackend.invoke``: weighted alias routing, real async invokes."""
    fn, target = resolve_invocation(self, function_name, qualifier)
    response_headers["x-amz-executed-version"] = str(fn.version)
    invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type == "DryRun":
        response_headers["Content-Length"] = "0"
        return b""
    context = contextvars.copy_context()
    context.run(_CURRENT_TARGET.set, target)
    if invocation_type == "Event":
        thread = threading.Thread(
            target=context.run,
            args=(_run_async, fn, body, function_name),
            name=f"lambda-async-{fn.function_name}",
            daemon=True,
        )
        thread.start()
        response_headers["Content-Length"] = "0"
        return b""
    payload = context.run(fn.invoke, body, headers, response_headers)
    response_headers["Content-Length"] = str(len(payload))
    return payload  # type: ignore[no-any-return]


#: Lambda retries a failed asynchronous invocation twice (its default ``MaximumRetryAttempts``), about
#: one and then two minutes later; on the local time scale here.
ASYNC_RETRY_DELAYS_SECONDS = (60.0, 120.0)


def _run_async(fn: Any, body: Any, function_name: str) -> None:
    """One asynchronous invocation, retried after a function error as Lambda does."""
    for attempt, delay in enumerate((0.0, *ASYNC_RETRY_DELAYS_SECONDS)):
        time.sleep(delay * _time_scale())
        response_headers: dict[str, str] = {}
        try:
            fn.invoke(body, {"X-Amz-Invocation-Type": "Event"}, response_headers)
        except Exception:
            LOG.exception("async invocation of %s failed (attempt %d)", function_name, attempt + 1)
            continue
        if "x-amz-function-error" not in response_headers:
            return
        LOG.warning("async invocation of %s returned a function error (attempt %d)", function_name, attempt + 1)
    LOG.error("async invocation of %s failed %d times; dropped", function_name, 1 + len(ASYNC_RETRY_DELAYS_SECONDS))


def _lambda_response_invoke(self: Any) -> Any:
    """Replacement for ``LambdaResponse.invoke``: honour boto3's ``Qualifier`` query parameter."""
    querystring = self.querystring
    if "Qualifier" in querystring and "qualifier" not in querystring:
        querystring["qualifier"] = querystring["Qualifier"]
    return _ORIGINALS["moto.awslambda.responses.LambdaResponse.invoke"](self)


# ---------------------------------------------------------------------- step functions
def _send_task_failure(self: Any) -> Any:
    """Replacement for ``StepFunctionResponse.send_task_failure``: keep the ``cause`` moto drops."""
    from moto.core.responses import EmptyResult

    backend = self.stepfunction_backend
    options = {"error": self._get_param("error")}
    # Only the executing backend (``execute_state_machine``) takes a cause; the plain one has no use for it.
    if "cause" in inspect.signature(backend.send_task_failure).parameters:
        options["cause"] = self._get_param("cause")
    backend.send_task_failure(self._get_param("taskToken"), **options)
    return EmptyResult()


# ------------------------------------------------------------------------ eventbridge


#: moto's S3 -> EventBridge path stamps every event with this id (``moto.events.utils._BASE_EVENT_MESSAGE``).
_MOTO_S3_CONSTANT_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"


def _is_delivered_by_us(target: Mapping[str, Any]) -> bool:
    arn = str(target["Arn"])
    return arn.startswith("arn:") and arn.split(":")[2] in {"states", "lambda"}


def eventbridge_payload(event: Mapping[str, Any], target: Mapping[str, Any]) -> str:
    """The JSON a target receives: the event as EventBridge sends it (or the target's constant ``Input``)."""
    if "Input" in target:
        return str(target["Input"])
    delivered = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(delivered.get("time"), int | float):
        delivered["time"] = datetime.fromtimestamp(delivered["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(delivered)


def _deliver(rule: Any, target: Mapping[str, Any], payload: str) -> None:
    arn = str(target["Arn"])
    service = arn.split(":")[2]
    if service == "states":
        backend = resolve_dotted("moto.stepfunctions.responses.get_backend")(rule.account_id, rule.region_name)
        backend.start_execution(arn, str(uuid.uuid4()), payload)
    else:
        backend = resolve_dotted("moto.awslambda.models.lambda_backends")[rule.account_id][rule.region_name]
        backend.invoke(arn, None, payload, {"X-Amz-Invocation-Type": "Event"}, {})


def _send_to_dead_letter_queue(rule: Any, target: Mapping[str, Any], payload: str, error: Exception) -> None:
    dlq_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not dlq_arn:
        return
    sqs = resolve_dotted("moto.sqs.models.sqs_backends")[rule.account_id][rule.region_name]
    attributes = {"ERROR_MESSAGE": {"DataType": "String", "StringValue": str(error)[:256]}}
    sqs.send_message(dlq_arn.split(":")[-1], payload, message_attributes=attributes)


def _send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
    """Replacement for ``Rule.send_to_targets``: deliver Step Functions and Lambda targets too."""
    if getattr(self, "state", "ENABLED") != "ENABLED" or not self.event_pattern.matches_event(original_event):
        return
    ours = [target for target in self.targets if _is_delivered_by_us(target)]
    theirs = [target for target in self.targets if not _is_delivered_by_us(target)]
    if ours:
        event = dict(original_event)
        if event.get("id") == _MOTO_S3_CONSTANT_EVENT_ID:
            event["id"] = str(uuid.uuid4())  # moto gives every S3 event the same id; AWS ids are unique
        for target in ours:
            payload = eventbridge_payload(event, target)
            try:
                _deliver(self, target, payload)
            except Exception as exc:
                LOG.exception("EventBridge rule %s could not deliver to %s", self.name, target["Arn"])
                _send_to_dead_letter_queue(self, target, payload, exc)
    if theirs:
        # Hand moto a shallow copy that only has its own kinds of target: no shared mutation across threads.
        view = copy.copy(self)
        view.targets = theirs
        _ORIGINALS["moto.events.models.Rule.send_to_targets"](view, original_event, transform_input)


# ---------------------------------------------------------------------- s3 bucket policy

#: condition (operator, key) -> its value on every local request
_KNOWN_CONDITIONS: Mapping[tuple[str, str], str] = {("bool", "aws:securetransport"): "true"}


def _condition_holds(condition: Mapping[str, Any] | None) -> bool | None:
    """True/False when every clause is one we can evaluate; None when one is not."""
    if not condition:
        return True
    for operator, clauses in condition.items():
        for key, expected in clauses.items():
            actual = _KNOWN_CONDITIONS.get((operator.lower(), key.lower()))
            if actual is None:
                return None
            values = expected if isinstance(expected, list) else [expected]
            if actual not in {str(value).lower() for value in values}:
                return False
    return True


def effective_bucket_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The statements of ``policy`` that apply to a local request (conditions evaluated as described above)."""
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        holds = _condition_holds(statement.get("Condition"))
        if holds is None:
            LOG.warning("bucket policy statement %s has conditions the local cloud ignores", statement.get("Sid"))
        elif holds:
            kept.append({key: value for key, value in statement.items() if key != "Condition"})
    return {**policy, "Statement": kept}


def _bucket_get_permission(self: Any, action: str, resource: str) -> Any:
    """Replacement for ``FakeBucket.get_permission``: bucket policies with their conditions evaluated."""
    access_control = resolve_dotted("moto.iam.access_control")
    if self.policy is None:
        return access_control.PermissionResult.NEUTRAL
    raw = self.policy.decode() if isinstance(self.policy, bytes) else str(self.policy)
    policy = effective_bucket_policy(json.loads(raw))
    return access_control.IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)


# ------------------------------------------------------------------ cloudwatch: percentiles


def percentile(values: list[float], rank: float) -> float | None:
    """The nearest-rank ``rank``-th percentile of ``values`` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(rank / 100 * len(ordered)) - 1)
    return ordered[min(index, len(ordered) - 1)]


def _statistics_for_type(self: Any, stat: str) -> Any:
    """Replacement for ``Statistics.get_statistics_for_type``: percentiles (``pNN``) too."""
    if stat.startswith("p"):
        try:
            rank = float(stat[1:])
        except ValueError:
            rank = -1.0
        if 0 < rank <= 100:
            return percentile([float(v) for v in self.metric_single_values_list], rank)
    return _ORIGINALS["moto.cloudwatch.models.Statistics.get_statistics_for_type"](self, stat)


# ------------------------------------------ dynamodb: atomic single-item writes, reads between them

_DYNAMODB_LOCK = threading.RLock()


def _atomic(name: str) -> Callable[..., Any]:
    def serialized(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return _ORIGINALS[f"{_DYNAMODB_BACKEND}.{name}"](self, *args, **kwargs)

    serialized.__name__ = name
    return serialized


# --------------------------------------------------------------- lambda API: injected faults

_FUNCTION_IN_PATH = re.compile(r"/functions/([^/?]+)")


def _fault_for(operation: str, path: str) -> tuple[int, dict[str, str], str] | None:
    plan = _STATE.get("faults")
    match = _FUNCTION_IN_PATH.search(path)
    if plan is None or match is None:
        return None
    function = unquote(match.group(1)).split(":function:")[-1].split(":")[0]
    fault = plan.check(operation, function)
    if fault is None:
        return None
    LOG.warning("injected fault: %s on %s -> %s", operation, function, fault.error)
    body = json.dumps({"Type": "User" if fault.status < 500 else "Service", "message": fault.message})
    # moto takes the HTTP status from the headers' "status", not from the tuple.
    headers = {"status": str(fault.status), "x-amzn-ErrorType": fault.error, "Content-Type": "application/json"}
    return fault.status, headers, body


def _faulty(operation: str, method: str) -> Callable[..., Any]:
    def respond(self: Any) -> Any:
        injected = _fault_for(operation, str(getattr(self, "path", "")))
        if injected is not None:
            return injected
        return _guarded(method)(self)

    respond.__name__ = method
    return respond


# ------------------------------------------------- dynamodb and sns API: injected faults


def _dynamodb_table(response: Any) -> str:
    """The table a DynamoDB request is about (the first one, for batch and transaction calls)."""
    body = response.body  # DynamoHandler has parsed it already; a raw string only if moto stops doing so
    if not isinstance(body, dict):
        try:
            body = json.loads(body or "{}")
        except (TypeError, ValueError):
            return ""
    if "TableName" in body:
        return str(body["TableName"])
    if body.get("RequestItems"):
        return str(next(iter(body["RequestItems"])))
    for item in body.get("TransactItems", []):
        for action in item.values():
            if isinstance(action, dict) and "TableName" in action:
                return str(action["TableName"])
    return ""


def _service_faulty(owner: str, method: str, kind: str, resource_of: Callable[[Any], str]) -> Callable[..., Any]:
    """A response method that fails as the fault plan says (a ServiceException, serialized as the service does)."""
    operation = "".join(part.title() for part in method.split("_"))

    def respond(self: Any) -> Any:
        plan = _STATE.get("faults")
        fault = plan.check(operation, resource_of(self), kind=kind) if plan is not None else None
        if fault is not None:
            LOG.warning("injected fault: %s on %s -> %s", operation, resource_of(self), fault.error)
            raise resolve_dotted(_SERVICE_EXCEPTION)(fault.error, fault.message)
        return _ORIGINALS[f"{owner}.{method}"](self)

    respond.__name__ = method
    return respond


# ------------------------------------------------------ lambda API: AWS's preconditions

#: Names Lambda sets itself; AWS refuses them in a function's environment (its documented list).
RESERVED_ENVIRONMENT_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
#: AWS measures the variables as compact JSON (``{"KEY":"value"}``) in bytes.
ENVIRONMENT_LIMIT_BYTES = 4096
_ENVIRONMENT_REFUSED = "Lambda was unable to configure your environment variables because the environment variables "


def environment_violation(variables: Mapping[str, Any] | None) -> str | None:
    """AWS's message refusing ``variables`` (reserved names, over 4 KB), or None when Lambda accepts them."""
    if not variables:
        return None
    reserved = sorted(name for name in variables if name in RESERVED_ENVIRONMENT_VARIABLES)
    if reserved:
        return (
            f"{_ENVIRONMENT_REFUSED}you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
    measured = json.dumps({str(k): str(v) for k, v in variables.items()}, separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode("utf-8")) > ENVIRONMENT_LIMIT_BYTES:
        return f"{_ENVIRONMENT_REFUSED}you have provided exceeded the 4KB limit. String measured: {measured}"
    return None


def code_sha256_violation(expected: str | None, current: str) -> str | None:
    """AWS's message refusing a ``PublishVersion`` whose ``CodeSha256`` is not ``$LATEST``'s, or None."""
    if expected is None or expected == current:
        return None
    return (
        f"CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST ({current}). "
        "Please try again with the CodeSHA256 in $LATEST."
    )


def _request_environment(response: Any) -> Mapping[str, Any] | None:
    try:
        body = json.loads(response.body or "{}")
    except ValueError:
        return None  # moto answers a malformed body itself
    environment = body.get("Environment") if isinstance(body, dict) else None
    return environment.get("Variables") if isinstance(environment, dict) else None


def _publish_version_violation(response: Any) -> str | None:
    function_name = unquote(str(response.path).split("/")[-2])
    latest = response.backend.get_function(function_name, None)  # moto's own error for an unknown function
    return code_sha256_violation(response._get_param("CodeSha256"), str(latest.code_sha_256))


_ALIAS_REVISION_REFUSED = (
    "The Revision Id provided does not match the latest Revision Id. Call the GetAlias API to retrieve the latest "
    "Revision Id"
)


def _update_alias_violation(response: Any) -> str | None:
    """AWS's message refusing an ``UpdateAlias`` whose ``RevisionId`` is not the alias's current one, or None."""
    try:
        wanted = json.loads(response.body or "{}").get("RevisionId")
    except (ValueError, AttributeError):
        return None
    if not wanted:
        return None
    function_name = unquote(str(response.path).rsplit("/")[-3])
    alias_name = unquote(str(response.path).rsplit("/", 2)[-1])
    alias = response.backend.get_alias(name=alias_name, function_name=function_name)  # moto's 404 if absent
    return None if wanted == alias.revision_id else _ALIAS_REVISION_REFUSED


def _new_alias_revision(self: Any, *args: Any, **kwargs: Any) -> None:
    """Replacement for ``LambdaAlias.update``: every change of an alias gets a new ``RevisionId``, as on AWS."""
    _ORIGINALS[f"{_LAMBDA_ALIAS}.update"](self, *args, **kwargs)
    self.revision_id = str(uuid.uuid4())


#: ``LambdaResponse`` method -> what makes AWS refuse the request before anything changes.
_PRECONDITIONS: Mapping[str, Callable[[Any], str | None]] = {
    "update_alias": _update_alias_violation,
    "publish_version": _publish_version_violation,
    "create_function": lambda response: environment_violation(_request_environment(response)),
    "update_function_configuration": lambda response: environment_violation(_request_environment(response)),
}


#: How AWS answers a refused request, when not ``InvalidParameterValueException`` (400).
_REFUSED_AS: Mapping[str, tuple[str, int]] = {"update_alias": ("PreconditionFailedException", 412)}
#: A precondition and the write it guards happen as one step, as one API call does on AWS.
_PRECONDITION_LOCK = threading.RLock()


def _guarded(method: str) -> Callable[..., Any]:
    def respond(self: Any) -> Any:
        precondition = _PRECONDITIONS.get(method)
        with _PRECONDITION_LOCK:
            violation = precondition(self) if precondition is not None else None
            if violation is not None:
                error, status = _REFUSED_AS.get(method, ("InvalidParameterValueException", 400))
                headers = {"status": str(status), "x-amzn-ErrorType": error, "Content-Type": "application/json"}
                return status, headers, json.dumps({"Type": "User", "message": violation})
            return _ORIGINALS[f"{_LAMBDA_RESPONSE}.{method}"](self)

    respond.__name__ = method
    return respond


# ----------------------------------------------------------------------- time scaling


class _ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier: ``sleep`` is scaled, the rest is ``time``."""

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) * _time_scale())

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
    """Replacement for ``WaitFunction._wait_interval``: scaled, still interruptible by stopping the execution."""
    deadline = time.monotonic() + max(0.0, float(wait_seconds)) * _time_scale()
    while (remaining := deadline - time.monotonic()) > 0:
        env.program_state_event.wait(remaining)
        if not env.is_running():
            return


def _timeout_seconds_path(self: Any, env: Any) -> int:
    """Replacement for ``TimeoutSecondsPath._eval_seconds``: the state's timeout on the local time scale,
    in whole seconds (as the execution history reports it), at least one."""
    seconds = _ORIGINALS[f"{_TIMEOUT_PATH}._eval_seconds"](self, env)
    return max(1, math.ceil(float(seconds) * _time_scale()))


def _iteration_error_name(error_name: str) -> Any:
    """Stand-in for ``CustomErrorName`` in moto's Map iteration worker: ``States.*`` names are moto's own."""
    if error_name.startswith("States."):
        return resolve_dotted(f"{_STATES_ERROR_NAME}.from_name")(error_name)
    return _ORIGINALS[f"{_ITERATION_WORKER}.CustomErrorName"](error_name=error_name)


def _update_function_code(self: Any, updated_spec: dict[str, Any]) -> Any:
    """UpdateFunctionCode from exactly the S3 object version named by ``S3ObjectVersion``."""
    version_id = updated_spec.get("S3ObjectVersion")
    original = _ORIGINALS[f"{_LAMBDA_FUNCTION}.update_function_code"]
    if not version_id or updated_spec.get("DryRun") or "S3Bucket" not in updated_spec or "S3Key" not in updated_spec:
        return original(self, updated_spec)
    s3 = resolve_dotted("moto.s3.models.s3_backends")[self.account_id][self.partition]
    key = s3.get_object(updated_spec["S3Bucket"], updated_spec["S3Key"], version_id=version_id)
    if key is None:
        raise resolve_dotted("moto.awslambda.exceptions.InvalidParameterValueException")(
            "Error occurred while GetObject. S3 Error Code: NoSuchVersion. S3 Error Message: "
            "The specified version does not exist."
        )
    original(self, updated_spec)  # moto's bookkeeping (code location, update state), from the latest version
    self.code_bytes, self.code_size, self.code_sha_256, self.code_digest = resolve_dotted(
        "moto.awslambda.models._s3_content"
    )(key)
    self.code["S3ObjectVersion"] = version_id
    return self.get_configuration()


# ---------------------------------------------------------------------------- install


def _patch(name: str, replacement: Any) -> None:
    owner_name, _, attribute = name.rpartition(".")
    owner = resolve_dotted(owner_name)
    _ORIGINALS.setdefault(name, getattr(owner, attribute))
    setattr(owner, attribute, replacement)


_PATCHES: Mapping[str, Callable[..., Any] | object] = {
    "moto.awslambda.models.LambdaFunction._invoke_lambda": _invoke_lambda,
    "moto.awslambda.models.LambdaBackend.invoke": _lambda_backend_invoke,
    "moto.awslambda.responses.LambdaResponse.invoke": _lambda_response_invoke,
    "moto.events.models.Rule.send_to_targets": _send_to_targets,
    "moto.s3.models.FakeBucket.get_permission": _bucket_get_permission,
    "moto.stepfunctions.responses.StepFunctionResponse.send_task_failure": _send_task_failure,
    "moto.cloudwatch.models.Statistics.get_statistics_for_type": _statistics_for_type,
    f"{_WAIT_FUNCTION}._wait_interval": _wait_interval,
    f"{_RETRIER_DECL}.time": _ScaledTime(),
    f"{_TIMEOUT_PATH}._eval_seconds": _timeout_seconds_path,
    f"{_ITERATION_WORKER}.CustomErrorName": _iteration_error_name,
    **{f"{_DYNAMODB_BACKEND}.{name}": _atomic(name) for name in _DYNAMODB_ATOMIC},
    **{f"{_LAMBDA_RESPONSE}.{method}": _faulty(op, method) for op, method in _FAULT_OPERATIONS.items()},
    f"{_LAMBDA_RESPONSE}.create_function": _guarded("create_function"),
    f"{_LAMBDA_ALIAS}.update": _new_alias_revision,
    f"{_SNS_RESPONSE}.publish": _service_faulty(
        _SNS_RESPONSE, "publish", "topic", lambda response: str(response._get_param("TopicArn") or "")
    ),
    **{
        f"{_DYNAMODB_RESPONSE}.{method}": _service_faulty(_DYNAMODB_RESPONSE, method, "table", _dynamodb_table)
        for method in _DYNAMODB_FAULT_METHODS
    },
    f"{executions.SFN_EXECUTION}.Execution.stop": executions._execution_stop,
    f"{executions.SFN_EXECUTION}.BaseExecutionWorkerCommunication.terminated": executions._terminated,
    f"{executions.SFN_WORKER}.start": executions._worker_start,
    f"{executions.SFN_ENVIRONMENT}.set_error": executions._set_error,
    f"{executions.SFN_ENVIRONMENT}.set_timed_out": executions._set_timed_out,
    f"{executions.SFN_EVENT_MANAGER}.add_event": executions._add_event,
    f"{executions.SFN_RESPONSE}.stop_execution": executions._stop_execution_response,
    f"{_LAMBDA_FUNCTION}.update_function_code": _update_function_code,
}


def apply(settings: Settings) -> WorkerPool:
    """Install every patch (once) and (re)configure them; returns the worker pool now in use."""
    with _APPLY_LOCK:
        problems = check_seams()
        if problems:
            raise SeamMovedError("\n".join(problems))
        for name, replacement in _PATCHES.items():
            if name not in _ORIGINALS:
                _patch(name, replacement)
        old_pool = _STATE.get("pool")
        if old_pool is not None:
            old_pool.shutdown()
        pool = WorkerPool(settings.endpoint_url, settings.cache_dir, settings.max_workers_per_version)
        _STATE.update(
            pool=pool, time_scale=settings.time_scale, faults=FaultPlan(settings.cache_dir.parent / FAULTS_FILE)
        )
        return pool


def restore() -> None:
    """Undo ``apply`` (kills workers); for in-process use such as tests."""
    with _APPLY_LOCK:
        pool = _STATE.pop("pool", None)
        if pool is not None:
            pool.shutdown()
        for name, original in list(_ORIGINALS.items()):
            owner_name, _, attribute = name.rpartition(".")
            setattr(resolve_dotted(owner_name), attribute, original)
            del _ORIGINALS[name]
