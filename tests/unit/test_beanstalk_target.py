"""The Elastic Beanstalk target: its spec, and Deploy / ShiftTraffic / EvaluateHealth / RollBack / AcquireLock
dispatching on the target's kind, against fakes of the ports."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conveyor.domain.contracts import EnvironmentStep, Release, TrafficState
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import PipelineInvalidError, TargetClaimedError, TargetNotManagedError
from conveyor.domain.locks import companion_lock_targets, lock_target
from conveyor.domain.ownership import claim_targets
from conveyor.domain.pipeline import ElasticBeanstalkTarget, PipelineSpec
from conveyor.stages.deploy import deploy
from conveyor.stages.health import evaluate_health
from conveyor.stages.lock import acquire_lock
from conveyor.stages.reconcile import reconcile
from conveyor.stages.rollback import roll_back
from conveyor.stages.traffic import shift_traffic

from tests.fakes import (
    DEFAULT_SPEC,
    FakeAlarms,
    FakeBeanstalk,
    FakeExecutions,
    FakeLocks,
    FakeProber,
    FakeTargetOwners,
    FakeTargets,
)
from tests.unit.conftest import HOME, build_step, started_ledger

CNAME = "webapp-prod"
LIVE_URL = f"http://{CNAME}.us-east-1.elasticbeanstalk.com/health"


def eb_spec(strategy: str = "blue_green", **target: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"] = [spec["environments"][0]]
    env = spec["environments"][0]
    env["target"] = {
        "kind": "elasticbeanstalk",
        "application": "webapp",
        "environment": "webapp-blue",
        **({"idle_environment": "webapp-green", "cname_prefix": CNAME} if strategy == "blue_green" else {}),
        **target,
    }
    env["strategy"] = {"type": strategy, "bake_seconds": 30} if strategy == "blue_green" else {"type": strategy}
    env["health"] = {"environment": {"path": "/health"}}
    return spec


def parse(spec: dict[str, Any]) -> PipelineSpec:
    import yaml

    return PipelineSpec.from_yaml(yaml.safe_dump(spec), "pipelines/webapp.yaml")


class Rollout:
    """One environment's rollout driven stage by stage, as the state machine does, on fakes."""

    def __init__(self, strategy: str, beanstalk: FakeBeanstalk) -> None:
        self.step = build_step(eb_spec(strategy), release=None)
        self.ledger = started_ledger(self.step)
        self.beanstalk = beanstalk
        self.prober = FakeProber()

    def with_(self, **fields: Any) -> EnvironmentStep:
        self.step = self.step.model_copy(update=fields)
        return self.step

    def deploy(self) -> Release:
        release = deploy(
            self.step,
            targets=FakeTargets(),
            ledger=self.ledger,
            managed_tag_key="conveyor:managed",
            beanstalk=self.beanstalk,
        )
        self.with_(release=release)
        return release

    def shift(self) -> TrafficState:
        traffic = shift_traffic(self.step, targets=FakeTargets(), ledger=self.ledger, beanstalk=self.beanstalk)
        self.with_(traffic=traffic)
        return traffic

    def judge(self) -> Any:
        return evaluate_health(
            self.step,
            targets=FakeTargets(),
            alarms=FakeAlarms(),
            ledger=self.ledger,
            prober=self.prober,
            beanstalk=self.beanstalk,
        )

    def roll_back(self) -> Any:
        return roll_back(self.step, targets=FakeTargets(), ledger=self.ledger, beanstalk=self.beanstalk)


@pytest.fixture
def pair() -> FakeBeanstalk:
    """Blue serves production (1.0.0 on the production CNAME); green does not exist yet."""
    beanstalk = FakeBeanstalk()
    beanstalk.add("webapp-blue", "0.9.0", cname_prefix=CNAME)
    return beanstalk


# --------------------------------------------------------------------------- the spec


def test_an_elasticbeanstalk_target_is_parsed_and_a_target_without_kind_is_lambda() -> None:
    spec = parse(eb_spec())
    target = spec.environments[0].target
    assert isinstance(target, ElasticBeanstalkTarget)
    assert (target.application, target.environment, target.idle_environment) == (
        "webapp",
        "webapp-blue",
        "webapp-green",
    )
    assert parse(DEFAULT_SPEC).environments[0].target.kind == "lambda"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda env: env["target"].pop("idle_environment"), "blue_green on elasticbeanstalk needs idle_environment"),
        (
            lambda env: env.update(strategy={"type": "canary", "weight": 10, "bake_seconds": 1}),
            "all_at_once or blue_green",
        ),
        (lambda env: env["health"].update(synthetic={"payload": {}, "expect": {}}), "health.synthetic: a Lambda check"),
        (lambda env: env.update(health={"alarms": ["a"]}), "health.environment: an elasticbeanstalk target is judged"),
        (lambda env: env["target"].update(idle_environment="webapp-blue"), "idle_environment must differ"),
    ],
)
def test_an_elasticbeanstalk_environment_that_cannot_work_is_refused_naming_the_field(
    change: Any, message: str
) -> None:
    spec = eb_spec()
    change(spec["environments"][0])
    with pytest.raises(PipelineInvalidError, match=message):
        parse(spec)


def test_environment_health_on_a_lambda_target_is_refused() -> None:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0]["health"]["environment"] = {"path": "/health"}
    with pytest.raises(PipelineInvalidError, match=r"health\.environment: only an elasticbeanstalk target"):
        parse(spec)


def test_two_environments_of_a_pipeline_may_not_share_an_eb_environment() -> None:
    spec = eb_spec()
    second = copy.deepcopy(spec["environments"][0])
    second["name"] = "production"
    second["target"] = {"kind": "elasticbeanstalk", "application": "webapp", "environment": "webapp-green"}
    second["strategy"] = {"type": "all_at_once"}
    spec["environments"].append(second)
    with pytest.raises(PipelineInvalidError, match="both target Elastic Beanstalk environment 'webapp-green'"):
        parse(spec)


# --------------------------------------------------------------------------- all at once


def test_all_at_once_deploy_makes_a_version_and_moves_nothing() -> None:
    beanstalk = FakeBeanstalk()
    beanstalk.add("webapp-blue", "0.9.0")
    rollout = Rollout("all_at_once", beanstalk)

    release = rollout.deploy()

    assert beanstalk.calls == [("create_version", "1.0.0")]
    assert (release.version_before, release.version_after) == ("0.9.0", "1.0.0")
    assert release.beanstalk is not None
    assert not release.beanstalk.blue_green
    assert beanstalk.environments["webapp-blue"].version_label == "0.9.0"
    entry = rollout.ledger.get("d-unit").environments["staging"]  # type: ignore[union-attr]
    assert (entry.function_name, entry.alias, entry.version_after) == ("webapp", "webapp-blue", "1.0.0")


def test_all_at_once_promotion_updates_the_environment_once_and_rollback_restores_the_label() -> None:
    beanstalk = FakeBeanstalk()
    beanstalk.add("webapp-blue", "0.9.0")
    rollout = Rollout("all_at_once", beanstalk)
    rollout.deploy()

    traffic = rollout.shift()
    assert (traffic.weight, traffic.complete) == (100, True)
    assert beanstalk.environments["webapp-blue"].version_label == "1.0.0"
    served = rollout.ledger.served("webapp", "webapp-blue")
    assert served is not None
    assert served.version == "1.0.0"

    # A re-run of the same step (a redrive) finds production on the release and changes nothing
    rollout.with_(traffic=None)
    rollout.shift()
    assert [c for c in beanstalk.calls if c[0] == "deploy_version"] == [("deploy_version", "webapp-blue", "1.0.0")]

    result = rollout.roll_back()
    assert (result.restored_version, result.rolled_back_from) == ("0.9.0", "1.0.0")
    assert beanstalk.environments["webapp-blue"].version_label == "0.9.0"


# --------------------------------------------------------------------------- blue/green


def test_blue_green_deploys_to_the_idle_environment_created_on_the_live_platform(pair: FakeBeanstalk) -> None:
    rollout = Rollout("blue_green", pair)

    release = rollout.deploy()

    assert ("create_environment", "webapp-green", "1.0.0", "/health") in pair.calls
    assert release.beanstalk is not None
    assert (release.beanstalk.live_environment, release.beanstalk.deployed_environment) == (
        "webapp-blue",
        "webapp-green",
    )
    assert pair.environments["webapp-blue"].version_label == "0.9.0"  # production untouched


def test_blue_green_reuses_the_idle_environment_whichever_of_the_pair_is_live(pair: FakeBeanstalk) -> None:
    # Given green serves production (an earlier swap) and blue is idle
    pair.add("webapp-green", "0.9.0")
    pair.swap_cnames("webapp", "webapp-blue", "webapp-green")
    rollout = Rollout("blue_green", pair)

    release = rollout.deploy()

    assert release.beanstalk is not None
    assert (release.beanstalk.live_environment, release.beanstalk.deployed_environment) == (
        "webapp-green",
        "webapp-blue",
    )
    assert ("deploy_version", "webapp-blue", "1.0.0") in pair.calls


def test_blue_green_verifies_on_the_idle_url_then_swaps_once(pair: FakeBeanstalk) -> None:
    rollout = Rollout("blue_green", pair)
    rollout.deploy()
    idle_url = "http://webapp-green.us-east-1.elasticbeanstalk.com/health"
    rollout.prober.answers = {idle_url: 200, LIVE_URL: 200}

    # Step 1 (0%): production unchanged; judged on the idle environment's own URL
    assert rollout.shift().weight == 0
    assert pair.cname_of("webapp-blue").startswith(CNAME)
    verdict = rollout.judge()
    assert verdict.status == "pass"
    assert rollout.prober.fetched == [idle_url]

    # Step 2 (100%): the CNAMEs swap, once even when the step runs again (a redrive)
    verified = rollout.step.traffic
    assert rollout.shift().weight == 100
    rollout.with_(traffic=verified)
    rollout.shift()
    assert [c[0] for c in pair.calls].count("swap_cnames") == 1
    assert pair.cname_of("webapp-green").startswith(CNAME)

    # Judged on the production CNAME, now green's
    assert rollout.judge().status == "pass"
    assert rollout.prober.fetched[-1] == LIVE_URL


def test_a_red_environment_fails_the_verdict_with_eb_s_cause(pair: FakeBeanstalk) -> None:
    rollout = Rollout("blue_green", pair)
    pair.broken.add("1.0.0")
    rollout.deploy()
    rollout.shift()

    verdict = rollout.judge()

    assert verdict.status == "fail"
    environment = next(check for check in verdict.checks if check.name == "environment")
    assert environment.status == "fail"
    assert "webapp/webapp-green is Red (Severe): Health check URL /health failed: HTTP 500" in environment.reason


def test_a_failed_bake_swaps_back_and_keeps_the_old_environment(pair: FakeBeanstalk) -> None:
    rollout = Rollout("blue_green", pair)
    rollout.deploy()
    rollout.shift()
    rollout.shift()
    assert pair.cname_of("webapp-green").startswith(CNAME)

    result = rollout.roll_back()

    assert pair.cname_of("webapp-blue").startswith(CNAME)
    assert pair.environments["webapp-blue"].version_label == "0.9.0"
    assert result.restored_version == "0.9.0"
    assert pair.calls[-1] == ("swap_cnames", "webapp-blue", "webapp-green")


def test_a_re_run_after_the_swap_keeps_the_old_environment_and_swaps_back_to_it(pair: FakeBeanstalk) -> None:
    # Given an earlier attempt that swapped 1.0.0 in (green serves production, blue keeps 0.9.0)
    first = Rollout("blue_green", pair)
    first.deploy()
    first.shift()
    first.shift()
    assert pair.cname_of("webapp-green").startswith(CNAME)

    # When the execution is re-run: its Deploy finds the release already serving production
    rerun = Rollout("blue_green", pair)
    release = rerun.deploy()

    # Then 0.9.0 is kept on blue (nothing deployed over it), and a failed check swaps back to it
    assert (release.version_before, release.version_after) == ("0.9.0", "1.0.0")
    assert pair.environments["webapp-blue"].version_label == "0.9.0"
    rerun.shift()
    result = rerun.roll_back()
    assert pair.cname_of("webapp-blue").startswith(CNAME)
    assert result.restored_version == "0.9.0"


def test_a_rollback_before_the_swap_moves_nothing(pair: FakeBeanstalk) -> None:
    rollout = Rollout("blue_green", pair)
    rollout.deploy()
    rollout.shift()

    rollout.roll_back()

    assert "swap_cnames" not in [c[0] for c in pair.calls]
    assert pair.cname_of("webapp-blue").startswith(CNAME)


# --------------------------------------------------------------------------- the lock


def test_the_lock_is_keyed_by_the_eb_environment_and_reads_the_served_label(pair: FakeBeanstalk) -> None:
    step = build_step(eb_spec(), release=None, lock=None)
    ledger = started_ledger(step)

    grant = acquire_lock(
        step,
        locks=FakeLocks(),
        ledger=ledger,
        targets=FakeTargets(),
        executions=FakeExecutions(),
        owners=FakeTargetOwners(),
        now=1000.0,
        beanstalk=pair,
    )

    assert grant.status == "acquired"
    assert grant.alias_version == "0.9.0"
    expected = "arn:aws:elasticbeanstalk:us-east-1:123456789012:environment/webapp/webapp-blue"
    assert lock_target(step.deployment, step.environment) == expected
    assert grant.target == expected


def test_a_blue_green_pair_is_one_owner_and_one_lock_whichever_environment_another_spec_names(
    pair: FakeBeanstalk,
) -> None:
    # Given webapp's blue/green pair (webapp-blue, idle webapp-green) claimed by its pipeline
    owners = FakeTargetOwners()
    claim_targets(parse(eb_spec()), HOME, owners, source="pipelines/webapp.yaml")
    green = "arn:aws:elasticbeanstalk:us-east-1:123456789012:environment/webapp/webapp-green"

    # When another app names the idle environment as its own target, Then it is refused naming the field and owner
    other = eb_spec("all_at_once", environment="webapp-green")
    other["app"] = "web2"
    with pytest.raises(TargetClaimedError) as raised:
        claim_targets(parse(other), HOME, owners, source="pipelines/web2.yaml")
    assert str(raised.value).startswith("pipelines/web2.yaml: environments[0] (staging).target.environment: ")
    assert f"Elastic Beanstalk environment {green} belongs to app 'hello'" in str(raised.value)
    # And one naming it the other way round is refused on its idle_environment
    swapped = eb_spec(environment="webapp-green", idle_environment="webapp-blue")
    swapped["app"] = "web3"
    with pytest.raises(TargetClaimedError, match=r"\(staging\)\.target\.environment: .* belongs to app 'hello'"):
        claim_targets(parse(swapped), HOME, owners, source="pipelines/web3.yaml")

    # And a deployment of the pair holds the idle environment's lock with its own, so none of another spec's
    # deployments can move either meanwhile
    step = build_step(eb_spec(), release=None, lock=None)
    locks = FakeLocks()
    grant = acquire_lock(
        step,
        locks=locks,
        ledger=started_ledger(step),
        targets=FakeTargets(),
        executions=FakeExecutions(),
        owners=FakeTargetOwners(),
        now=1000.0,
        beanstalk=pair,
    )
    assert grant.status == "acquired"
    assert companion_lock_targets(step.deployment, step.environment) == [green]
    held = locks.get(green)
    assert held is not None
    assert held.holder == step.deployment.execution_arn


def test_a_lambda_rollout_needs_no_beanstalk_adapter() -> None:
    step = build_step()
    targets = FakeTargets()
    targets.add("hello-staging", alias="live", version="1")
    release = deploy(step, targets=targets, ledger=started_ledger(step), managed_tag_key="conveyor:managed")
    assert release.beanstalk is None


# --------------------------------------------------------------------------- the reconciler


EB_TARGET = "arn:aws:elasticbeanstalk:us-east-1:123456789012:environment/webapp/webapp-blue"


def _stopped_after_the_swap(pair: FakeBeanstalk) -> Any:
    """A blue/green deployment whose execution stopped after the CNAMEs were swapped: the reconcile tests' world
    (its ledger, lock and notifier), its staging entry a Beanstalk one, the lock still the execution's."""
    from tests.unit.test_reconcile import EXECUTION, NOW
    from tests.unit.test_reconcile import World as LambdaWorld

    world = LambdaWorld()
    rollout = Rollout("blue_green", pair)
    rollout.deploy()
    rollout.shift()
    rollout.shift()
    assert pair.cname_of("webapp-green").startswith(CNAME)
    world.locks.try_acquire(
        EB_TARGET,
        holder=EXECUTION,
        deployment_id=world.deployment_id,
        app="webapp",
        environment="staging",
        lease_seconds=3600,
        now=NOW,
    )
    release = rollout.step.release
    assert release is not None
    assert release.beanstalk is not None
    world.ledger.update_environment(
        world.deployment_id,
        "staging",
        {
            "function_name": "webapp",
            "alias": "webapp-blue",
            "version_before": "0.9.0",
            "version_after": "1.0.0",
            "lock_target": EB_TARGET,
            "beanstalk": release.beanstalk.model_dump(mode="json"),
        },
    )
    return world


def _reconcile_stop(world: Any, pair: FakeBeanstalk) -> Any:
    """The reconciler handling that execution's stop (ABORTED), with the Beanstalk fake as its adapter."""
    from tests.unit.test_reconcile import NOW, ended

    return reconcile(
        ended("ABORTED"),
        ledger=world.ledger,
        locks=world.locks,
        targets=world.targets,
        notifier=world.notifier,
        now=NOW + 100,
        beanstalk=lambda: pair,
    )


def test_an_execution_stopped_after_the_swap_is_swapped_back_by_the_reconciler(pair: FakeBeanstalk) -> None:

    # Given a blue/green deployment whose execution stopped after the CNAMEs were swapped
    world = _stopped_after_the_swap(pair)

    # When the reconciler handles the execution's end
    _reconcile_stop(world, pair)

    # Then production is back on webapp-blue, and the ledger says so
    assert pair.cname_of("webapp-blue").startswith(CNAME)
    entry = world.record().environments["staging"]
    assert entry.status is EnvironmentStatus.ROLLED_BACK
    assert entry.rollback["restored_version"] == "0.9.0"


@pytest.mark.parametrize("later_swapped", [False, True], ids=["holder-moved-nothing", "later-release-swapped"])
def test_a_failed_swap_back_is_retried_unless_a_later_release_moved_production(
    pair: FakeBeanstalk, later_swapped: bool
) -> None:
    from conveyor.domain.errors import RollbackFailedError, TrafficShiftError
    from conveyor.domain.outcome import Outcome

    from tests.unit.test_reconcile import NOW

    # Given a blue/green deployment stopped after the swap, whose swap back Elastic Beanstalk refused
    world = _stopped_after_the_swap(pair)
    target = EB_TARGET
    swap = pair.swap_cnames

    def refused(application: str, source: str, destination: str) -> None:
        raise TrafficShiftError("SwapEnvironmentCNAMEs failed: ServiceException")

    pair.swap_cnames = refused  # type: ignore[method-assign]

    def run() -> object:
        return _reconcile_stop(world, pair)

    with pytest.raises(RollbackFailedError):
        run()
    pair.swap_cnames = swap  # type: ignore[method-assign]
    # And a holder since: a later release that swapped production to its own environment, or one refused at a gate
    world.locks.try_acquire(
        target, holder="later", deployment_id="d-later", app="webapp", environment="staging", lease_seconds=60, now=NOW
    )
    if later_swapped:
        pair.swap_cnames("webapp", "webapp-blue", "webapp-green")
    world.locks.release(target, "later")
    serving = pair.cname_of("webapp-blue")

    # When the reconciler tries again
    run()

    # Then it swaps back only when nothing moved production since; the deployment is settled either way
    if later_swapped:
        assert pair.cname_of("webapp-blue") == serving
    else:
        assert pair.cname_of("webapp-blue").startswith(CNAME)
    assert world.record().status is Outcome.ABORTED


def test_lambda_only_commands_refuse_a_beanstalk_environment_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor_cli import operations
    from conveyor_cli.context import CliError

    monkeypatch.setattr(operations, "show_pipeline", lambda cloud, app: parse(eb_spec()))

    with pytest.raises(CliError, match=r"environment 'staging' targets Elastic Beanstalk \(webapp/webapp-blue\)"):
        operations.environment_target(None, "webapp", "staging")  # type: ignore[arg-type]


def test_live_shows_what_production_serves_for_a_beanstalk_environment(
    pair: FakeBeanstalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.domain.contracts import ServedRelease
    from conveyor.domain.timing import utcnow

    from conveyor_cli import operations
    from conveyor_cli.live import live_environments, live_row
    from tests.fakes import FakeLedger

    # Given a registered blue/green pipeline whose production (webapp-blue) serves 0.9.0, recorded in the ledger
    ledger = FakeLedger()
    ledger.record_served(
        ServedRelease(
            function_name="webapp",
            alias="webapp-blue",
            lambda_version="0.9.0",
            app="hello",
            version="0.9.0",
            sha256="s",
            deployment_id="d-9",
            built_at=utcnow(),
            recorded_at=utcnow(),
            recorded_by="ShiftTraffic",
        )
    )
    monkeypatch.setattr(operations, "show_pipeline", lambda cloud, app: parse(eb_spec()))
    monkeypatch.setattr(operations, "beanstalk", lambda cloud: pair)
    monkeypatch.setattr(operations, "ledger", lambda cloud: ledger)
    monkeypatch.setattr(operations, "targets", lambda cloud: FakeTargets())

    # When `conveyor live hello` reads it, Then the environment serving production and its release are shown
    (entry,) = live_environments(None, "hello")  # type: ignore[arg-type]
    row = live_row(entry)
    assert row[2:4] == ("webapp/webapp-blue", "0.9.0 (label 0.9.0)")
    assert row[6] == "d-9 (ShiftTraffic)"


def test_abort_finds_the_rollout_of_a_beanstalk_environment_by_its_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor_cli import operations
    from conveyor_cli.abort import rollout_of

    # Given webapp's blue/green environment locked by a deployment
    locks = FakeLocks()
    blue = "arn:aws:elasticbeanstalk:us-east-1:123456789012:environment/webapp/webapp-blue"
    arn = "arn:aws:states:us-east-1:123456789012:execution:deployments:x"
    locks.try_acquire(
        blue, holder=arn, deployment_id="d-eb", app="hello", environment="staging", lease_seconds=60, now=1.0
    )
    monkeypatch.setattr(operations, "show_pipeline", lambda cloud, app: parse(eb_spec()))
    monkeypatch.setattr(operations, "locks", lambda cloud: locks)

    class Cloud:
        def home(self) -> object:
            return HOME

    # When `conveyor abort hello staging` looks for what rolls out there, Then it is that deployment
    assert rollout_of(Cloud(), "hello", "staging") == "d-eb"  # type: ignore[arg-type]


def test_status_names_a_beanstalk_environment_and_its_versions() -> None:
    from datetime import UTC, datetime

    from conveyor.domain.outcome import Outcome
    from conveyor.domain.records import DeploymentRecord

    from conveyor_cli.status import render_environments

    at = datetime(2026, 1, 1, tzinfo=UTC)
    entry = {
        "status": "LIVE",
        "function_name": "webapp",
        "alias": "webapp-blue",
        "target_kind": "elasticbeanstalk",
        "version_before": "1.0.0",
        "version_after": "1.1.0",
    }
    record = DeploymentRecord(
        deployment_id="d-1",
        app="webapp",
        version="1.1.0",
        status=Outcome.SUCCEEDED,
        created_at=at,
        updated_at=at,
        environments={"production": entry},
    )

    assert render_environments(record)[0].split() == [
        "production",
        "webapp/webapp-blue",
        "version",
        "before:",
        "1.0.0",
        "after:",
        "1.1.0",
        "(LIVE)",
    ]


@pytest.mark.parametrize("unmanaged", ["webapp-blue", "webapp-green"])
def test_an_environment_without_the_managed_tag_is_refused_before_anything_changes(
    pair: FakeBeanstalk, unmanaged: str
) -> None:
    # Given one of the pair (the live one, or an existing idle one) is not tagged conveyor:managed=true
    pair.add("webapp-green", "0.8.0")
    pair.unmanaged.add(unmanaged)
    rollout = Rollout("blue_green", pair)

    # When the release is deployed, Then it is refused naming the environment, and nothing was created or changed
    with pytest.raises(TargetNotManagedError, match=f"{unmanaged} is not tagged conveyor:managed=true"):
        rollout.deploy()
    assert pair.calls == []


def test_pipeline_apply_names_a_missing_or_unmanaged_eb_environment(pair: FakeBeanstalk) -> None:
    from conveyor.domain.ownership import resolve_targets
    from conveyor.domain.readiness import missing_resources
    from conveyor.domain.target_identity import Home

    spec = parse(eb_spec())
    resolved = resolve_targets(spec, Home(account="123456789012", region="us-east-1"), source="webapp.yaml")

    def problems() -> list[str]:
        return missing_resources(
            spec, resolved, targets=FakeTargets(), alarms=FakeAlarms(), tag_key="conveyor:managed", beanstalk=pair
        )

    # A live environment that is managed, and no idle one yet (the first release creates it): ready
    assert problems() == []
    # An idle environment someone else made, without the tag: refused, naming the field
    pair.add("webapp-green", "0.1.0")
    pair.unmanaged.add("webapp-green")
    assert problems() == [
        "environments[0] (staging).target.idle_environment: Elastic Beanstalk environment webapp-green is not "
        "tagged conveyor:managed=true"
    ]
    # No live environment: refused, naming it
    del pair.environments["webapp-blue"]
    assert (
        "environments[0] (staging).target.environment: Elastic Beanstalk environment webapp/webapp-blue does not exist"
        in problems()
    )
