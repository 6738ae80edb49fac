"""The inside of a local Lambda execution environment: ``python -I -S -B .../conveyor_local/worker.py``.

One process runs one function version, one invocation at a time, for as long as its
parent keeps it (warm starts). It imports nothing but the standard library, and it runs as a
script with no site-packages (``conveyor_local.runtime_site`` says what ``--path`` and
``--runtime-path`` add), so its cold start is the handler's own and a handler imports only what
it could import on Lambda.

Protocol (parent = ``conveyor_local.workers``):

* requests arrive as JSON lines on stdin; EOF on stdin means the parent is gone, so the
  worker exits (a Lambda environment never outlives its service);
* responses go back as JSON lines on a dedicated pipe (``--response-fd``), never on
  stdout, because the handler owns stdout and stderr exactly as on AWS;
* during an invocation file descriptors 1 and 2 point at ``--log-file`` (truncated per
  invocation), which the parent reads afterwards as the invocation's logs. The parent
  can therefore still collect partial logs after killing a worker that timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

Handler = Callable[[Any, "LambdaContext"], Any]


@dataclass
class LambdaContext:
    """The attributes of the AWS Lambda Python runtime's context object that handlers use."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_ms: int
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


class _HandlerLoadError(Exception):
    """Raised when ``_HANDLER`` cannot be imported; carries the Lambda runtime's error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


TIME_SCALE_ENV = "CONVEYOR_LOCAL_TIME_SCALE"
"""The local cloud's time scale (``conveyor_local.moto_patches.registry``), which every worker is given."""
_SCALED_BACKOFF = "botocore.retries.standard"


class _ScaledSdkBackoff(importlib.abc.MetaPathFinder):
    """Under a time scale, the SDK's retry backoff runs as scaled as every other wait of the local cloud.

    botocore's standard retry mode sleeps up to 20 s between attempts (real time, inside the function); the
    local cloud already scales Wait states, state machine retries and Lambda's own retries, so a function
    retrying through an injected outage waited out minutes the rest of the cloud had scaled to seconds. When
    ``botocore.retries.standard`` is imported (the worker imports nothing itself: a function that never uses
    the SDK pays nothing), its ``ExponentialBackoff`` delay is multiplied by the scale.
    """

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _SCALED_BACKOFF:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, factor = spec.loader, self.factor

        class _Scaling(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: Any) -> None:
                loader.exec_module(module)
                backoff = module.ExponentialBackoff
                delay = backoff.delay_amount
                backoff.delay_amount = lambda self, context: delay(self, context) * factor

        spec.loader = _Scaling()
        return spec


def scale_sdk_backoff(environ: Mapping[str, str] = os.environ) -> None:
    """Scale the SDK's retry backoff by the local cloud's time scale, when there is one below 1."""
    try:
        factor = float(environ.get(TIME_SCALE_ENV, "1"))
    except ValueError:
        return
    if 0 <= factor < 1:
        sys.meta_path.insert(0, _ScaledSdkBackoff(factor))


def load_handler(spec: str) -> Handler:
    """Import ``module.function`` the way the Lambda Python runtime does."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise _HandlerLoadError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _HandlerLoadError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from exc
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise _HandlerLoadError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return handler  # type: ignore[no-any-return]


@contextlib.contextmanager
def captured_output(log_file: str) -> Iterator[None]:
    """Point fds 1 and 2 at ``log_file`` so prints, logging and C extensions all land there."""
    sys.stdout.flush()
    sys.stderr.flush()
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(1), os.dup(2)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The body AWS returns for an unhandled handler exception (Step Functions reads errorType)."""
    if isinstance(exc, _HandlerLoadError):
        return {"errorMessage": str(exc), "errorType": exc.error_type, "requestId": request_id, "stackTrace": []}
    # Drop this module's own frames: AWS shows only the handler's side of the stack.
    frames = traceback.format_list([f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__])
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": [frame.rstrip("\n") for frame in frames],
    }


class Runtime:
    """Holds the imported handler between invocations (module state survives warm starts)."""

    def __init__(self, handler_spec: str) -> None:
        self._handler_spec = handler_spec
        self._handler: Handler | None = None
        self._init_error: _HandlerLoadError | None = None

    def initialize(self) -> dict[str, Any]:
        """The init phase: import the handler module once, before the first invocation."""
        try:
            self._handler = load_handler(self._handler_spec)
        except _HandlerLoadError as exc:
            self._init_error = exc
            print(f"[ERROR] {exc.error_type}: {exc}", file=sys.stderr)
            if exc.__cause__ is not None:
                traceback.print_exception(exc.__cause__)
        return {"ready": True, "init_error": self._init_error is not None}

    def invoke(self, request: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            function_version=os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
            invoked_function_arn=request["invoked_function_arn"],
            memory_limit_in_mb=int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
            aws_request_id=request["request_id"],
            log_group_name=os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
            log_stream_name=os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
            deadline_ms=request["deadline_ms"],
        )
        try:
            if self._handler is None:
                raise self._init_error or _HandlerLoadError("Runtime.Unknown", "handler not initialized")
            result = self._handler(json.loads(request["event"]), context)
        except Exception as exc:
            print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc()
            return {"payload": json.dumps(error_payload(exc, context.aws_request_id)), "errored": True}
        try:
            return {"payload": json.dumps(result), "errored": False}
        except (TypeError, ValueError) as exc:
            message = f"Unable to marshal response: {exc}"
            body = {"errorMessage": message, "errorType": "Runtime.MarshalError", "requestId": context.aws_request_id}
            return {"payload": json.dumps(body), "errored": True}


def _configure_root_logger() -> None:
    """Mirror the Lambda runtime: the root logger writes tab-separated records to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    logging.getLogger().addHandler(handler)


def _send(responses: IO[str], message: dict[str, Any]) -> None:
    responses.write(json.dumps(message) + "\n")
    responses.flush()


def serve(requests: IO[str], responses: IO[str], log_file: str, runtime: Runtime) -> None:
    with captured_output(log_file):
        ready = runtime.initialize()
    _send(responses, ready)
    for line in requests:
        request = json.loads(line)
        with captured_output(log_file):
            response = runtime.invoke(request)
        _send(responses, response)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--response-fd", type=int, required=True)
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--path", action="append", default=[], help="code dir first, then layer dirs")
    parser.add_argument("--runtime-path", action="append", default=[], help="the runtime's packages (boto3 & co)")
    args = parser.parse_args(argv)

    # As on Lambda: code and layers before the standard library, the runtime's boto3 after it.
    sys.path[:0] = args.path
    sys.path.extend(args.runtime_path)
    # The handler gets an empty stdin, as on AWS; requests keep flowing on a private copy.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    responses = os.fdopen(args.response_fd, "w", encoding="utf-8")
    _configure_root_logger()
    scale_sdk_backoff()
    serve(requests, responses, args.log_file, Runtime(os.environ["_HANDLER"]))


if __name__ == "__main__":
    main()
