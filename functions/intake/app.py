"""Intake: the states that accept a push before anything moves (ClaimDeployment, ValidateArtifact, AcquireLock,
CheckGates).

Each stage's module is imported the first time its state is routed here (see ``conveyor.runtime`` for the
adapters): a cold start loads what the state that woke the function needs, not every stage it serves.
"""

# isort: off
from conveyor import coldstart  # first: no garbage collection while the modules below load

# isort: on
import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from conveyor import runtime
from conveyor.domain.contracts import (
    Claim,
    ClaimRequest,
    Deployment,
    GateResult,
    LockGrant,
    ValidateRequest,
)
from conveyor.domain.pipeline import ElasticBeanstalkTarget
from conveyor.domain.target_identity import Home
from conveyor.entry import environment_step, stage_function
from conveyor.settings import settings


def claim(event: dict[str, Any], context: LambdaContext) -> Claim:
    """The first execution of a pushed object proceeds; duplicates and re-runs of a live one end here."""
    from conveyor.stages.claim import claim_deployment

    return claim_deployment(
        ClaimRequest.model_validate(event),
        ledger=runtime.ledger(),
        executions=runtime.executions(),
        artifact_bucket=settings().artifact_bucket,
    )


def validate(event: dict[str, Any], context: LambdaContext) -> Deployment:
    """The S3 Object Created event in, a checked and recorded deployment out."""
    from conveyor.stages.validate import validate_artifact

    return validate_artifact(
        ValidateRequest.model_validate(event),
        artifacts=runtime.artifacts(),
        ledger=runtime.ledger(),
        targets=runtime.targets(),
        executions=runtime.executions(),
        managed_tag_key=settings().managed_tag_key,
        artifact_bucket=settings().artifact_bucket,
        # Where this function runs is where Conveyor runs: its targets must be there too.
        home=Home.from_arn(context.invoked_function_arn),
        owners=runtime.target_owners(),
    )


def gate(event: dict[str, Any], context: LambdaContext) -> GateResult:
    """Freezes and the environment's alarms asked again, the lock held, after WaitForGate: open, wait again, or
    refuse."""
    from conveyor.stages.gate import check_gates

    return check_gates(
        environment_step(event),
        freezes=runtime.freezes(),
        alarms=runtime.alarms(),
        ledger=runtime.ledger(),
        now=datetime.now(UTC),
        scale=settings().time_scale,
    )


def lock(event: dict[str, Any], context: LambdaContext) -> LockGrant:
    """Take the environment's lock (lease + fencing token), or say how to wait for it; once taken, ask the gates
    in the same call (freezes and alarms are judged under the lock, right before anything moves, and what they
    decided is written with the lock), so the state machine routes on one answer: wait for the lock, wait at the
    gate, refuse, or deploy."""
    from conveyor.stages.gate import decide_gates
    from conveyor.stages.lock import acquire_lock

    step = environment_step(event)
    return acquire_lock(
        step,
        locks=runtime.locks(),
        ledger=runtime.ledger(),
        targets=runtime.targets(),
        executions=runtime.executions(),
        owners=runtime.target_owners(),
        now=time.time(),
        # Built only for a Beanstalk target: a Lambda deployment's cold start loads no more than before.
        beanstalk=runtime.beanstalk() if isinstance(step.environment.target, ElasticBeanstalkTarget) else None,
        gates=lambda: decide_gates(
            step, freezes=runtime.freezes(), alarms=runtime.alarms(), now=datetime.now(UTC), scale=settings().time_scale
        ),
    )


STAGES = {"ClaimDeployment": claim, "ValidateArtifact": validate, "CheckGates": gate, "AcquireLock": lock}
handler = stage_function(STAGES)
coldstart.loaded()  # last: what was loaded is kept out of later collections
