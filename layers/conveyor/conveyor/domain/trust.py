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

from conveyor.domain.errors import ExecutionInputTooLargeError, ForeignBucketError, TargetNotManagedError
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


def require_managed_hooks(environment: EnvironmentSpec, targets: Targets, *, tag_key: str, source: str) -> None:
    """Refuse an environment whose hook functions are missing or lack ``tag_key=true`` (named by phase)."""
    hooks = {"pre_traffic": environment.health.pre_traffic, "post_traffic": environment.health.post_traffic}
    for phase, hook in hooks.items():
        if hook is None:
            continue
        try:
            targets.ensure_managed(hook.function_name, tag_key)
        except TargetNotManagedError as exc:
            raise TargetNotManagedError(
                f"{source}: environments {environment.name!r} health.{phase}: hook function {hook.function_name!r} "
                f"is not tagged {tag_key}=true; Conveyor invokes only managed functions"
            ) from exc
    for task_hook in environment.hooks_by_name():
        try:
            targets.ensure_managed(task_hook.function_name, tag_key)
        except TargetNotManagedError as exc:
            raise TargetNotManagedError(
                f"{source}: environments {environment.name!r} hook {task_hook.name!r}: "
                f"function {task_hook.function_name!r} is not tagged {tag_key}=true; "
                "Conveyor invokes only managed functions"
            ) from exc
