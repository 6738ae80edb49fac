"""``conveyor approve`` / ``conveyor reject``: answer a deployment that waits for a person.

The decision itself is the library's (``conveyor.domain.decisions``); this says who decides and runs it
with the cloud's ledger and Step Functions.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

from conveyor.adapters.stepfunctions import StepFunctionsExecutions
from conveyor.domain import decisions
from conveyor.domain.errors import ConveyorError

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud


def operator() -> str:
    """Who decides: ``CONVEYOR_USER`` if set, else the login name."""
    return os.environ.get("CONVEYOR_USER") or getpass.getuser()


def decide(
    cloud: Cloud,
    deployment_id: str,
    *,
    environment: str | None,
    verdict: decisions.Verdict,
    reason: str | None,
    by: str | None = None,
) -> dict[str, Any]:
    """Approve or reject; returns what was recorded (without the token)."""
    try:
        return decisions.decide(
            deployment_id,
            environment=environment,
            verdict=verdict,
            reason=reason,
            by=by or operator(),
            ledger=operations.ledger(cloud),
            tasks=StepFunctionsExecutions(cloud.session),
        )
    except ConveyorError as exc:
        raise CliError(str(exc)) from exc
