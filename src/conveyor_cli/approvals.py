"""``conveyor approve`` / ``conveyor reject``: answer a deployment that waits for a person.

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
from conveyor.domain import decisions
from conveyor.domain.errors import ConveyorError

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud

BY_IS_GONE = (
    "--by no longer names the approver: Conveyor records the caller's AWS identity (STS GetCallerIdentity), "
    "so nobody can approve in someone else's name; put a display name in --note"
)


def caller_identity(cloud: Cloud) -> str:
    """The ARN of the AWS identity the CLI's session calls as."""
    try:
        return str(cloud.client("sts").get_caller_identity()["Arn"])
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


__all__ = ["BY_IS_GONE", "caller_identity", "decide"]
