"""Trust boundaries checked in code, before anything is read or touched (IAM says the same, see template.yaml).

- The pushed object must be in Conveyor's own artifact bucket. The execution input is an S3 event, and
  anyone who may start an execution (a console re-run, a hand-written input) can name any bucket in it:
  Conveyor would read the code and the pipeline from there and deploy them.
- The execution input is bounded: the state machine carries it in every state, and Step Functions fails
  a state over 256 KiB with an error no ``Catch`` sees.
- A hook Lambda (``pre_traffic``/``post_traffic``) must carry the managed tag, like a target: Conveyor
  invokes only functions the platform admin handed to it.
"""

from __future__ import annotations

from typing import Any

from conveyor.domain.errors import (
    ExecutionInputTooLargeError,
    ForeignBucketError,
    TargetError,
    TargetNotFoundError,
    TargetNotManagedError,
)
from conveyor.domain.limits import MAX_EXECUTION_INPUT_BYTES, json_bytes
from conveyor.domain.pipeline import EnvironmentSpec
from conveyor.domain.ports import Targets


def require_bounded_input(execution_input: dict[str, Any]) -> None:
    """Refuse an execution input larger than any S3 event: every state carries it beside the deployment."""
    size = json_bytes(execution_input)
    if size > MAX_EXECUTION_INPUT_BYTES:
        raise ExecutionInputTooLargeError(
            f"the execution input is {size} bytes, more than the limit of {MAX_EXECUTION_INPUT_BYTES} "
            "(an S3 Object Created event is about 1 KiB); refused, nothing was read"
        )


def require_own_bucket(bucket: str, key: str, *, artifact_bucket: str) -> None:
    """Refuse an event about an object outside ``artifact_bucket`` (``ForeignBucketError``, naming both)."""
    if bucket != artifact_bucket:
        raise ForeignBucketError(
            f"s3://{bucket}/{key}: the execution input names bucket {bucket!r}, not Conveyor's artifact bucket "
            f"{artifact_bucket!r}; refused, nothing was read from it"
        )


def _hook_problem(error: TargetError, tag_key: str) -> str:
    if isinstance(error, TargetNotManagedError):
        return f"is not tagged {tag_key}=true; Conveyor invokes only managed functions"
    if isinstance(error, TargetNotFoundError):
        return "does not exist"
    return f"could not be read: {error}"


def require_managed_hooks(environment: EnvironmentSpec, targets: Targets, *, tag_key: str, source: str) -> None:
    """Refuse an environment whose hook functions are missing or lack ``tag_key=true`` (named by phase), with the
    error the adapter raised (a missing hook is ``TargetNotFoundError``, an unreadable one ``TargetReadError``)."""
    hooks = {
        f"health.{phase}: hook function": hook
        for phase, hook in (
            ("pre_traffic", environment.health.pre_traffic),
            ("post_traffic", environment.health.post_traffic),
        )
        if hook is not None
    } | {f"hook {task_hook.name!r}: function": task_hook for task_hook in environment.hooks_by_name()}
    for where, hook in hooks.items():
        try:
            targets.ensure_managed(hook.function_name, tag_key)
        except TargetError as exc:
            problem = _hook_problem(exc, tag_key)
            raise type(exc)(
                f"{source}: environments {environment.name!r} {where} {hook.function_name!r} {problem}"
            ) from exc
