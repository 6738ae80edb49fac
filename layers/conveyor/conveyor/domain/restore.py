"""Putting an alias back where it was, and saying so in the ledger (RollBack and the reconciler both do it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from conveyor.domain.contracts import Release, RollbackResult
from conveyor.domain.errors import AliasChangedError, RestoreIncompleteError, TrafficShiftError
from conveyor.domain.ports import Ledger, Targets
from conveyor.domain.timing import utcnow
from conveyor.observability import logger

RESTORE_ATTEMPTS = 5
"""How many times a restore reads the alias again when its revision moved between the read and the write."""


@dataclass(frozen=True)
class Restored:
    """What one target serves after a restore, and whether the restore moved anything: ``moved`` is false when the
    target already served only the version before (a rollback before any traffic shifted)."""

    version: str | None
    moved: bool


def restore_alias(targets: Targets, release: Release) -> Restored:
    """Point the release's alias at ``version_before`` at 100%, routing cleared; the version restored.

    The alias is read and then written conditioned on the revision read, so the write also fences
    out any writer that read the alias earlier (a ShiftTraffic still running after its execution
    stopped): whichever write comes second fails, and if it is ours, the alias is read again and
    restored again. An alias the deployment created (no version before) is removed: None. When the alias
    already serves only the version before (no traffic had moved), a write that fails (Lambda refusing it)
    leaves nothing to restore: the restore stands, as not moved.
    """
    function, alias = release.function_name, release.alias
    for _ in range(RESTORE_ATTEMPTS):
        current = targets.alias_state(function, alias)
        if release.version_before is None:
            if current is not None:
                targets.delete_alias(function, alias)
            return Restored(None, moved=current is not None)
        moved = current is None or current.version != release.version_before or bool(current.weights)
        try:
            targets.route_alias(
                function,
                alias,
                release.version_before,
                None,
                revision_id=current.revision_id if current is not None else None,
            )
        except AliasChangedError:
            continue
        except TrafficShiftError:
            if moved:
                raise
            logger.warning(
                "the alias already served the version before; the fencing write failed",
                extra={"function": function, "alias": alias, "version": release.version_before},
            )
        return Restored(release.version_before, moved=moved)
    raise AliasChangedError(f"alias {function}:{alias} changed on every one of {RESTORE_ATTEMPTS} restore attempts")


def restore_aliases(targets: Targets, release: Release) -> dict[str, Restored]:
    """``restore_alias`` for every function of the release (a target of several functions has them all back), by
    function: each is tried even when another fails, then ``RestoreIncompleteError`` names what failed."""
    if not release.companions:
        return {release.function_name: restore_alias(targets, release)}
    restored: dict[str, Restored] = {}
    failed: dict[str, Exception] = {}
    for member in release.members:
        try:
            restored[member.function_name] = restore_alias(targets, member)
        except Exception as exc:
            failed[member.function_name] = exc
    if failed:
        raise RestoreIncompleteError({name: done.version for name, done in restored.items()}, failed)
    return restored


def rollback_result(release: Release, restored: dict[str, Restored], **fields: Any) -> RollbackResult:
    """What a restore did (RollBack's and the reconciler's), the companion functions beside the first: the version
    each was moved off, or none where traffic had not moved."""
    results = [
        RollbackResult(
            environment=member.environment,
            function_name=member.function_name,
            alias=member.alias,
            restored_version=restored[member.function_name].version,
            rolled_back_from=member.version_after if restored[member.function_name].moved else None,
            **fields,
        )
        for member in release.members
    ]
    return results[0].model_copy(update={"companions": results[1:]})


def manual_restore_command(release: Release) -> str:
    """The AWS CLI command a person runs to put the release's target back where it was (the notice names it)."""
    if release.beanstalk is not None:
        from conveyor.domain.beanstalk import manual_restore_command as beanstalk_command  # it imports this module

        return beanstalk_command(release)
    if release.version_before is None:
        return f"aws lambda delete-alias --function-name {release.function_name} --name {release.alias}"
    return (
        f"aws lambda update-alias --function-name {release.function_name} --name {release.alias} "
        f"--function-version {release.version_before} --routing-config AdditionalVersionWeights={{}}"
    )


_RESTORE_COMMANDS = re.compile(r"\s*Run: aws [^\"\n;)]*(?:; aws [^\"\n;)]*)*")
"""``Run: aws ...`` and the commands after it (``; aws ...``), up to where the text goes on (``;``, ``)``, a quote)."""


def without_restore_commands(text: str) -> str:
    """``text`` without the restore commands it told a person to run (``Run: aws ...``, as a failed RollBack says
    them): once the target is restored or set anew, running one would undo what serves."""
    return _RESTORE_COMMANDS.sub("", text)


def restore_served(release: Release, *, ledger: Ledger, recorded_by: str) -> None:
    """Say in the ledger what the restored alias serves: the release it served before, if that is known.

    ``served_before`` is what Deploy read; without it, a record that already describes the restored
    version stays (the alias never left it at 100%), and any other is forgotten rather than left wrong.
    """
    before = release.served_before
    if before is not None and before.serves(release.version_before):
        ledger.record_served(before.model_copy(update={"recorded_at": utcnow(), "recorded_by": recorded_by}))
        return
    current = ledger.served(release.function_name, release.alias)
    if current is not None and not current.serves(release.version_before):
        ledger.forget_served(release.function_name, release.alias)
