"""Turning pydantic's ``ValidationError`` into one line that names the file and the field."""

from __future__ import annotations

from pydantic import ValidationError

MAX_PROBLEMS = 10
_MAX_FIELD_CHARS = 80


def describe(source: str, exc: ValidationError) -> str:
    """``manifest.json: package.sha256: String should match pattern ...; app: Field required``.

    Never echoes the offending values (a manifest may carry a team's environment variables),
    and stays short: field names can be attacker-chosen (extra keys), so each is cut and at most
    ``MAX_PROBLEMS`` are listed, keeping the ledger record and the notification bounded.
    """
    errors = exc.errors(include_url=False, include_input=False)
    problems = []
    for error in errors[:MAX_PROBLEMS]:
        field = ".".join(str(part) for part in error["loc"]) or "(document)"
        if len(field) > _MAX_FIELD_CHARS:
            field = field[:_MAX_FIELD_CHARS] + "..."
        problems.append(f"{field}: {error['msg']}")
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"and {len(errors) - MAX_PROBLEMS} more problems")
    return f"{source}: " + "; ".join(problems)
