"""The state never approaches Step Functions' 256 KiB: the largest spec and manifest the models accept,
with every check answering as much as it can, still fit the bounds documented in ``conveyor.limits``.

(``States.DataLimitExceeded`` is not caught by ``States.ALL``: a state that grew past the limit would end
the execution with no rollback and no notification.)
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.contracts import (
    CheckResult,
    Claim,
    Deployment,
    EnvironmentResult,
    EnvironmentStep,
    Failure,
    HealthVerdict,
    LockGrant,
    Release,
    TrafficState,
)
from conveyor.domain.hooks import step_hook_calls
from conveyor.domain.limits import (
    MAX_EXECUTION_INPUT_BYTES,
    MAX_EXECUTION_STATE_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_PIPELINE_STATE_BYTES,
    MAX_STAGE_STATE_BYTES,
    MAX_VERDICT_BYTES,
    STEP_FUNCTIONS_STATE_BYTES,
    json_bytes,
)
from conveyor.domain.manifest import MAX_ENVIRONMENT_BYTES, Manifest
from conveyor.domain.pipeline import MAX_ALARMS, MAX_ENVIRONMENTS, MAX_FUNCTIONS, MAX_STEP_HOOKS, PipelineSpec
from pydantic import ValidationError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ASL = json.loads((Path(__file__).parents[2] / "statemachine" / "deployment.asl.json").read_text())
ENVIRONMENT_LIVE = ASL["States"]["RollOutEnvironments"]["ItemProcessor"]["States"]["EnvironmentLive"]
EVENT_KEYS = ("version", "source", "detail-type", "detail", "padding")
ESCAPED = "\u0001"
"""The costliest character a free-text field may hold: six bytes once the state is JSON (``\\u0001``)."""


LONGEST_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:" + "f" * 64
"""The longest way to name a target function (a full ARN; a name is at most 64 characters)."""


def task_hook(prefix: str) -> dict[str, Any]:
    """A task-token hook with every field at its limit."""
    return {
        "name": prefix + "n" * (64 - len(prefix)),
        "function_name": "h" * 140,
        "qualifier": "q" * 128,
        "timeout_seconds": 900,
        "heartbeat_seconds": 900,
    }


def largest_environment(note_chars: int) -> dict[str, Any]:
    """An environment with its fields at their limits (and ``note_chars`` of approvers' note)."""
    hook = {"function_name": "h" * 140, "qualifier": "q" * 128}
    return {
        "name": "e" + "x" * 31,
        "target": {"kind": "lambda", "function_name": LONGEST_FUNCTION, "alias": "a" * 128},
        "strategy": {"type": "linear", "step_percent": 1, "interval_seconds": 86400, "final_bake_seconds": 86400},
        "health": {
            "synthetic": {"payload": {"p": "x" * 2030}, "expect": {"e": "y" * 1010}},
            "alarms": [f"{i:02d}" + "a" * 253 for i in range(MAX_ALARMS)],
            "metrics": {"max_p95_ms": 1.5, "max_p99_ms": 2.5, "max_latency_ratio": 2.0, "window_seconds": 86400},
            "http": {"url": "https://" + "u" * 2040, "body_contains": ESCAPED * 400, "latency_budget_ms": 60000},
            "pre_traffic": hook,
            "post_traffic": hook,
            "on_inconclusive": "pause",
            "hooks": [{**task_hook(f"s{i}"), "at": [99]} for i in range(MAX_STEP_HOOKS)],
        },
        "migrate": {**task_hook("m"), "down": task_hook("d")},
        "approval": {"required": True, "timeout_seconds": 604800, "approvers_note": ESCAPED * note_chars},
    }


def largest_spec() -> PipelineSpec:
    """The largest spec the model accepts, all in one environment (which every stage's state carries twice:
    in the deployment and as the environment of its iteration), grown until one more byte is refused."""

    def spec(note_chars: int) -> dict[str, Any]:
        return {"app": "a" + "p" * 62, "concurrency": "supersede", "environments": [largest_environment(note_chars)]}

    low, high = 0, 1000  # approvers_note's own max_length
    while low < high:  # the longest note the whole-spec bound still accepts
        middle = (low + high + 1) // 2
        try:
            PipelineSpec.model_validate(spec(middle))
            low = middle
        except ValidationError:
            high = middle - 1
    assert low < 1000, "the whole-spec bound, not a field's, must be what stops the growth"
    return PipelineSpec.model_validate(spec(low))


def largest_manifest() -> Manifest:
    """A manifest at the limits: the largest function environment Lambda takes, every other field at its max."""
    document: dict[str, Any] = {
        "schema_version": 1,
        "app": "a" + "p" * 62,
        "version": "1" + "0" * 63,
        "package": {"sha256": "0" * 64, "size": 250 * 1024 * 1024},
        "created_at": NOW.isoformat(),
        "commit": {"sha": "f" * 64, "time": NOW.isoformat()},
        "build": {"id": "b" * 256, "url": "https://" + "c" * 2040},
        "function_config": {
            "environment": {f"V{i:03d}": "v" * 185 for i in range(20)},
            "memory_mb": 10240,
            "timeout_seconds": 900,
        },
    }
    manifest = Manifest.model_validate(document)
    assert json_bytes(manifest.function_config.environment if manifest.function_config else {}) > 0.9 * (
        MAX_ENVIRONMENT_BYTES
    )
    return manifest


def deployment(spec: PipelineSpec, manifest: Manifest) -> Deployment:
    key = "artifacts/" + "k" * 1000 + ".zip"  # S3 keys are at most 1024 bytes
    return Deployment.model_validate(
        {
            "deployment_id": "d-" + "0" * 20,
            "app": spec.app,
            "version": manifest.version,
            "artifact": {"bucket": "b" * 63, "key": key, "version_id": "v" * 1024, "etag": "e" * 66, "size": 1},
            "package": {"bucket": "b" * 63, "key": "releases/" + "r" * 1000, "sha256": "0" * 64, "size": 1},
            "manifest": manifest.model_dump(mode="json"),
            "environments": [env.model_dump(mode="json") for env in spec.environments],
            "notifications": {"on_success": True},
            "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:" + "x" * 160,
            "pushed_by": "arn:aws:sts::123456789012:assumed-role/" + "r" * 200,
            "started_at": NOW.isoformat(),
            "policy": spec.policy.model_dump(mode="json"),
            "home": {"partition": "aws-iso-b", "account": "123456789012", "region": "ap-southeast-5"},
        }
    )


def loudest_verdict(alarms: int) -> HealthVerdict:
    """A verdict with every check a spec can ask for, each answering with as much as it can."""
    kinds = ["synthetic", "metrics", "http", "hook", "hook"] + ["alarm"] * alarms
    checks = [
        CheckResult(
            name=f"alarm:{'a' * 255}" if kind == "alarm" else kind,
            kind=kind,  # type: ignore[arg-type]
            status="inconclusive",
            reason="r" * 10_000 + ESCAPED * 10_000,
            evidence={"response": "x" * 10_000, "detail": ESCAPED * 10_000},
        )
        for kind in kinds
    ]
    verdict = HealthVerdict(
        status="inconclusive",
        reason="; ".join(check.reason for check in checks),
        weight=99,
        checks=checks,
        evaluated_at=NOW,
        step=99,
        inconclusive_count=20,
        retry_after_seconds=86400,
    )
    return verdict.within()


def environment_step(spec: PipelineSpec, manifest: Manifest) -> EnvironmentStep:
    environment = spec.environments[0]
    steps = environment.traffic_steps()
    return EnvironmentStep(
        deployment=deployment(spec, manifest),
        environment=environment,
        release=release(environment.target.function_name),
        traffic=TrafficState(
            steps=steps,
            index=len(steps) - 2,
            weight=99,
            wait_seconds=86400,
            complete=False,
            started_at=NOW,
            alias_revision="r" * 36,
            companion_revisions={f"{n}" + "f" * 63: "r" * 36 for n in range(MAX_FUNCTIONS - 1)},
            # every step hook is due at 99%: the calls RunStepHooks makes travel in the state
            hooks=step_hook_calls(
                environment,
                deployment=deployment(spec, manifest),
                release=release(environment.target.function_name),
                weight=99,
                step=len(steps) - 1,
            ),
        ),
        health=loudest_verdict(MAX_ALARMS),
        lock=LockGrant(
            status="acquired",
            app=spec.app,
            environment=environment.name,
            target=LONGEST_FUNCTION,
            holder="arn:aws:states:us-east-1:123456789012:execution:" + "x" * 160,
            token=2**53,
            lease_seconds=900,
            waiting_for="d-" + "0" * 20,
            companion_tokens={LONGEST_FUNCTION + str(n): 2**53 for n in range(MAX_FUNCTIONS - 1)},
        ),
    )


def release(function_name: str) -> Release:
    """The release of a target of the most functions, each named as long as it may be."""

    def one(name: str) -> Release:
        return Release(
            environment="e" * 32,
            function_name=name,
            alias="a" * 128,
            version_before="9" * 10,
            version_after="9" * 10,
            code_sha256=hashlib.sha256(b"x").hexdigest(),
            reused=False,
            alias_revision="r" * 36,
        )

    companions = [one(f"{n}" + "f" * 63) for n in range(MAX_FUNCTIONS - 1)]
    return one(function_name).model_copy(update={"companions": companions})


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return largest_spec()


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return largest_manifest()


def test_the_largest_spec_is_held_to_its_bound(spec: PipelineSpec) -> None:
    size = json_bytes(spec.model_dump(mode="json"))
    assert MAX_PIPELINE_STATE_BYTES - 64 < size <= MAX_PIPELINE_STATE_BYTES


def test_the_largest_manifest_is_held_to_its_bound(manifest: Manifest) -> None:
    assert json_bytes(manifest.model_dump(mode="json")) <= MAX_MANIFEST_BYTES


def test_a_verdict_with_every_check_answering_at_length_is_held_to_its_bound() -> None:
    verdict = loudest_verdict(MAX_ALARMS)
    assert json_bytes(verdict.model_dump(mode="json")) <= MAX_VERDICT_BYTES
    assert len(verdict.checks) == MAX_ALARMS + 5
    assert all(check.reason for check in verdict.checks)  # clipped, not dropped


def test_the_deployment_contract_stays_under_the_stage_bound(spec: PipelineSpec, manifest: Manifest) -> None:
    assert json_bytes(deployment(spec, manifest).model_dump(mode="json")) <= MAX_STAGE_STATE_BYTES


def test_an_environment_step_at_its_fullest_stays_under_the_stage_bound(spec: PipelineSpec, manifest: Manifest) -> None:
    # Given the state EvaluateHealth returns into: the deployment, its largest environment, the release,
    # the longest traffic plan (linear 1%: 100 steps) and a verdict with the most checks
    step = environment_step(spec, manifest)
    assert step.traffic is not None
    assert len(step.traffic.steps) == 101  # the pre-traffic hook's weight-0 step + 99 linear steps + 100%
    size = json_bytes(step.model_dump(mode="json"))

    # Then it stays under the documented bound, a quarter of the service limit
    assert size <= MAX_STAGE_STATE_BYTES
    assert MAX_STAGE_STATE_BYTES * 4 == STEP_FUNCTIONS_STATE_BYTES

    # And even with the longest cause Step Functions puts in a Catch (32,768 characters) it is under half
    failed = step.model_copy(update={"failure": Failure(Error="States.TaskFailed", Cause="c" * 32_768)})
    assert json_bytes(failed.model_dump(mode="json")) <= STEP_FUNCTIONS_STATE_BYTES // 2


def test_the_execution_state_after_every_environment_stays_under_its_bound(
    spec: PipelineSpec, manifest: Manifest
) -> None:
    # Given the top-level state Finalize reads: the input event, the claim, the deployment and one
    # result per environment (the Map keeps each environment's release, traffic and verdict)
    live = environment_step(spec, manifest)
    assert live.release is not None
    assert live.traffic is not None
    assert live.health is not None
    # (EnvironmentLive keeps the last traffic step without the step hooks it ran: the ledger has them)
    assert "hooks" not in ENVIRONMENT_LIVE["Parameters"]["traffic"]
    # (and its release without the companion functions', which it does not name)
    kept = {key.removesuffix(".$") for key in ENVIRONMENT_LIVE["Parameters"]["release"]}
    assert "companions" not in kept
    assert kept == set(Release.model_fields) - {"companions"}
    result = EnvironmentResult(
        release=live.release.model_copy(update={"companions": []}),
        traffic=live.traffic.model_copy(update={"hooks": []}),
        health=live.health,
    )
    state = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": "b" * 63},
            "object": {"key": "artifacts/" + "k" * 1000 + ".zip", "version-id": "v" * 1024, "etag": "e" * 66},
            "requester": "r" * 200,
            "source-ip-address": "203.0.113.7",
        },
        "padding": "",
        "claim": Claim(deployment_id="d-" + "0" * 20, decision="proceed", reason="claimed").model_dump(mode="json"),
        "deployment": live.deployment.model_dump(mode="json"),
        "environments": [result.model_dump(mode="json")] * MAX_ENVIRONMENTS,
    }
    # (the input event as large as ClaimDeployment lets it be)
    state["padding"] = "p" * (MAX_EXECUTION_INPUT_BYTES - json_bytes({k: state[k] for k in EVENT_KEYS}))
    assert json_bytes({k: state[k] for k in EVENT_KEYS}) == MAX_EXECUTION_INPUT_BYTES
    assert json_bytes(state) <= MAX_EXECUTION_STATE_BYTES


def test_a_spec_over_its_bound_is_refused_naming_the_size(spec: PipelineSpec) -> None:
    document = spec.model_dump(mode="json")
    document["environments"][-1]["approval"]["approvers_note"] += "x" * 20
    with pytest.raises(ValidationError, match=f"more than the limit of {MAX_PIPELINE_STATE_BYTES}"):
        PipelineSpec.model_validate(document)
