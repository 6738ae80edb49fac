"""``conveyor rollback APP ENV [--to APP_VERSION | --lambda-version N]``: put an environment's alias back, by hand.

The rollback itself is the library's (``conveyor.domain.manual_rollback``); this finds the environment's
target and lock from the registered pipeline and runs it with the cloud's adapters.
"""

from __future__ import annotations

from typing import Any

from conveyor.domain import manual_rollback as rollback
from conveyor.domain.errors import ConveyorError
from conveyor.settings import MANAGED_TAG_KEY

from conveyor_cli import operations
from conveyor_cli.approvals import caller_identity
from conveyor_cli.context import CliError, Cloud


def manual_rollback(
    cloud: Cloud, app: str, environment: str, to: str | None, *, to_release: str | None = None
) -> dict[str, Any]:
    """Restore ``environment`` to Lambda version ``to``, or to app version ``to_release`` (resolved through the
    ledger), or to what served before the live release."""
    target, lock = operations.environment_lock(cloud, app, environment)
    try:
        result = rollback.manual_rollback(
            app,
            environment,
            to,
            target=target,
            lock=lock,
            operator=caller_identity(cloud),
            ledger=operations.ledger(cloud),
            targets=operations.targets(cloud),
            locks=operations.locks(cloud),
            managed_tag_key=MANAGED_TAG_KEY,
            to_release=to_release,
        )
    except ConveyorError as exc:
        raise CliError(str(exc)) from exc
    return result.model_dump(mode="json")
