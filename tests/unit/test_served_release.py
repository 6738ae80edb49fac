"""Which release an alias serves is recorded in the ledger (``ServedRelease``), and the lock reads it there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.domain.contracts import EnvironmentStep, LockGrant, PackageRef, ServedRelease
from conveyor.domain.layout import release_key
from conveyor.domain.manifest import Manifest, base64_digest
from conveyor.domain.outcome import Outcome
from conveyor.domain.pipeline import RolloutPolicy
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.versions import VersionOrder
from conveyor.stages.deploy import deploy
from conveyor.stages.lock import acquire_lock
from conveyor.stages.rollback import roll_back
from conveyor.stages.traffic import shift_traffic

from tests.fakes import (
    FakeExecutions,
    FakeLedger,
    FakeLocks,
    FakeTargetOwners,
    FakeTargets,
    make_manifest,
    make_package,
)
from tests.unit.conftest import build_step
from tests.unit.test_reconcile import World as ReconcileWorld

BUILT = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
NOW = 1_700_000_000.0
FUNCTION, ALIAS = "hello-staging", "live"
CANARY = {
    "schema_version": 1,
    "app": "hello",
    "environments": [
        {
            "name": "staging",
            "target": {"kind": "lambda", "function_name": FUNCTION, "alias": ALIAS},
            "strategy": {"type": "canary", "weight": 10, "bake_seconds": 60},
            "health": {"synthetic": {"expect": {"status": "ok"}}},
        }
    ],
}


class World:
    def __init__(self) -> None:
        self.targets, self.ledger, self.locks, self.executions = (
            FakeTargets(),
            FakeLedger(),
            FakeLocks(),
            FakeExecutions(),
        )
        self.targets.add(FUNCTION, alias=ALIAS)

    def step(
        self,
        deployment_id: str,
        version: str,
        *,
        code: str,
        built: datetime = BUILT,
        order: VersionOrder = "semver",
        spec: dict[str, object] | None = None,
    ) -> EnvironmentStep:
        base = build_step(spec, release=None)
        package = make_package(code)
        manifest = Manifest.model_validate(make_manifest(package, version=version, created_at=built.isoformat()))
        deployment = base.deployment.model_copy(
            update={
                "deployment_id": deployment_id,
                "version": version,
                "manifest": manifest,
                "package": PackageRef(
                    bucket="bucket",
                    key=release_key("hello", manifest.package.sha256),
                    sha256=manifest.package.sha256,
                    size=manifest.package.size,
                    version_id="v1",
                ),
                "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:deployments:{deployment_id}",
                "started_at": built,
                "policy": RolloutPolicy(version_order=order),
            }
        )
        self.ledger.start(
            DeploymentRecord(
                deployment_id=deployment_id,
                app="hello",
                version=version,
                status=Outcome.IN_PROGRESS,
                created_at=built,
                updated_at=built,
                execution_arn=deployment.execution_arn,
            )
        )
        return base.model_copy(update={"deployment": deployment})

    def deployed(self, step: EnvironmentStep) -> EnvironmentStep:
        release = deploy(step, targets=self.targets, ledger=self.ledger, managed_tag_key="conveyor:managed")
        return step.model_copy(update={"release": release})

    def shifted(self, step: EnvironmentStep) -> EnvironmentStep:
        return step.model_copy(update={"traffic": shift_traffic(step, targets=self.targets, ledger=self.ledger)})

    def go_live(self, step: EnvironmentStep) -> EnvironmentStep:
        """Deploy and shift every step of the plan to 100%, then end the deployment SUCCEEDED."""
        step = self.shifted(self.deployed(step))
        while step.traffic is not None and not step.traffic.complete:
            step = self.shifted(step)
        self.ledger.finish(step.deployment.deployment_id, Outcome.SUCCEEDED)
        return step

    def acquire(self, step: EnvironmentStep) -> LockGrant:
        return acquire_lock(
            step,
            locks=self.locks,
            ledger=self.ledger,
            targets=self.targets,
            executions=self.executions,
            owners=FakeTargetOwners(),
            now=NOW,
        )

    def alias_version(self) -> str | None:
        return self.targets.alias_version(FUNCTION, ALIAS)


def test_a_reused_lambda_version_serves_the_release_recorded_in_the_ledger_not_its_description() -> None:
    # Given 1.0.1 live on Lambda version 2, and a byte-identical build pushed as 1.0.5 that reuses version 2
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="same", built=BUILT))
    five = world.go_live(world.step("d-5", "1.0.5", code="same", built=BUILT + timedelta(hours=1)))
    assert five.release is not None
    assert (five.release.reused, five.release.version_after, world.alias_version()) == (True, "2", "2")
    assert "1.0.1" in world.targets.version_description(FUNCTION, "2")  # the immutable description still says 1.0.1

    # When a queued 1.0.3 (pushed before 1.0.5) gets the lock
    grant = world.acquire(world.step("d-3", "1.0.3", code="three", built=BUILT + timedelta(minutes=30)))

    # Then it knows 1.0.5 is live there and ends SUPERSEDED instead of replacing it
    assert (grant.status, grant.waiting_for) == ("superseded", "d-5")
    served = world.ledger.served(FUNCTION, ALIAS)
    assert served is not None
    assert (served.version, served.deployment_id, served.lambda_version) == ("1.0.5", "d-5", "2")
    assert world.alias_version() == "2"


def test_the_served_release_changes_only_when_the_alias_reaches_100_percent() -> None:
    # Given 1.0.1 live
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="one", spec=CANARY))

    # When 1.0.2 is at its 10% canary step, Then the alias still serves 1.0.1's release
    canary = world.shifted(world.deployed(world.step("d-2", "1.0.2", code="two", spec=CANARY)))
    assert canary.traffic is not None
    assert canary.traffic.weight == 10
    served = world.ledger.served(FUNCTION, ALIAS)
    assert served is not None
    assert served.deployment_id == "d-1"

    # When it is promoted to 100%, Then it serves 1.0.2's
    world.shifted(canary)
    served = world.ledger.served(FUNCTION, ALIAS)
    assert served is not None
    assert (served.version, served.deployment_id, served.recorded_by) == ("1.0.2", "d-2", "ShiftTraffic")


def test_a_rollback_records_the_release_the_alias_serves_again() -> None:
    # Given 1.0.1 live and 1.0.2 at 100% (baking), When 1.0.2 is rolled back
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="one"))
    two = world.shifted(world.deployed(world.step("d-2", "1.0.2", code="two")))
    roll_back(two, targets=world.targets, ledger=world.ledger)

    # Then the alias serves 1.0.1's version and the ledger says so again
    served = world.ledger.served(FUNCTION, ALIAS)
    assert served is not None
    assert (served.version, served.deployment_id, served.recorded_by) == ("1.0.1", "d-1", "RollBack of d-2")
    assert served.serves(world.alias_version())


def test_a_re_run_whose_earlier_attempt_went_live_rolls_back_to_the_release_before_it() -> None:
    # Given 1.0.1 live, and an attempt of 1.0.2 that went live in this environment (it failed later, elsewhere)
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="one"))
    two = world.step("d-2", "1.0.2", code="two")
    world.shifted(world.deployed(two))
    assert world.alias_version() == "3"

    # When the execution is re-run (a new attempt of d-2): Deploy finds its own version already served
    again = world.deployed(_new_attempt(world, two, 2))

    # Then the version before is what the first attempt replaced, and a failed verdict restores 1.0.1
    assert again.release is not None
    assert (again.release.version_before, again.release.version_after) == ("2", "3")
    assert again.release.served_before is not None
    assert again.release.served_before.deployment_id == "d-1"
    roll_back(world.shifted(again), targets=world.targets, ledger=world.ledger)
    assert world.alias_version() == "2"
    served = world.ledger.served(FUNCTION, ALIAS)
    assert served is not None
    assert (served.version, served.deployment_id) == ("1.0.1", "d-1")


def _new_attempt(world: World, step: EnvironmentStep, attempt: int) -> EnvironmentStep:
    """Another execution of ``step``'s deployment, after the last one failed: claimed and started again."""
    world.ledger.finish(step.deployment.deployment_id, Outcome.FAILED)
    deployment = step.deployment.model_copy(update={"execution_arn": f"{step.deployment.execution_arn}-{attempt}"})
    record = world.ledger.get(deployment.deployment_id)
    assert record is not None
    seed = record.model_copy(update={"execution_arn": deployment.execution_arn})
    assert world.ledger.claim(seed, replaceable={Outcome.FAILED}, stale_owner=None)
    assert world.ledger.start(seed, environments={"staging": {"status": "PENDING"}}) is not None
    return step.model_copy(update={"deployment": deployment})


def test_a_re_run_restores_what_its_newest_attempt_replaced_not_its_first() -> None:
    # Given 1.0.2's first attempt took staging from 2 to 3; then the alias went back to 1 by hand, and a second
    # attempt took it from 1 to 3 again
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="one"))
    two = world.step("d-2", "1.0.2", code="two")
    world.shifted(world.deployed(two))
    world.targets.route_alias(FUNCTION, ALIAS, "1", None)
    world.ledger.forget_served(FUNCTION, ALIAS)
    second = _new_attempt(world, two, 2)
    world.shifted(world.deployed(second))
    assert world.alias_version() == "3"

    # When a third attempt runs, Then what it would restore is 1 (what the newest attempt replaced), not 2
    third = world.deployed(_new_attempt(world, second, 3))
    assert third.release is not None
    assert (third.release.version_before, third.release.version_after) == ("1", "3")


def test_a_push_of_a_release_already_live_restores_what_that_release_replaced() -> None:
    # Given 1.0.2 took staging from 2 to 3 and went live (deployment d-2)
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="one"))
    world.go_live(world.step("d-2", "1.0.2", code="two"))
    # When the same release (1.0.2, same content) is pushed again as a new deployment (say, after an operator rolled
    # back another environment of it): Lambda answers with version 3 again
    again = world.deployed(world.step("d-2b", "1.0.2", code="two"))
    # Then its version before is what 1.0.2 replaced here, and a failed check restores 1.0.1
    assert again.release is not None
    assert (again.release.version_before, again.release.version_after) == ("2", "3")
    roll_back(world.shifted(again), targets=world.targets, ledger=world.ledger)
    assert world.alias_version() == "2"


def test_a_canary_re_run_or_re_push_of_a_release_live_here_moves_no_traffic_back() -> None:
    # Given a canary pipeline whose 1.0.2 went live in staging (10%, then 100%)
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="one", spec=CANARY))
    world.go_live(world.step("d-2", "1.0.2", code="two", spec=CANARY))
    routed: list[tuple[str, dict[str, float]]] = []
    route = world.targets.route_alias

    def recording(function: str, alias: str, version: str, weights: dict[str, float] | None, **kw: object) -> object:
        routed.append((version, dict(weights or {})))
        return route(function, alias, version, weights, **kw)  # type: ignore[arg-type]

    world.targets.route_alias = recording  # type: ignore[method-assign]
    # When the same release is pushed again (say, after an operator rolled back another environment of it)
    again = world.shifted(world.deployed(world.step("d-2b", "1.0.2", code="two", spec=CANARY)))
    # Then the plan goes straight to 100%: the alias never routes anything back to 1.0.1's version
    assert again.release is not None
    assert again.release.already_serving
    assert again.traffic is not None
    assert (again.traffic.weight, again.traffic.complete) == (100, True)
    assert routed == [("3", {})]
    # And a failed check still restores the release before it
    assert again.release.version_before == "2"


def test_a_release_whose_code_was_already_live_has_nothing_before_it_to_restore() -> None:
    # Given 1.0.1 live on version 2, and 1.0.5, byte-identical, deployed: Lambda answers with version 2 again
    world = World()
    world.go_live(world.step("d-1", "1.0.1", code="same"))
    five = world.deployed(world.step("d-5", "1.0.5", code="same", built=BUILT + timedelta(hours=1)))
    # Then its version before is the one it reuses: no earlier attempt of d-5 moved the alias
    assert five.release is not None
    assert (five.release.version_before, five.release.version_after) == ("2", "2")


def test_a_rollback_to_a_version_of_unknown_release_forgets_what_was_served() -> None:
    # Given the alias on a hand-made version 1 (no release recorded), and 1.0.2 taken to 100% then rolled back
    world = World()
    two = world.shifted(world.deployed(world.step("d-2", "1.0.2", code="two")))
    assert world.ledger.served(FUNCTION, ALIAS) is not None
    roll_back(two, targets=world.targets, ledger=world.ledger)

    # Then nothing is claimed about what version 1 serves
    assert world.alias_version() == "1"
    assert world.ledger.served(FUNCTION, ALIAS) is None


def test_a_served_record_the_alias_no_longer_matches_protects_nothing() -> None:
    # Given 1.0.5 recorded as served, then the alias moved back to version 1 outside Conveyor
    world = World()
    world.go_live(world.step("d-5", "1.0.5", code="five"))
    world.targets.route_alias(FUNCTION, ALIAS, "1", None)

    # When 1.0.3 takes the lock, Then it proceeds: the record is stale
    assert world.acquire(world.step("d-3", "1.0.3", code="three")).status == "acquired"


def test_commit_hash_versions_are_outdated_by_build_time_not_text() -> None:
    # Given 9f1c2e7 live, built first
    world = World()
    world.go_live(world.step("d-a", "9f1c2e7", code="a", order="build_time"))

    # When a later build 1a2b3c4 (lower as text) takes the lock, Then it proceeds
    later = world.step("d-b", "1a2b3c4", code="b", built=BUILT + timedelta(hours=1), order="build_time")
    assert world.acquire(later).status == "acquired"

    # And an earlier build than the live one is outdated
    world.locks.release(f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}", later.deployment.execution_arn)
    earlier = world.step("d-c", "ffffff0", code="c", built=BUILT - timedelta(hours=1), order="build_time")
    assert world.acquire(earlier).status == "superseded"


def test_deploy_updates_from_the_validated_object_version_and_publishes_with_its_code_sha256() -> None:
    # Given a release stored as object version v1, When it is deployed
    world = World()
    step = world.deployed(world.step("d-1", "1.0.1", code="one"))

    # Then Lambda was updated from exactly that object version, and the version published with the
    # package's digest as CodeSha256 (PublishVersion's precondition: other code there fails the publish)
    assert step.release is not None
    ((function, package),) = world.targets.updates
    assert (function, package.version_id, package.key) == (FUNCTION, "v1", step.deployment.package.key)
    published_sha, _ = world.targets.functions[FUNCTION].versions[step.release.version_after]
    assert published_sha == base64_digest(step.deployment.package.sha256) == step.release.code_sha256


def served(version: str, deployment_id: str, lambda_version: str) -> ServedRelease:
    return ServedRelease(
        function_name=FUNCTION,
        alias=ALIAS,
        app="hello",
        version=version,
        deployment_id=deployment_id,
        sha256="a" * 64,
        lambda_version=lambda_version,
        built_at=BUILT,
        recorded_at=BUILT,
        recorded_by="ShiftTraffic",
    )


def test_the_reconciler_records_the_release_it_restores() -> None:
    # Given a deployment stopped during its final bake: staging at 100% on version 2, recorded as serving it,
    # and Deploy having noted that the alias served 1.0.1 (version 1) before
    world = ReconcileWorld()
    world.function.aliases["live"] = ("2", {})
    world.ledger.update_environment(
        world.deployment_id,
        "staging",
        {"weight": 100, "served_before": served("1.0.1", "d-old", "1").model_dump(mode="json")},
    )
    world.ledger.record_served(served("1.0.0", world.deployment_id, "2"))

    # When the reconciler restores staging
    world.reconcile("ABORTED")

    # Then the ledger says the alias serves 1.0.1 again, written by the reconciler
    assert world.function.aliases["live"] == ("1", {})
    again = world.ledger.served(FUNCTION, ALIAS)
    assert again is not None
    assert (again.version, again.deployment_id, again.recorded_by) == (
        "1.0.1",
        "d-old",
        f"Reconcile of {world.deployment_id}",
    )


def test_a_rollback_without_a_noted_release_keeps_a_record_that_still_describes_the_restored_version() -> None:
    # Given 1.0.1 recorded on version 1, and a canary of version 2 whose Release noted no served_before
    world = World()
    world.ledger.record_served(served("1.0.1", "d-1", "1"))
    canary = world.deployed(world.step("d-2", "1.0.2", code="two", spec=CANARY))
    assert canary.release is not None
    canary = world.shifted(
        canary.model_copy(update={"release": canary.release.model_copy(update={"served_before": None})})
    )

    # When it is rolled back, Then the record of 1.0.1 stays: the alias never left version 1 at 100%
    roll_back(canary, targets=world.targets, ledger=world.ledger)
    kept = world.ledger.served(FUNCTION, ALIAS)
    assert kept is not None
    assert (kept.version, kept.lambda_version) == ("1.0.1", "1")
