"""A target of several functions (``target.functions``): the spec's rules, one owner per function, and the restores
that put every function back (the reconciler after a stop, and a manual rollback)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import (
    AliasChangedError,
    LockWaitTimeoutError,
    NothingToRollBackError,
    PipelineInvalidError,
    RollbackFailedError,
    TargetClaimedError,
    TrafficShiftError,
)
from conveyor.domain.manual_rollback import manual_rollback
from conveyor.domain.notices import render_failure
from conveyor.domain.outcome import Outcome
from conveyor.domain.ownership import claim_targets
from conveyor.domain.pipeline import LambdaTarget, PipelineSpec, RolloutPolicy
from conveyor.domain.pushed_object import PushedObject
from conveyor.stages.lock import acquire_lock
from conveyor.stages.reconcile import reconcile
from conveyor.stages.rollback import roll_back
from conveyor.stages.traffic import shift_traffic

from tests.fakes import DEFAULT_SPEC, FakeExecutions, FakeLocks, FakeNotifier, FakeTargetOwners, FakeTargets
from tests.unit.conftest import HOME, build_step, started_ledger
from tests.unit.test_reconcile import EXECUTION, S3_EVENT, ended

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "pipeline.schema.json").read_text())
PREFIX = "arn:aws:lambda:us-east-1:123456789012:function"


def _document(target: dict[str, Any], **health: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0]["target"] = target
    if health:
        spec["environments"][0]["health"] = health
    return spec


def _parse(document: dict[str, Any]) -> PipelineSpec:
    return PipelineSpec.from_yaml(yaml.safe_dump(document), "pipelines/hello.yaml")


def test_functions_name_the_target_by_its_first_and_the_schema_accepts_them() -> None:
    document = _document({"kind": "lambda", "functions": ["hello-api", "hello-worker"]})
    jsonschema.validate(document, SCHEMA)
    target = _parse(document).environments[0].target
    assert isinstance(target, LambdaTarget)
    assert (target.function_name, target.function_names, target.companions) == (
        "hello-api",
        ["hello-api", "hello-worker"],
        ["hello-worker"],
    )
    assert target.ledger_fields() == {
        "function_name": "hello-api",
        "alias": "live",
        "functions": ["hello-api", "hello-worker"],
    }
    # What the state carries parses again to the same target
    assert LambdaTarget.model_validate(target.model_dump()) == target


def test_a_target_names_no_function_at_all_is_refused_by_the_schema_and_the_model() -> None:
    document = _document({"kind": "lambda", "alias": "live"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)
    with pytest.raises(PipelineInvalidError, match="function_name: Field required"):
        _parse(document)


@pytest.mark.parametrize(
    ("target", "health", "message"),
    [
        (
            {"function_name": "hello-api", "functions": ["hello-worker", "hello-api"]},
            {},
            "give function_name or functions, not both",
        ),
        ({"functions": ["hello-api", f"{PREFIX}:hello-api"]}, {}, "each function once: hello-api"),
        ({"functions": [f"a{n}" for n in range(6)]}, {}, "at most 5 items"),
        ({"functions": []}, {}, "functions: name at least one function"),
        (
            {"functions": ["hello-api", "hello-worker"]},
            {"synthetic": {"function": "hello-cron", "expect": {}}},
            "health.synthetic.function: 'hello-cron' is not one of the target's functions",
        ),
    ],
    ids=["both disagree", "twice", "too many", "none", "synthetic elsewhere"],
)
def test_a_target_of_several_functions_is_refused_by_name(
    target: dict[str, Any], health: dict[str, Any], message: str
) -> None:
    with pytest.raises(PipelineInvalidError, match=message):
        _parse(_document(target, **health))


def test_two_environments_may_not_share_a_function() -> None:
    document = _document({"functions": ["hello-api", "hello-worker"]})
    production = {**copy.deepcopy(document["environments"][0]), "name": "production"}
    production["target"] = {"functions": ["hello-api-prod", "hello-worker"]}
    document["environments"].append(production)
    with pytest.raises(PipelineInvalidError, match="'staging' and 'production' both target function 'hello-worker'"):
        _parse(document)


def test_every_function_is_claimed_and_another_app_naming_one_is_refused_at_its_field() -> None:
    owners = FakeTargetOwners()
    claim_targets(_parse(_document({"functions": ["hello-api", "hello-worker"]})), HOME, owners, source="a")
    assert owners.owner(f"{PREFIX}:hello-worker") is not None
    billing = _document({"functions": ["billing-api", "hello-worker"]})
    billing["app"] = "billing"
    with pytest.raises(TargetClaimedError) as raised:
        claim_targets(_parse(billing), HOME, owners, source="pipelines/billing.yaml")
    assert str(raised.value).startswith("pipelines/billing.yaml: environments[0] (staging).target.functions[1]: ")
    assert "belongs to app 'hello'" in str(raised.value)


class TwoFunctions:
    """hello 1.0.0 mid-canary in staging on hello-api and hello-worker: both aliases split 80/20, lock held."""

    def __init__(self) -> None:
        self.step = build_step()
        self.targets = FakeTargets()
        self.locks = FakeLocks()
        self.notifier = FakeNotifier()
        self.ledger = started_ledger(self.step)
        record = self.ledger.records.pop(self.step.deployment.deployment_id)
        self.deployment_id = record["deployment_id"] = PushedObject.from_event(S3_EVENT).deployment_id
        self.ledger.records[self.deployment_id] = record
        for name in ("hello-api", "hello-worker"):
            function = self.targets.add(name, alias="live", version="1")
            function.versions["2"] = ("new-sha", {})
            function.aliases["live"] = ("1", {"2": 0.2})
        self.locks.try_acquire(
            f"{PREFIX}:hello-api",
            holder=EXECUTION,
            deployment_id=self.deployment_id,
            app="hello",
            environment="staging",
            lease_seconds=3600,
            now=1_700_000_000,
        )
        self.ledger.update_environment(
            self.deployment_id,
            "staging",
            {
                "status": "SHIFTING",
                "weight": 20,
                "function_name": "hello-api",
                "functions": ["hello-api", "hello-worker"],
                "alias": "live",
                "version_before": "1",
                "version_after": "2",
                "lock_target": f"{PREFIX}:hello-api",
                "companion_locks": [f"{PREFIX}:hello-worker"],
                "companions": [{"function_name": "hello-worker", "version_before": "1", "version_after": "2"}],
            },
        )


def test_a_stopped_execution_has_every_function_restored_by_the_reconciler() -> None:
    world = TwoFunctions()
    result = reconcile(
        ended("ABORTED"),
        ledger=world.ledger,
        locks=world.locks,
        targets=world.targets,
        notifier=world.notifier,
        now=1_700_000_200,
    )
    assert result.restored == ["staging"]
    for name in ("hello-api", "hello-worker"):
        assert world.targets.functions[name].aliases["live"] == ("1", {}), name
    record = world.ledger.get(world.deployment_id)
    assert record is not None
    assert record.status is Outcome.ABORTED
    rollback = record.environments["staging"].rollback or {}
    assert [c["function_name"] for c in rollback["companions"]] == ["hello-worker"]


def _live_on_two(world: TwoFunctions) -> None:
    world.ledger.update_environment(world.deployment_id, "staging", {"status": EnvironmentStatus.LIVE, "weight": 100})
    for name in ("hello-api", "hello-worker"):
        world.targets.route_alias(name, "live", "2", None)


def _manual(world: TwoFunctions, to: str | None = None) -> Any:
    return manual_rollback(
        "hello",
        "staging",
        to,
        target=LambdaTarget(functions=["hello-api", "hello-worker"], function_name="hello-api"),
        lock=f"{PREFIX}:hello-api",
        operator="alice",
        ledger=world.ledger,
        targets=world.targets,
        locks=FakeLocks(),
        managed_tag_key="conveyor:managed",
    )


def test_a_manual_rollback_puts_every_function_back() -> None:
    world = TwoFunctions()
    _live_on_two(world)
    result = _manual(world)
    assert result.restored_version == "1"
    assert [(c.function_name, c.restored_version, c.rolled_back_from) for c in result.companions] == [
        ("hello-worker", "1", "2")
    ]
    # And the ledger's rollback of the live deployment names both, as the notices and the report read it
    record = world.ledger.get(world.deployment_id)
    assert record is not None
    rollback = record.environments["staging"].rollback or {}
    assert [c["function_name"] for c in rollback["companions"]] == ["hello-worker"]
    for name in ("hello-api", "hello-worker"):
        assert world.targets.functions[name].aliases["live"] == ("1", {}), name


def test_a_manual_rollback_to_one_lambda_version_is_refused_for_several_functions() -> None:
    world = TwoFunctions()
    _live_on_two(world)
    with pytest.raises(NothingToRollBackError, match="a Lambda version names one function's code"):
        _manual(world, to="1")
    assert world.targets.functions["hello-worker"].aliases["live"] == ("2", {})


def _multi_step(lock_wait_seconds: int) -> Any:
    spec = _document({"kind": "lambda", "functions": ["hello-api", "hello-worker"]})
    step = build_step(spec, release=None)
    policy = RolloutPolicy(lock_wait_seconds=lock_wait_seconds)
    return step.model_copy(update={"deployment": step.deployment.model_copy(update={"policy": policy})})


def test_a_function_held_elsewhere_keeps_the_environment_waiting_in_line_within_its_bound() -> None:
    # Given hello-worker locked by another deployment (one whose spec named it alone)
    step = _multi_step(lock_wait_seconds=60)
    locks, ledger, targets = FakeLocks(), started_ledger(step), FakeTargets()
    for name in ("hello-api", "hello-worker"):
        targets.add(name, alias="live")
    locks.try_acquire(
        f"{PREFIX}:hello-worker",
        holder="other",
        deployment_id="d-other",
        app="hello",
        environment="staging",
        lease_seconds=3600,
        now=1_000,
    )

    def ask(now: float) -> Any:
        return acquire_lock(
            step,
            locks=locks,
            ledger=ledger,
            targets=targets,
            executions=FakeExecutions(),
            owners=FakeTargetOwners(),
            now=now,
        )

    # When the environment's lock is asked for, twice within the bound
    for now in (1_000, 1_030):
        grant = ask(now)
        # Then it waits behind that deployment, holding neither lock, in line
        assert (grant.status, grant.waiting_for) == ("waiting", "d-other")
        assert locks.get(f"{PREFIX}:hello-api").holder is None
        assert [w.deployment_id for w in locks.waiters(f"{PREFIX}:hello-api")] == ["d-unit"]
    # And past the pipeline's lock_wait_seconds it fails, naming the deployment it waited for, out of line
    with pytest.raises(LockWaitTimeoutError, match="for deployment d-other, which holds one of the functions"):
        ask(1_061)
    assert locks.waiters(f"{PREFIX}:hello-api") == []
    # And once the worker is free, the environment takes both locks
    locks.release(f"{PREFIX}:hello-worker", "other")
    grant = ask(1_100)
    assert grant.status == "acquired"
    assert locks.get(f"{PREFIX}:hello-worker").holder == step.deployment.execution_arn


class FailsOnceOn(FakeTargets):
    """The first alias write to ``function`` fails (a throttle, a 5xx) after the target's other functions moved."""

    def __init__(self, function: str) -> None:
        super().__init__()
        self.function, self.failed = function, False

    def route_alias(self, function_name: str, alias: str, version: str, extra: Any, *, revision_id: Any = None) -> str:
        if function_name == self.function and not self.failed:
            self.failed = True
            raise TrafficShiftError("injected: UpdateAlias throttled")
        return super().route_alias(function_name, alias, version, extra, revision_id=revision_id)


def test_a_step_retried_after_one_function_failed_goes_on_from_its_own_moves() -> None:
    # Given a canary of two functions whose first step moved hello-api, then failed on hello-worker
    spec = _document({"functions": ["hello-api", "hello-worker"]})
    spec["environments"][0]["strategy"] = {"type": "canary", "weight": 25, "bake_seconds": 0}
    step = build_step(spec)
    targets = FailsOnceOn("hello-worker")
    for name in ("hello-api", "hello-worker"):
        targets.add(name, alias="live", version="1").versions["2"] = ("new", {})
    assert step.release is not None
    worker = step.release.model_copy(update={"function_name": "hello-worker", "alias_revision": "0"})
    step = step.model_copy(
        update={"release": step.release.model_copy(update={"alias_revision": "0", "companions": [worker]})}
    )
    ledger = started_ledger(step)
    with pytest.raises(TrafficShiftError, match="injected"):
        shift_traffic(step, targets=targets, ledger=ledger)
    assert targets.functions["hello-api"].aliases["live"] == ("1", {"2": 0.25})

    # When Step Functions retries the step with the same input
    traffic = shift_traffic(step, targets=targets, ledger=ledger)

    # Then it goes on from its own move of hello-api and moves hello-worker: both at 25%
    for name in ("hello-api", "hello-worker"):
        assert targets.functions[name].aliases["live"] == ("1", {"2": 0.25}), name
    # And a move that is not this step's (someone put hello-api back) still stops the next step
    targets.route_alias("hello-api", "live", "1", None)
    with pytest.raises(AliasChangedError, match="hello-api:live changed since revision"):
        shift_traffic(step.model_copy(update={"traffic": traffic}), targets=targets, ledger=ledger)
    assert targets.functions["hello-worker"].aliases["live"] == ("1", {"2": 0.25})


class RefusesAliasWrites(FakeTargets):
    """Every alias write to ``function`` fails: it cannot be restored."""

    def __init__(self, function: str) -> None:
        super().__init__()
        self.function = function

    def route_alias(self, function_name: str, alias: str, version: str, extra: Any, *, revision_id: Any = None) -> str:
        if function_name == self.function:
            raise TrafficShiftError("injected: UpdateAlias refused")
        return super().route_alias(function_name, alias, version, extra, revision_id=revision_id)


def test_a_rollback_that_restores_one_function_and_not_the_other_says_which_is_which() -> None:
    # Given both functions at 25% of their new version, and hello-worker's alias refusing every write
    world = TwoFunctions()
    targets = RefusesAliasWrites("hello-worker")
    for name in ("hello-api", "hello-worker"):
        function = targets.add(name, alias="live", version="1")
        function.versions["2"] = ("new-sha", {})
        function.aliases["live"] = ("1", {"2": 0.25})
    step = build_step(_document({"functions": ["hello-api", "hello-worker"]}))
    assert step.release is not None
    release = step.release.model_copy(
        update={"companions": [step.release.model_copy(update={"function_name": "hello-worker"})]}
    )
    step = step.model_copy(
        update={
            "release": release,
            "deployment": step.deployment.model_copy(update={"deployment_id": world.deployment_id}),
        }
    )

    # When RollBack runs
    with pytest.raises(
        RollbackFailedError, match=r"could not restore hello-worker:live .*Run: aws lambda update-alias"
    ):
        roll_back(step, targets=targets, ledger=world.ledger)

    # Then hello-api is back and the ledger says which function was restored and which was not
    assert targets.functions["hello-api"].aliases["live"] == ("1", {})
    record = world.ledger.get(world.deployment_id)
    assert record is not None
    assert record.environments["staging"].restore == {
        "restored": {"hello-api": "1"},
        "failed": {"hello-worker": "injected: UpdateAlias refused"},
    }
    # And the notice that asks a person to act names the right one
    _, message = render_failure(record, Outcome.ROLLBACK_FAILED, "RollBack", "staging", "rollback failed")
    assert "staging: RESTORED - hello-api:live back on version 1" in message
    assert (
        "staging: NOT RESTORED - hello-worker:live may still send 20% of its traffic to version 2 (version before: 1)"
        in message
    )
    assert "hello-api:live may still send" not in message
