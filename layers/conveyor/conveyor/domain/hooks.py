"""Task-token hooks: what a hook receives, what it answers, and how its answer becomes a verdict.

A hook (``migrate``, ``migrate.down`` or a step hook of ``health.hooks``) is a Lambda function the team owns.
Step Functions invokes it ONCE, asynchronously (``lambda:invoke.waitForTaskToken`` with ``InvocationType:
Event``), then waits up to the hook's ``timeout_seconds`` for it to call back:

- the hook receives ``{"task_token": "...", "invocation": HookInvocation}``;
- it answers ``SendTaskSuccess(taskToken, output=json.dumps({"status": "pass" | "fail", "detail": "...",
  "output": <any JSON>}))``, or ``SendTaskFailure(taskToken, error, cause)``;
- it may call ``SendTaskHeartbeat(taskToken)``; with ``heartbeat_seconds`` set it must, at least that often.

Why the state machine invokes it rather than a stage: an ``Event`` invoke returns as soon as Lambda queued
the event, so no SDK read timeout ever re-sends it (a synchronous invoke slower than botocore's 60 s read
timeout was sent again, up to 7 times, and one over 120 s killed the stage). The invoking state has no
``Retry`` but for throttling (a refused request queues nothing), so one hook run is one invocation; a
stage retrying (RecordHook on a ledger error) never invokes the hook again. The token reaches only the hook:
no stage of Conveyor receives it, logs it or notifies it.

The RecordHook stage then turns the hook's answer (or the state's error: ``States.Timeout``,
``States.HeartbeatTimeout``, the hook's own ``SendTaskFailure`` error) into a ``HookOutcome``, records it in
the ledger as a stage event with the hook's output (bounded), and raises ``HookFailedError`` (or
``DownMigrationFailedError`` for a down-migration) on a failure, which the state machine's ``Catch`` takes to
the rollback branch.
"""

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.domain.limits import clip, json_bytes
from conveyor.domain.pipeline import EnvironmentSpec

if TYPE_CHECKING:
    from conveyor.domain.contracts import Deployment, Release

HookPhase = Literal["migrate", "step", "migrate_down"]
#: The ledger's stage name for each phase: the state that runs it.
HOOK_STAGES: dict[str, str] = {"migrate": "Migrate", "step": "RunStepHooks", "migrate_down": "MigrateDown"}
MAX_HOOK_OUTPUT_BYTES = 4096
"""Bytes of a hook's ``output`` the ledger keeps as JSON; a longer one is kept clipped, its size recorded."""
MAX_HOOK_DETAIL_BYTES = 1000
HOOK_ANSWER = '{"status": "pass" | "fail", "detail": "...", "output": ...}'


class HookInvocation(BaseModel):
    """What a hook receives under ``invocation`` (beside ``task_token``): which release, where, at which step."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    hook: str = Field(description="the hook's name in the spec")
    phase: HookPhase
    deployment_id: str
    app: str
    version: str = Field(description="the app's release version (from the manifest)")
    environment: str
    function_name: str
    alias: str
    function_version: str = Field(description="the Lambda version being released")
    previous_version: str | None
    weight: int = Field(description="percent of the alias's traffic on the new version right now")
    step: int | None = Field(default=None, description="the traffic step (1-based); none for migrate and down")
    timeout_seconds: int = Field(description="the hook must report within this")


class HookRef(BaseModel):
    """The part of a hook's spec its call needs (a ``migrate`` spec's ``down``, a step hook's ``at`` are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    name: str
    function_name: str
    qualifier: str
    timeout_seconds: int
    heartbeat_seconds: int


class HookCall(BaseModel):
    """One hook to run: its spec and the invocation it receives (the state machine adds the task token)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    hook: HookRef
    invocation: HookInvocation


class HookAnswer(BaseModel):
    """What a hook sends with ``SendTaskSuccess``."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    status: Literal["pass", "fail"]
    detail: str = ""
    output: Any = None


class HookRecordRequest(BaseModel):
    """RecordHook's input: the call and either the hook's answer (``result``) or the state's error."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    call: HookCall
    result: Any = None
    failure: dict[str, Any] | None = None
    started_at: datetime | None = Field(
        default=None, description="when the state that invoked the hook was entered ($$.State.EnteredTime)"
    )
    index: int = Field(default=0, description="the hook's place among its traffic step's hooks ($$.Map.Item.Index)")

    @property
    def invoked_at(self) -> datetime | None:
        """When the hook was invoked: the state's entry for a migration or a step's first hook. A step's later hooks
        run after the ones before them, at a time the state machine does not say (None)."""
        return self.started_at if self.index == 0 else None


class HookOutcome(BaseModel):
    """A hook's result as the state and the ledger keep it (bounded)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    hook: str
    phase: HookPhase
    function: str
    status: Literal["pass", "fail"]
    reason: str
    weight: int
    step: int | None = None
    output: Any = None
    output_bytes: int = 0
    output_clipped: bool = False


def step_hook_calls(
    environment: EnvironmentSpec,
    *,
    deployment: "Deployment",
    release: "Release",
    weight: int,
    step: int,
) -> list[HookCall]:
    """The step hooks due once the alias serves ``weight`` percent at traffic step ``step`` (1-based)."""
    return [
        HookCall(
            hook=HookRef.model_validate(hook.model_dump()),
            invocation=HookInvocation(
                hook=hook.name,
                phase="step",
                deployment_id=deployment.deployment_id,
                app=deployment.app,
                version=deployment.version,
                environment=environment.name,
                function_name=release.function_name,
                alias=release.alias,
                function_version=release.version_after,
                previous_version=release.version_before,
                weight=weight,
                step=step,
                timeout_seconds=hook.timeout_seconds,
            ),
        )
        for hook in environment.hooks_at(weight)
    ]


def _where(call: HookCall) -> str:
    invocation, hook = call.invocation, call.hook
    when = {
        "migrate": "before any traffic moved",
        "migrate_down": "after the alias was restored",
        "step": f"at {invocation.weight}% traffic (step {invocation.step})",
    }[invocation.phase]
    kind = {"migrate": "migration hook", "migrate_down": "down-migration hook", "step": "hook"}[invocation.phase]
    return f"{kind} {hook.name!r} ({hook.function_name}:{hook.qualifier}) {when}"


def _failure_reason(call: HookCall, failure: dict[str, Any]) -> str:
    error = str(failure.get("Error") or "States.TaskFailed")
    cause = clip(str(failure.get("Cause") or ""), MAX_HOOK_DETAIL_BYTES)
    if error == "States.Timeout":
        return f"{_where(call)} did not report within {call.hook.timeout_seconds} s (States.Timeout)"
    if error == "States.HeartbeatTimeout":
        return f"{_where(call)} sent no heartbeat for {call.hook.heartbeat_seconds} s (States.HeartbeatTimeout)"
    if error.startswith("Lambda."):
        return f"{_where(call)} could not be invoked: {error}: {cause}".rstrip(": ")
    return f"{_where(call)} failed: {error}: {cause}".rstrip(": ")


def _bounded_output(output: Any) -> tuple[Any, int, bool]:
    size = json_bytes(output)
    if size <= MAX_HOOK_OUTPUT_BYTES:
        return output, size, False
    return clip(json.dumps(output, default=str), MAX_HOOK_OUTPUT_BYTES), size, True


def judge_hook(request: HookRecordRequest) -> HookOutcome:
    """The hook's outcome from its answer or the state's error (an answer of another shape fails)."""
    call = request.call
    base = {
        "hook": call.hook.name,
        "phase": call.invocation.phase,
        "function": f"{call.hook.function_name}:{call.hook.qualifier}",
        "weight": call.invocation.weight,
        "step": call.invocation.step,
    }
    if request.failure is not None:
        return HookOutcome(**base, status="fail", reason=_failure_reason(call, request.failure))
    try:
        answer = HookAnswer.model_validate(request.result)
    except ValidationError:
        shown = clip(json.dumps(request.result, default=str), 200)
        return HookOutcome(**base, status="fail", reason=f"{_where(call)} answered {shown}, expected {HOOK_ANSWER}")
    output, size, clipped = _bounded_output(answer.output)
    detail = f": {clip(answer.detail, MAX_HOOK_DETAIL_BYTES)}" if answer.detail else ""
    verb = "passed" if answer.status == "pass" else "failed"
    return HookOutcome(
        **base,
        status=answer.status,
        reason=f"{_where(call)} {verb}{detail}",
        output=output,
        output_bytes=size,
        output_clipped=clipped,
    )


__all__ = [
    "HOOK_STAGES",
    "HookAnswer",
    "HookCall",
    "HookInvocation",
    "HookOutcome",
    "HookRecordRequest",
    "HookRef",
    "judge_hook",
    "step_hook_calls",
]
