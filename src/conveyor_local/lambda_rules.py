"""The rules Lambda enforces on a request before it changes anything, as the local cloud applies them.

Pure functions of the request (no moto): ``conveyor_local.moto_patches.awslambda`` calls them in
front of moto's handlers and answers a violation with AWS's ``InvalidParameterValueException`` and
message. The reserved-variable list is also in ``conveyor.manifest``, on purpose: the emulation of
AWS must not share a bug with the code it tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
ALIAS_REVISION_REFUSED = (
    "The Revision Id provided does not match the latest Revision Id. Call the GetAlias API to retrieve the latest "
    "Revision Id"
)


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
