"""``conveyor freeze`` / ``unfreeze``: an emergency stop of one app's deployments, or of every app's.

A freeze is a ledger item (``conveyor.adapters.dynamodb_freezes``) the CheckGates stage reads before each
environment's lock: a deployment reaching it waits or is refused as its pipeline's ``on_freeze`` says, and a
rollout already past the gate is left to finish (stopping one is ``conveyor abort``). Who froze is the caller's
AWS identity (STS GetCallerIdentity), as for approvals, never a name typed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.adapters.dynamodb_freezes import DynamoFreezes
from conveyor.domain.errors import FreezeInvalidError, LedgerError
from conveyor.domain.freeze import ALL_APPS, OperatorFreeze
from conveyor.domain.layout import APP_PATTERN

from conveyor_cli import operations
from conveyor_cli.approvals import caller_identity
from conveyor_cli.context import CliError, Cloud, UsageError

FREEZE_COLUMNS = ("scope", "reason", "frozen by", "since", "until")
_DURATION = re.compile(r"^(?P<amount>\d+)(?P<unit>[mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def freezes(cloud: Cloud) -> DynamoFreezes:
    return DynamoFreezes(cloud.session, cloud.outputs.ledger_table)


def scope_of(app: str | None, every_app: bool) -> str:
    """The scope ``APP`` or ``--all`` names (exactly one of them)."""
    if every_app == (app is not None):
        raise UsageError("name an app, or --all for every app (not both)")
    if app is None:
        return ALL_APPS
    if not re.match(APP_PATTERN, app):
        raise UsageError(f"{app!r} is not an app name ({APP_PATTERN})")
    return app


def parse_until(text: str | None, now: datetime) -> datetime | None:
    """``--until``: a duration from now (``30m``, ``2h``, ``1d``) or an ISO 8601 instant with its offset."""
    if text is None:
        return None
    match = _DURATION.match(text)
    if match is not None:
        until = now + timedelta(**{_UNITS[match["unit"]]: int(match["amount"])})
    else:
        try:
            until = datetime.fromisoformat(text)
        except ValueError as exc:
            raise FreezeInvalidError(
                f"--until {text!r}: expected a duration (30m, 2h, 1d) or an ISO 8601 instant with offset"
            ) from exc
        if until.tzinfo is None:
            raise FreezeInvalidError(f"--until {text!r}: give its UTC offset (2026-12-24T18:00:00+01:00, or Z)")
    if until <= now:
        raise FreezeInvalidError(f"--until {until.isoformat()} is not in the future")
    return until.astimezone(UTC)


def freeze(cloud: Cloud, scope: str, *, reason: str, until: str | None) -> OperatorFreeze:
    """Store the freeze of ``scope`` as the caller's AWS identity (replacing the scope's earlier one)."""
    if not reason.strip():
        raise UsageError("--reason must say why: it is shown to whoever's deployment it stops")
    now = datetime.now(UTC)
    try:
        lifted_at = parse_until(until, now)
    except FreezeInvalidError as exc:
        raise UsageError(str(exc)) from exc
    if scope != ALL_APPS and scope not in (apps := operations.registered_apps(cloud)):
        # An emergency stop of a mistyped name would stop nothing while its operator believes it stops the app.
        raise CliError(
            f"no pipeline is registered for {scope!r} (registered: {', '.join(apps) or 'none'}): its freeze would "
            "stop nothing; check the name, or freeze every app with --all"
        )
    try:
        stop = OperatorFreeze(scope=scope, reason=reason, by=caller_identity(cloud), at=now, until=lifted_at)
        freezes(cloud).put(stop)
    except (FreezeInvalidError, LedgerError) as exc:
        raise CliError(str(exc)) from exc
    return stop


def unfreeze(cloud: Cloud, scope: str) -> OperatorFreeze:
    """Lift the freeze of ``scope``; a CliError naming the active ones when it has none."""
    try:
        lifted = freezes(cloud).remove(scope)
    except LedgerError as exc:
        raise CliError(str(exc)) from exc
    if lifted is None:
        others = ", ".join(f.scope for f in active(cloud)) or "none"
        raise CliError(f"{'every app' if scope == ALL_APPS else scope!r} is not frozen (active freezes: {others})")
    return lifted


def active(cloud: Cloud) -> list[OperatorFreeze]:
    """The freezes in force now (one whose ``until`` has passed is over, though still stored)."""
    now = datetime.now(UTC)
    try:
        return sorted((f for f in freezes(cloud).all() if f.active(now)), key=lambda f: f.scope)
    except LedgerError as exc:
        raise CliError(str(exc)) from exc


def freeze_row(stop: OperatorFreeze) -> list[Any]:
    return [
        "every app" if stop.scope == ALL_APPS else stop.scope,
        stop.reason,
        stop.by,
        stop.at.isoformat(timespec="seconds"),
        stop.until.isoformat(timespec="seconds") if stop.until else "until unfreeze",
    ]
