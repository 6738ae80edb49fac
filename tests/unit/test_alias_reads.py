"""One read of the alias per environment: AcquireLock reads it under the lock, Deploy and ShiftTraffic build on it.

Each write of the alias is conditioned on the revision the previous read or write answered, so a change by
anyone else in between is refused, not built upon.
"""

from __future__ import annotations

from typing import Any

import pytest
from conveyor.domain.contracts import LockGrant
from conveyor.domain.errors import AliasChangedError
from conveyor.domain.manifest import base64_digest
from conveyor.domain.ports import AliasState
from conveyor.stages.deploy import deploy
from conveyor.stages.traffic import shift_traffic

from tests.fakes import FakeTargets
from tests.unit.conftest import build_step, started_ledger

TAG = "conveyor:managed"
CANARY = {"type": "canary", "weight": 10, "bake_seconds": 300, "final_bake_seconds": 60}


class CountingTargets(FakeTargets):
    """Counts what a stage reads from Lambda's control plane."""

    def __init__(self) -> None:
        super().__init__()
        self.alias_reads = 0
        self.uploads = 0

    def alias_state(self, function_name: str, alias: str) -> AliasState | None:
        self.alias_reads += 1
        return super().alias_state(function_name, alias)

    def update_code(self, *args: Any, **kwargs: Any) -> None:
        self.uploads += 1
        super().update_code(*args, **kwargs)


def _spec(strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "app": "hello",
        "environments": [
            {
                "name": "staging",
                "target": {"kind": "lambda", "function_name": "hello-staging", "alias": "live"},
                "strategy": strategy,
                "health": {"synthetic": {"payload": {}, "expect": {}}},
            }
        ],
    }


def _granted(targets: CountingTargets) -> LockGrant:
    alias = targets.alias_state("hello-staging", "live")
    targets.alias_reads = 0
    assert alias is not None
    return LockGrant(
        status="acquired",
        app="hello",
        environment="staging",
        target="arn:aws:lambda:us-east-1:123456789012:function:hello-staging",
        holder="arn:aws:states:us-east-1:123456789012:execution:deployments:unit",
        token=1,
        alias_version=alias.version,
        alias_revision=alias.revision_id,
        alias_read=True,
    )


def test_a_canary_reads_the_alias_once_under_the_lock_and_never_again() -> None:
    # Given a target serving version 1, and the lock grant that read its alias
    targets = CountingTargets()
    targets.add("hello-staging", alias="live", version="1")
    step = build_step(_spec(CANARY), release=None)
    step = step.model_copy(update={"lock": _granted(targets)})
    ledger = started_ledger(step)

    # When Deploy runs and ShiftTraffic takes every step of the canary
    release = deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)
    step = step.model_copy(update={"release": release})
    weights = []
    while step.traffic is None or not step.traffic.complete:
        step = step.model_copy(update={"traffic": shift_traffic(step, targets=targets, ledger=ledger)})
        weights.append(step.traffic.weight)

    # Then the alias went 10% then 100%, from version 1, without being read again
    assert (release.version_before, weights) == ("1", [10, 100])
    assert targets.functions["hello-staging"].aliases["live"] == (release.version_after, {})
    assert targets.alias_reads == 0


def test_an_alias_moved_by_someone_else_after_the_lock_is_refused_not_built_upon() -> None:
    # Given a deployment whose lock read the alias on version 1
    targets = CountingTargets()
    function = targets.add("hello-staging", alias="live", version="1")
    step = build_step(_spec(CANARY), release=None)
    step = step.model_copy(update={"lock": _granted(targets)})
    ledger = started_ledger(step)
    release = deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)

    # When someone moves the alias by hand before the first traffic step
    targets.route_alias("hello-staging", "live", "1", {"3": 0.5})

    # Then ShiftTraffic refuses, and the alias stays as that person left it
    with pytest.raises(AliasChangedError):
        shift_traffic(step.model_copy(update={"release": release}), targets=targets, ledger=ledger)
    assert function.aliases["live"] == ("1", {"3": 0.5})


def test_a_target_already_holding_the_code_is_not_uploaded_again() -> None:
    # Given a target whose $LATEST already holds the release's code (a re-run after a crash)
    targets = CountingTargets()
    targets.add("hello-staging", alias="live", version="1")
    step = build_step(release=None)
    targets.put_code("hello-staging", base64_digest(step.deployment.package.sha256))
    ledger = started_ledger(step)

    # When Deploy runs twice
    first = deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)
    again = deploy(step, targets=targets, ledger=ledger, managed_tag_key=TAG)

    # Then nothing was uploaded, one version was published for the code, and both name it
    assert targets.uploads == 0
    assert (first.version_after, again.version_after, again.reused) == ("2", "2", True)
