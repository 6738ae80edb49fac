"""``conveyor approve`` / ``reject`` / ``promote``: answer a deployment that waits for a person.

The decision itself is the library's (``conveyor.domain.decisions``); this says who decides and runs it
with the cloud's ledger and Step Functions. Who decides is the caller's AWS identity: the ARN STS
GetCallerIdentity returns for the CLI's own session (its profile and region), the identity AWS itself
checks the call to SendTaskSuccess against. A name the caller types (the former ``--by``,
``$CONVEYOR_USER``) could be anyone's, so it is never taken as the approver; ``--note`` is recorded beside
the identity for people to read.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.adapters.stepfunctions import StepFunctionsExecutions
from conveyor.adapters.sts import caller_arn
from conveyor.domain import decisions
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import ConveyorError
from conveyor.domain.records import DeploymentRecord

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud

BY_IS_GONE = (
    "--by no longer names the approver: Conveyor records the caller's AWS identity (STS GetCallerIdentity), "
    "so nobody can approve in someone else's name; put a display name in --note"
)


def caller_identity(cloud: Cloud) -> str:
    """The ARN of the AWS identity the CLI's session calls as."""
    try:
        return caller_arn(cloud.session)
    except (ClientError, BotoCoreError, KeyError) as exc:
        raise CliError(
            f"cannot tell who you are: STS GetCallerIdentity failed ({exc}); check your credentials"
        ) from exc


def decide(
    cloud: Cloud,
    deployment_id: str,
    *,
    environment: str | None,
    verdict: decisions.Verdict,
    reason: str | None,
    note: str | None = None,
) -> dict[str, Any]:
    """Approve or reject as the caller's AWS identity; returns what was recorded (without the token)."""
    if os.environ.get("CONVEYOR_USER"):
        print("note: $CONVEYOR_USER is ignored; the approver is your AWS identity", file=sys.stderr)
    by = caller_identity(cloud)
    try:
        return decisions.decide(
            deployment_id,
            environment=environment,
            verdict=verdict,
            reason=reason,
            by=by,
            note=note,
            ledger=operations.ledger(cloud),
            tasks=StepFunctionsExecutions(cloud.session),
        )
    except ConveyorError as exc:
        raise CliError(str(exc)) from exc


ROLLING_OUT = frozenset({EnvironmentStatus.DEPLOYED, EnvironmentStatus.VERIFYING, EnvironmentStatus.SHIFTING})


def promote(cloud: Cloud, deployment_id: str, *, environment: str | None, reason: str | None) -> dict[str, Any]:
    """Finish a rollout paused for a decision now: it goes on to its next step, or live (the approve path).

    Only a paused rollout can be promoted. One that is baking or between linear steps waits in a Step Functions
    ``Wait`` state, which no API ends early: refused with what it waits for, rather than pretending.
    """
    record = operations.ledger(cloud).get(deployment_id)
    if record is None:
        raise CliError(f"deployment {deployment_id} is not in the ledger")
    paused = {
        name: env
        for name, env in record.environments.items()
        if env.status is EnvironmentStatus.AWAITING_APPROVAL and (env.approval or {}).get("kind") == "decision"
    }
    if environment is None and len(paused) == 1:
        environment = next(iter(paused))
    if environment is not None and environment in paused:
        return decide(cloud, deployment_id, environment=environment, verdict="approve", reason=reason)
    raise CliError(not_promotable(record, environment))


def not_promotable(record: DeploymentRecord, environment: str | None) -> str:
    """Why ``promote`` cannot finish this deployment now, and what can."""
    deployment_id = record.deployment_id
    names = [environment] if environment else list(record.environments)
    for name in names:
        env = record.environments.get(name)
        if env is None:
            continue
        if env.status is EnvironmentStatus.AWAITING_APPROVAL:
            return (
                f"deployment {deployment_id} awaits approval in {name} before anything is deployed there, not a "
                f"promotion: `conveyor approve {deployment_id} --env {name}`"
            )
        if env.status in ROLLING_OUT:
            weight = f" at {env.weight}%" if env.weight is not None else ""
            return (
                f"deployment {deployment_id} is rolling out in {name}{weight} and waits out its bake or step interval "
                "in a Step Functions Wait state, which cannot be ended early: it goes on by itself after its next "
                f"health check (`conveyor status {deployment_id} --wait`), or stop it and restore with "
                f"`conveyor abort {deployment_id}`. Only a rollout paused for a decision (on_inconclusive: pause) "
                "can be promoted"
            )
    where = f" in {environment}" if environment else ""
    return f"deployment {deployment_id} ({record.status.value}) has no rollout paused for a decision{where}"


__all__ = ["BY_IS_GONE", "caller_identity", "decide", "not_promotable", "promote"]
