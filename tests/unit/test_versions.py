"""The version order (``conveyor.versions``): SemVer 2.0 precedence, or build time; never text."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from conveyor.domain.errors import VersionInvalidError
from conveyor.domain.versions import BuiltVersion, SemVer, VersionOrder, check_version, compare, is_newer

BUILT = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)

# semver.org's own example chain (spec item 11), extended with numeric-part and multi-digit cases.
SEMVER_CHAIN = [
    "0.9.9",
    "1.0.0-0.3.7",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.9.2",
    "1.10.0",
    "2.0.0-rc.1",
    "2.0.0",
    "10.0.0",
]


def release(version: str, built: datetime = BUILT, committed: datetime | None = None) -> BuiltVersion:
    return BuiltVersion(version=version, built_at=built, committed_at=committed)


@pytest.mark.parametrize(("older", "newer"), list(itertools.combinations(SEMVER_CHAIN, 2)))
def test_semver_precedence_orders_every_pair_of_the_chain(older: str, newer: str) -> None:
    # Given two versions in ascending SemVer order, built at the same time
    # Then the later one is newer and the earlier one is not: the order is strict and antisymmetric
    assert is_newer(release(newer), release(older), "semver")
    assert not is_newer(release(older), release(newer), "semver")
    assert compare(release(older), release(newer), "semver") == -1


def test_semver_ignores_build_time_when_precedence_differs() -> None:
    # Given 1.10.0 built a day before 1.9.2
    early, late = BUILT, BUILT + timedelta(days=1)
    # Then 1.10.0 is still newer (text order would say "1.10.0" < "1.9.2")
    assert is_newer(release("1.10.0", early), release("1.9.2", late), "semver")


def test_semver_build_metadata_is_ignored_and_build_time_breaks_the_tie() -> None:
    # Given two versions that differ only in build metadata
    a, b = release("1.0.0+build.1", BUILT), release("1.0.0+build.2", BUILT)
    # Then they are level; the one built later is newer
    assert compare(a, b, "semver") == 0
    assert is_newer(release("1.0.0+build.0", BUILT + timedelta(seconds=1)), b, "semver")


def test_the_same_release_is_never_newer_than_itself() -> None:
    for order in ("semver", "build_time"):
        assert not is_newer(release("1.0.0"), release("1.0.0"), order)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0-", "9f1c2e7", "1.0.0+", "1.0.0-rc..1", "1.0.0.0"]
)
def test_a_version_that_is_not_semver_is_refused_under_semver_naming_build_time(version: str) -> None:
    with pytest.raises(VersionInvalidError, match=r"not a SemVer 2\.0 version.*version_order: build_time"):
        check_version(version, "semver", where="s3://bucket/artifacts/hello/x.zip")


def test_any_version_is_accepted_under_build_time() -> None:
    check_version("9f1c2e7", "build_time", where="s3://b/k")


def test_semver_parse_reads_every_part() -> None:
    parsed = SemVer.parse("1.2.3-rc.1+linux.arm64")
    assert (parsed.major, parsed.minor, parsed.patch) == (1, 2, 3)
    assert (parsed.prerelease, parsed.build) == (("rc", "1"), ("linux", "arm64"))


def test_commit_hash_versions_are_ordered_by_build_time_not_text() -> None:
    # Given a newer build whose hash sorts lower as text
    older, newer = release("9f1c2e7", BUILT), release("1a2b3c4", BUILT + timedelta(minutes=5))
    # Then the newer build is newer
    assert is_newer(newer, older, "build_time")
    assert not is_newer(older, newer, "build_time")


def test_build_time_ties_are_broken_by_commit_time() -> None:
    first = release("aaaaaaa", BUILT, committed=BUILT - timedelta(hours=2))
    second = release("0000000", BUILT, committed=BUILT - timedelta(hours=1))
    assert is_newer(second, first, "build_time")
    assert compare(release("x", BUILT), release("y", BUILT), "build_time") == 0


def test_a_non_semver_live_release_is_ordered_by_build_time_under_semver() -> None:
    # Given a release made under build_time, before the pipeline switched to semver
    legacy = release("9f1c2e7", BUILT)
    # Then a SemVer version built later is newer, and one built earlier is not
    assert is_newer(release("1.0.0", BUILT + timedelta(hours=1)), legacy, "semver")
    assert not is_newer(release("1.0.0", BUILT - timedelta(hours=1)), legacy, "semver")


@pytest.mark.parametrize("order", ["semver", "build_time"])
def test_the_order_is_total_and_transitive_over_a_mixed_set(order: VersionOrder) -> None:
    # Given releases with every combination of version, build time and commit time
    times = [BUILT, BUILT + timedelta(seconds=1)]
    releases = [
        release(v, b, c) for v in ("1.0.0-rc.1", "1.0.0", "1.0.0+meta", "1.2.0") for b in times for c in [None, *times]
    ]
    # Then compare is antisymmetric and transitive (a total preorder)
    for a, b in itertools.product(releases, repeat=2):
        assert compare(a, b, order) == -compare(b, a, order)
    for a, b, c in itertools.product(releases, repeat=3):
        if compare(a, b, order) <= 0 and compare(b, c, order) <= 0:
            assert compare(a, c, order) <= 0
