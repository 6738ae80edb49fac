"""Lambda: run a version's real code, route aliases by weight, and refuse what AWS refuses.

Seams (moto 5.2.5) and why:

``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)``
    moto runs Lambda code only in Docker. We run the version's real code in a worker process
    (``conveyor_local.workers``) and return moto's ``(payload, errored, logs)``; moto keeps doing
    version/alias resolution and ``x-amz-function-error``, and its Step Functions interpreter names
    a failed task's error after the payload's ``errorType``. Each invocation also writes AWS/Lambda
    metrics and its log lines (``conveyor_local.lambda_telemetry``).

``moto.awslambda.models.LambdaBackend.invoke(self, function_name, qualifier, body, headers, response_headers)``
    moto stores an alias's ``RoutingConfig.AdditionalVersionWeights`` but never applies them. We
    resolve the alias ourselves, pick the executed version by weight, and remember how the function
    was addressed (for the ``Resource``/``ExecutedVersion`` metric dimensions and the
    ``X-Amz-Executed-Version`` header). ``InvocationType=Event`` runs on a background thread and
    returns 202 at once, as on AWS (moto runs it inline); a function error is retried twice, one
    and then two (time-scaled) minutes later, as Lambda retries an asynchronous invocation, or as
    often as the function's event invoke config says (``MaximumRetryAttempts`` 0 or 1, as
    ``PutFunctionEventInvokeConfig`` stored it: relied on, ``LambdaFunction.event_invoke_config``;
    a task-token hook sets 0, so a crashed hook is never run a second time). Once the retries are spent, the
    event goes to the config's ``DestinationConfig.OnFailure`` SQS queue in Lambda's invocation record
    (``RetriesExhausted``, the request payload and the error), as on AWS; moto stores the config and never
    delivers (relied on, ``SQSBackend.send_message``).
    Relies on ``code_digest`` of a function and a layer version (the zip's hex SHA-256, computed by
    moto once per upload), ``LambdaStorage.split_function_arn``, ``LambdaStorage._get_function_aliases``,
    ``LambdaBackend.layers_versions_by_arn`` and ``LambdaFunction.invoke``.

``moto.awslambda.responses.LambdaResponse.invoke(self)``
    moto reads the qualifier from a ``qualifier`` query parameter, but boto3 sends ``Qualifier``,
    so ``invoke(FunctionName=f, Qualifier="live")`` silently ran ``$LATEST``. We copy
    ``Qualifier`` to ``qualifier`` before moto looks.

``moto.awslambda.responses.LambdaResponse.{publish_version,update_alias,create_alias,delete_alias,
update_function_code,update_function_configuration}``
    fault injection (``conveyor_local.faults``): when ``<state-dir>/faults.json`` has a rule for the
    operation and function, the call fails with the rule's error code and HTTP status, as a
    throttle, an outage or a conflicting update would on AWS. No rule: moto's original.

``moto.awslambda.responses.LambdaResponse.{publish_version,create_function,update_function_configuration}``
    Lambda's preconditions (``conveyor_local.lambda_rules``), checked before moto changes anything
    (after an injected fault, if any): ``PublishVersion`` with a ``CodeSha256`` other than
    ``$LATEST``'s is refused; an environment naming a variable Lambda reserves, or over 4 KB as
    compact JSON, is refused. Both with AWS's ``InvalidParameterValueException`` and message.
    moto's ``CodeSha256`` already is AWS's (relied on: ``LambdaFunction.code_sha_256``).

``moto.awslambda.models.LambdaAlias.update(self, description, function_version, routing_config)``
and the ``UpdateAlias`` precondition in ``LambdaResponse.update_alias``
    moto gives an alias one ``RevisionId`` at creation and ignores ``RevisionId`` on
    ``UpdateAlias``. Lambda gives every change a new revision and refuses an update naming another
    one (``PreconditionFailedException``, 412): Conveyor's ShiftTraffic, RollBack and reconciler
    fence each other with it. We renew the revision on every update and check the precondition and
    apply the write as one step.

``moto.awslambda.models.LambdaFunction.update_function_code(self, updated_spec)``
    moto ignores ``S3ObjectVersion`` and takes the key's latest version. We read the named version
    (relied on: ``moto.s3.models.s3_backends`` and ``moto.awslambda.models._s3_content``), refuse a
    version that does not exist as AWS does (``InvalidParameterValueException``), and leave every
    other update to moto.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from conveyor_local.lambda_rules import ALIAS_REVISION_REFUSED, code_sha256_violation, environment_violation
from conveyor_local.lambda_telemetry import InvocationTarget, record_invocation
from conveyor_local.moto_patches.registry import faults, original, patches, pool, relies_on, resolve_dotted, time_scale
from conveyor_local.workers import FunctionSpec, LayerSpec

LOG = logging.getLogger(__name__)

LAMBDA_MODELS = "moto.awslambda.models"
LAMBDA_FUNCTION = f"{LAMBDA_MODELS}.LambdaFunction"
LAMBDA_ALIAS = f"{LAMBDA_MODELS}.LambdaAlias"
LAMBDA_BACKEND = f"{LAMBDA_MODELS}.LambdaBackend"
LAMBDA_RESPONSE = "moto.awslambda.responses.LambdaResponse"
_LAMBDA_BACKENDS = f"{LAMBDA_MODELS}.lambda_backends"

#: Lambda API operation -> the ``LambdaResponse`` method serving it (the ones a fault may hit).
FAULT_OPERATIONS = {
    "PublishVersion": "publish_version",
    "UpdateAlias": "update_alias",
    "CreateAlias": "create_alias",
    "DeleteAlias": "delete_alias",
    "UpdateFunctionCode": "update_function_code",
    "UpdateFunctionConfiguration": "update_function_configuration",
}

_CURRENT_TARGET: contextvars.ContextVar[InvocationTarget | None] = contextvars.ContextVar(
    "conveyor_local_invocation_target", default=None
)


# ------------------------------------------------------------------------- execution


def _code_key(code: Any) -> str:
    """The hex SHA-256 of a function's or layer version's zip: moto's ``code_digest``, computed once per upload."""
    return str(code.code_digest) or hashlib.sha256(code.code_bytes).hexdigest()


def function_spec(fn: Any) -> FunctionSpec:
    """Snapshot a moto ``LambdaFunction`` (one version) into what a worker needs."""
    backend = resolve_dotted(_LAMBDA_BACKENDS)[fn.account_id][fn.region]
    layers = []
    for layer in fn.layers:
        layer_version = backend.layers_versions_by_arn(layer["Arn"])
        layers.append(LayerSpec(sha256=_code_key(layer_version), zip_bytes=layer_version.code_bytes))
    return FunctionSpec(
        function_name=fn.function_name,
        version=str(fn.version),
        unqualified_arn=f"arn:{fn.partition}:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}",
        handler=fn.handler,
        code_sha256=_code_key(fn),
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
    result = pool().invoke(spec, _event_json(event), invoked_arn)
    record_invocation(self, target, result)
    return result.payload, result.errored, result.logs


# ------------------------------------------------------------------- routing + async


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
            args=(
                _run_async,
                fn,
                body,
                function_name,
                async_retry_attempts(self, fn),
                on_failure_destination(self, fn),
            ),
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


def _event_invoke_config(backend: Any, fn: Any) -> dict[str, Any]:
    """``fn``'s function's event invoke config (the last one put: a put replaces it on AWS), or none."""
    configs = getattr(backend.get_function(fn.function_name, None), "event_invoke_config", [])
    return dict(configs[-1].config) if configs else {}


def async_retry_attempts(backend: Any, fn: Any) -> int:
    """How often Lambda retries a failed asynchronous invocation of ``fn``: its function's event invoke config's
    ``MaximumRetryAttempts``, else Lambda's default of 2."""
    config = _event_invoke_config(backend, fn)
    if "MaximumRetryAttempts" in config:
        return int(config["MaximumRetryAttempts"])
    return len(ASYNC_RETRY_DELAYS_SECONDS)


def on_failure_destination(backend: Any, fn: Any) -> str | None:
    """Where Lambda sends an asynchronous invocation it gave up on (``DestinationConfig.OnFailure``), if set."""
    destination = (_event_invoke_config(backend, fn).get("DestinationConfig") or {}).get("OnFailure") or {}
    return str(destination["Destination"]) if destination.get("Destination") else None


def on_failure_record(fn: Any, body: Any, attempts: int, error: Any) -> dict[str, Any]:
    """Lambda's invocation record for a destination, as AWS shapes it for ``RetriesExhausted``."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{fn.function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": _payload_document(body),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": error,
    }


def _deliver_on_failure(destination: str, record: dict[str, Any]) -> None:
    """Put the record on an SQS destination (the only kind the template uses), in this process's moto."""
    from moto.sqs.models import sqs_backends

    if ":sqs:" not in destination:
        LOG.error("on-failure destination %s is not an SQS queue: not emulated", destination)
        return
    _, _, _, region, account, queue = destination.split(":", 5)
    sqs_backends[account][region].send_message(queue, json.dumps(record))


def _run_async(
    fn: Any,
    body: Any,
    function_name: str,
    retries: int = len(ASYNC_RETRY_DELAYS_SECONDS),
    on_failure: str | None = None,
) -> None:
    """One asynchronous invocation, retried ``retries`` times after a function error as Lambda does; once they
    are spent, the event goes to ``on_failure`` (an SQS queue's ARN) with Lambda's invocation record."""
    delays = (0.0, *ASYNC_RETRY_DELAYS_SECONDS[:retries])
    error: Any = None
    for attempt, delay in enumerate(delays):
        time.sleep(delay * time_scale())
        response_headers: dict[str, str] = {}
        try:
            payload = fn.invoke(body, {"X-Amz-Invocation-Type": "Event"}, response_headers)
        except Exception as exc:
            LOG.exception("async invocation of %s failed (attempt %d)", function_name, attempt + 1)
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            continue
        if "x-amz-function-error" not in response_headers:
            return
        LOG.warning("async invocation of %s returned a function error (attempt %d)", function_name, attempt + 1)
        error = _payload_document(payload)
    if on_failure is None:
        LOG.error("async invocation of %s failed %d times; dropped", function_name, len(delays))
        return
    LOG.error("async invocation of %s failed %d times; sent to %s", function_name, len(delays), on_failure)
    _deliver_on_failure(on_failure, on_failure_record(fn, body, len(delays), error))


def _payload_document(payload: Any) -> Any:
    """An invocation's request or response payload as JSON (the event, the error document), or as text."""
    raw = payload.encode() if isinstance(payload, str) else payload
    try:
        return json.loads(raw) if raw else None
    except (ValueError, TypeError):
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _lambda_response_invoke(self: Any) -> Any:
    """Replacement for ``LambdaResponse.invoke``: an injected ``Invoke`` fault, else honour boto3's ``Qualifier``
    query parameter."""
    injected = _fault_for("Invoke", str(getattr(self, "path", "")))
    if injected is not None:
        return injected
    querystring = self.querystring
    if "Qualifier" in querystring and "qualifier" not in querystring:
        querystring["qualifier"] = querystring["Qualifier"]
    return original(f"{LAMBDA_RESPONSE}.invoke")(self)


# ------------------------------------------------------------------ API: injected faults

_FUNCTION_IN_PATH = re.compile(r"/functions/([^/?]+)")


def _fault_for(operation: str, path: str) -> tuple[int, dict[str, str], str] | None:
    plan = faults()
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


# ------------------------------------------------------------------- API: AWS's preconditions


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
    return None if wanted == alias.revision_id else ALIAS_REVISION_REFUSED


def _new_alias_revision(self: Any, *args: Any, **kwargs: Any) -> None:
    """Replacement for ``LambdaAlias.update``: every change of an alias gets a new ``RevisionId``, as on AWS."""
    original(f"{LAMBDA_ALIAS}.update")(self, *args, **kwargs)
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
            return original(f"{LAMBDA_RESPONSE}.{method}")(self)

    respond.__name__ = method
    return respond


def _update_function_code(self: Any, updated_spec: dict[str, Any]) -> Any:
    """UpdateFunctionCode from exactly the S3 object version named by ``S3ObjectVersion``."""
    version_id = updated_spec.get("S3ObjectVersion")
    moto_own = original(f"{LAMBDA_FUNCTION}.update_function_code")
    if not version_id or updated_spec.get("DryRun") or "S3Bucket" not in updated_spec or "S3Key" not in updated_spec:
        return moto_own(self, updated_spec)
    s3 = resolve_dotted("moto.s3.models.s3_backends")[self.account_id][self.partition]
    key = s3.get_object(updated_spec["S3Bucket"], updated_spec["S3Key"], version_id=version_id)
    if key is None:
        raise resolve_dotted("moto.awslambda.exceptions.InvalidParameterValueException")(
            "Error occurred while GetObject. S3 Error Code: NoSuchVersion. S3 Error Message: "
            "The specified version does not exist."
        )
    moto_own(self, updated_spec)  # moto's bookkeeping (code location, update state), from the latest version
    self.code_bytes, self.code_size, self.code_sha_256, self.code_digest = resolve_dotted(
        f"{LAMBDA_MODELS}._s3_content"
    )(key)
    self.code["S3ObjectVersion"] = version_id
    return self.get_configuration()


# ----------------------------------------------------------------------------- registry

patches(f"{LAMBDA_FUNCTION}._invoke_lambda", ("self", "event"), _invoke_lambda)
patches(
    f"{LAMBDA_BACKEND}.invoke",
    ("self", "function_name", "qualifier", "body", "headers", "response_headers"),
    _lambda_backend_invoke,
)
patches(f"{LAMBDA_RESPONSE}.invoke", ("self",), _lambda_response_invoke)
for _operation, _method in FAULT_OPERATIONS.items():
    patches(f"{LAMBDA_RESPONSE}.{_method}", ("self",), _faulty(_operation, _method))
patches(f"{LAMBDA_RESPONSE}.create_function", ("self",), _guarded("create_function"))
patches(f"{LAMBDA_ALIAS}.update", ("self", "description", "function_version", "routing_config"), _new_alias_revision)
patches(f"{LAMBDA_FUNCTION}.update_function_code", ("self", "updated_spec"), _update_function_code)
relies_on(f"{LAMBDA_BACKEND}.get_function", ("self", "function_name_or_arn", "qualifier"))
relies_on(f"{LAMBDA_BACKEND}.layers_versions_by_arn", ("self", "layer_version_arn"))
relies_on(f"{LAMBDA_MODELS}.LambdaStorage.split_function_arn", ("self", "arn"))
relies_on(f"{LAMBDA_MODELS}.LambdaStorage._get_function_aliases", ("self", "function_name"))
relies_on(_LAMBDA_BACKENDS)
relies_on(f"{LAMBDA_FUNCTION}.invoke", ("self", "body", "request_headers", "response_headers"))
relies_on(f"{LAMBDA_MODELS}.EventInvokeConfig", ("arn", "last_modified", "config"))
relies_on(f"{LAMBDA_MODELS}._s3_content", ("key",))
relies_on("moto.s3.models.s3_backends")
relies_on("moto.sqs.models.sqs_backends")
relies_on("moto.sqs.models.SQSBackend.send_message", ("self", "queue_name", "message_body"))
relies_on("moto.awslambda.exceptions.InvalidParameterValueException", ("message",))
