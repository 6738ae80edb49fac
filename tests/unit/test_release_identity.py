"""A version is immutable and tied to its content: the release binding (``bind_version``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import ManifestInvalidError, VersionConflictError
from conveyor.domain.manifest import Manifest
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord
from conveyor.stages.validate import bind_version

from tests.fakes import FakeExecutions, FakeLedger, make_manifest, make_package

NOW = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def manifest(code: str = "a", version: str = "1.0.1") -> Manifest:
    return Manifest.model_validate(make_manifest(make_package(code), version=version))


def deployment(ledger: FakeLedger, deployment_id: str, status: Outcome = Outcome.IN_PROGRESS) -> None:
    ledger.start(
        DeploymentRecord(
            deployment_id=deployment_id,
            app="hello",
            version="1.0.1",
            status=status,
            created_at=NOW,
            updated_at=NOW,
            execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:deployments:{deployment_id}",
        )
    )


def bind(
    ledger: FakeLedger,
    deployment_id: str,
    code: str = "a",
    *,
    executions: FakeExecutions | None = None,
    force: bool = False,
    live: str | None = "d-first",
) -> tuple[str, str] | None:
    """Bind 1.0.1 for ``deployment_id`` (with the app's ``live`` deployment, as ValidateArtifact finds it)."""
    deployment(ledger, deployment_id)
    return bind_version(
        manifest(code),
        deployment_id,
        ledger=ledger,
        executions=executions or FakeExecutions(),
        live=ledger.get(live) if live is not None else None,
        force=force,
    )


def test_the_first_deployment_binds_the_version_to_its_content() -> None:
    ledger = FakeLedger()
    assert bind(ledger, "d-first") is None
    bound = ledger.releases[("hello", "1.0.1")]
    assert (bound.sha256, bound.first_deployment_id, bound.deployment_id) == (
        manifest().package.sha256,
        "d-first",
        "d-first",
    )


def test_the_same_version_with_other_content_is_refused_naming_both_sha256_and_the_first_deployment() -> None:
    # Given 1.0.1 first deployed with code "a"
    ledger = FakeLedger()
    bind(ledger, "d-first")
    ledger.finish("d-first", Outcome.SUCCEEDED)

    # When 1.0.1 is pushed again with code "b", Then it is refused, and the binding is unchanged
    first, other = manifest("a").package.sha256, manifest("b").package.sha256
    with pytest.raises(VersionConflictError, match=rf"deployment d-first with package sha256 {first}.*sha256 {other}"):
        bind(ledger, "d-second", code="b")
    assert ledger.releases[("hello", "1.0.1")].deployment_id == "d-first"


def test_the_same_package_with_another_function_config_is_a_conflict_not_a_duplicate() -> None:
    # Given 1.0.1 live with FLAG=on
    ledger = FakeLedger()
    on = Manifest.model_validate(
        make_manifest(make_package("a"), version="1.0.1", function_config={"environment": {"FLAG": "on"}})
    )
    off = on.model_copy(
        update={"function_config": on.function_config.model_copy(update={"environment": {"FLAG": "off"}})}
    )  # type: ignore[union-attr]
    deployment(ledger, "d-first")
    assert bind_version(on, "d-first", ledger=ledger, executions=FakeExecutions(), live=None, force=False) is None
    ledger.finish("d-first", Outcome.SUCCEEDED)

    # When the same package is pushed as 1.0.1 with FLAG=off, Then it is refused naming both configurations
    deployment(ledger, "d-second")
    with pytest.raises(
        VersionConflictError, match=rf"another function_config .*{on.config_sha256}.*{off.config_sha256}"
    ):
        bind_version(
            off, "d-second", ledger=ledger, executions=FakeExecutions(), live=ledger.get("d-first"), force=False
        )
    assert ledger.releases[("hello", "1.0.1")].deployment_id == "d-first"


def test_a_manifest_with_a_key_written_twice_is_refused_naming_it() -> None:
    raw = manifest().model_dump_json().removesuffix("}") + ', "version": "1.0.11"}'
    with pytest.raises(ManifestInvalidError, match=r"manifest\.json: duplicate key 'version'"):
        Manifest.from_json(raw.encode())


@pytest.mark.parametrize("status", [Outcome.SUCCEEDED, Outcome.IN_PROGRESS, Outcome.QUEUED])
def test_the_same_content_again_is_a_duplicate_of_a_release_live_or_in_progress(status: Outcome) -> None:
    ledger = FakeLedger()
    bind(ledger, "d-first")
    ledger.records["d-first"]["status"] = status

    duplicate = bind(ledger, "d-second")

    assert duplicate is not None
    assert duplicate[0] == "d-first"
    assert "already live" in duplicate[1] if status is Outcome.SUCCEEDED else status.value in duplicate[1]
    assert ledger.releases[("hello", "1.0.1")].deployment_id == "d-first"


def test_the_same_content_after_an_operator_rolled_it_back_somewhere_is_a_new_attempt() -> None:
    # Given 1.0.1 live in staging and production, then rolled back in production by hand (conveyor rollback)
    ledger = FakeLedger()
    bind(ledger, "d-first")
    ledger.records["d-first"]["environments"] = {"staging": {"status": "LIVE"}, "production": {"status": "LIVE"}}
    ledger.finish("d-first", Outcome.SUCCEEDED)
    ledger.update_environment("d-first", "production", {"status": EnvironmentStatus.ROLLED_BACK})

    # When the same 1.0.1 is pushed again, Then it deploys again (production does not serve it), not a duplicate
    assert bind(ledger, "d-second") is None
    assert ledger.releases[("hello", "1.0.1")].deployment_id == "d-second"


@pytest.mark.parametrize("status", [Outcome.FAILED, Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED, Outcome.SUPERSEDED])
def test_the_same_content_after_a_failed_first_deployment_is_a_new_attempt(status: Outcome) -> None:
    ledger = FakeLedger()
    bind(ledger, "d-first")
    ledger.finish("d-first", status)

    assert bind(ledger, "d-second") is None

    bound = ledger.releases[("hello", "1.0.1")]
    assert (bound.first_deployment_id, bound.deployment_id) == ("d-first", "d-second")


def test_the_same_content_after_the_first_execution_stopped_is_a_new_attempt() -> None:
    # Given the carrier still IN_PROGRESS in the ledger but its execution aborted
    ledger, executions = FakeLedger(), FakeExecutions()
    bind(ledger, "d-first")
    executions.stop("arn:aws:states:us-east-1:123456789012:execution:deployments:d-first", NOW)

    assert bind(ledger, "d-second", executions=executions) is None


def test_the_same_content_of_a_release_no_longer_live_is_a_new_attempt() -> None:
    # Given 1.0.1 succeeded, then a newer release went live (the downgrade check allowed this push)
    ledger = FakeLedger()
    bind(ledger, "d-first")
    ledger.finish("d-first", Outcome.SUCCEEDED)
    deployment(ledger, "d-newer")

    # When 1.0.1's content is pushed again, Then it deploys as a new attempt of the release
    assert bind(ledger, "d-second", live="d-newer") is None
    assert ledger.releases[("hello", "1.0.1")].deployment_id == "d-second"


def test_force_deploys_the_same_content_again() -> None:
    ledger = FakeLedger()
    bind(ledger, "d-first")
    ledger.finish("d-first", Outcome.SUCCEEDED)
    assert bind(ledger, "d-second", force=True) is None


def test_a_retry_or_rerun_of_the_carrier_proceeds() -> None:
    ledger = FakeLedger()
    bind(ledger, "d-first")
    assert bind(ledger, "d-first") is None
