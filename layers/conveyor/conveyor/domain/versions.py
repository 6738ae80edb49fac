"""Which of two releases of an app is newer: the one rule every stage that orders versions uses.

A pipeline chooses its order (``version_order`` in ``pipelines/<app>.yaml``):

- ``semver`` (the default): SemVer 2.0 precedence (https://semver.org/#spec-item-11). Major, minor
  and patch compare numerically; a pre-release is older than its release; pre-release identifiers
  compare one by one (numeric ones numerically and below alphanumeric ones, alphanumeric ones in
  ASCII order, a shorter list older when all before are equal); build metadata (``+...``) is
  ignored. Two versions of equal precedence (the same version, or ones that differ only in build
  metadata) are ordered by build time, as in ``build_time``. A version that is not SemVer is
  refused at validation (``VersionInvalidError``); if one already live is not (it was released
  before the pipeline chose ``semver``), the pair is ordered by build time.
- ``build_time``: for versions that carry no order, such as commit hashes (``9f1c2e7``): the
  manifest's ``created_at`` (when CI built it), then its commit time to break a tie. A version
  text is never compared.

Text comparison of versions is never used: ``"1.10.0" < "1.9.0"`` and ``"9f1c2e7" > "1a2b3c4"`` as
text, whatever was built first.
"""

import re
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from conveyor.domain.errors import VersionInvalidError

VersionOrder = Literal["semver", "build_time"]
"""The pipeline's ``version_order``."""

DEFAULT_VERSION_ORDER: VersionOrder = "semver"

# The regular expression semver.org publishes for SemVer 2.0 (numbered groups).
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

PrereleaseIdentifier = tuple[int, int] | tuple[int, str]
Precedence = tuple[int, int, int, int, tuple[PrereleaseIdentifier, ...]]


class SemVer(BaseModel):
    """A parsed SemVer 2.0 version."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "SemVer":
        """Parse ``text``; ``VersionInvalidError`` naming it when it is not SemVer 2.0."""
        match = _SEMVER.match(text)
        if match is None:
            raise VersionInvalidError(
                f"version {text!r} is not a SemVer 2.0 version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], "
                "e.g. 1.4.0 or 2.0.0-rc.1)"
            )
        major, minor, patch, prerelease, build = match.groups()
        return cls(
            major=int(major),
            minor=int(minor),
            patch=int(patch),
            prerelease=tuple(prerelease.split(".")) if prerelease else (),
            build=tuple(build.split(".")) if build else (),
        )

    @property
    def precedence(self) -> Precedence:
        """A key whose natural order is SemVer precedence (build metadata left out)."""
        identifiers: tuple[PrereleaseIdentifier, ...] = tuple(
            (0, int(part)) if part.isdigit() else (1, part) for part in self.prerelease
        )
        # A release (no pre-release) ranks above every pre-release of the same MAJOR.MINOR.PATCH.
        return self.major, self.minor, self.patch, 0 if self.prerelease else 1, identifiers


def is_semver(text: str) -> bool:
    return _SEMVER.match(text) is not None


class BuiltVersion(BaseModel):
    """One release as the order sees it: its version, when CI built it, and when its commit was made."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    version: str
    built_at: AwareDatetime
    committed_at: AwareDatetime | None = None


def _build_key(release: BuiltVersion) -> tuple[datetime, bool, datetime]:
    # No commit time sorts before any commit time, so the key is total.
    return release.built_at, release.committed_at is not None, release.committed_at or release.built_at


def compare(a: BuiltVersion, b: BuiltVersion, order: VersionOrder) -> int:
    """-1, 0 or 1 as ``a`` is older than, level with, or newer than ``b`` in ``order``."""
    if order == "semver" and is_semver(a.version) and is_semver(b.version):
        left, right = SemVer.parse(a.version).precedence, SemVer.parse(b.version).precedence
        if left != right:
            return -1 if left < right else 1
    ka, kb = _build_key(a), _build_key(b)
    return 0 if ka == kb else -1 if ka < kb else 1


def is_newer(candidate: BuiltVersion, than: BuiltVersion, order: VersionOrder) -> bool:
    """True when ``candidate`` comes strictly after ``than`` in ``order``."""
    return compare(candidate, than, order) > 0


def check_version(version: str, order: VersionOrder, *, where: str) -> None:
    """Refuse a version the pipeline's order cannot place (``semver`` needs SemVer 2.0)."""
    if order == "semver":
        try:
            SemVer.parse(version)
        except VersionInvalidError as exc:
            raise VersionInvalidError(
                f"{where}: {exc}, and the pipeline orders versions by semver. Use SemVer versions, or set "
                "version_order: build_time in the pipeline spec to order releases by build time "
                "(for commit-hash versions)"
            ) from exc


__all__ = [
    "DEFAULT_VERSION_ORDER",
    "BuiltVersion",
    "SemVer",
    "VersionOrder",
    "check_version",
    "compare",
    "is_newer",
    "is_semver",
]
