"""Turning pydantic's ``ValidationError`` into one line that names the file and the field."""

from __future__ import annotations

from pydantic import ValidationError


def describe(source: str, exc: ValidationError) -> str:
    """``manifest.json: package.sha256: String should match pattern ...; app: Field required``."""
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(document)"
        problems.append(f"{field}: {error['msg']}")
    return f"{source}: " + "; ".join(problems)
