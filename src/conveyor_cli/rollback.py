"""``conveyor rollback APP ENV [--to VERSION]``: put an environment's alias back, by hand.

The rollback itself is the library's (``conveyor.domain.manual_rollback``); this finds the environment's
target and lock from the registered pipeline and runs it with the cloud's adapters.
"""

from __future__ import annotations

import getpass
from typing import Any

from conveyor.domain import manual_rollback as rollback
from conveyor.domain.errors import ConveyorError
from conveyor.settings import MANAGED_TAG_KEY

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud


def manual_rollback(cloud: Cloud, app: str, environment: str, to: str | None) -> dict[str, Any]:
    target, lock = operations.environment_lock(cloud, app, environment)
    try:
        result = rollback.manual_rollback(
            app,
            environment,
            to,
            target=target,
            lock=lock,
            operator=getpass.getuser(),
            ledger=operations.ledger(cloud),
            targets=operations.targets(cloud),
            locks=operations.locks(cloud),
            managed_tag_key=MANAGED_TAG_KEY,
        )
    except ConveyorError as exc:
        raise CliError(str(exc)) from exc
    return result.model_dump(mode="json")
