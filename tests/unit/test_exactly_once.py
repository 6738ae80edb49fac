"""Exactly once: ClaimDeployment's decisions, downgrade refusal, and notifications that survive retries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from conveyor.domain.contracts import Claim, ClaimRequest
from conveyor.domain.errors import (
    DeploymentSupersededError,
    DowngradeRefusedError,
    ExecutionInputTooLargeError,
    ForeignBucketError,
    VersionConflictError,
)
from conveyor.domain.manifest import Manifest
from conveyor.domain.notices import publish_once
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord
from conveyor.stages.claim import claim_deployment
from conveyor.stages.validate import check_not_downgrade

from tests.fakes import FakeExecutions, FakeLedger, make_manifest, make_package

EVENT: dict[str, Any] = {
    "source": "aws.s3",
    "detail-type": "Object Created",
    "detail": {
        "bucket": {"name": "artifacts"},
        "object": {"key": "artifacts/hello/2.0.0.zip", "version-id": "v1", "etag": "e", "size": 10},
    },
}
STARTED = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def request(run: str, **options: Any) -> ClaimRequest:
    event = {**EVENT, **({"conveyor": options} if options else {})}
    return ClaimRequest(event=event, execution_arn=f"arn:exec:{run}", started_at=STARTED)


def claim(request: ClaimRequest, *, ledger: FakeLedger, executions: FakeExecutions) -> Claim:
    """ClaimDeployment in the bucket the events name (Conveyor's own)."""
    return claim_deployment(request, ledger=ledger, executions=executions, artifact_bucket="artifacts")


def test_the_first_delivery_proceeds_and_every_other_one_is_a_recorded_duplicate() -> None:
    # Given a ledger and an object delivered five times
    ledger, executions = FakeLedger(), FakeExecutions()

    # When each delivery's execution claims it
    claims = [claim(request(f"run-{n}"), ledger=ledger, executions=executions) for n in range(5)]

    # Then one proceeds and four are skipped duplicates, listed on the one deployment
    assert [c.decision for c in claims] == ["proceed"] + ["duplicate"] * 4
    record = ledger.get(claims[0].deployment_id)
    assert record is not None
    assert record.skipped_count == 4
    assert {s["outcome"] for s in record.skipped} == {"SKIPPED_DUPLICATE"}
    assert record.execution_arn == "arn:exec:run-0"


def test_a_retry_of_the_owner_proceeds() -> None:
    ledger, executions = FakeLedger(), FakeExecutions()
    claim(request("run-1"), ledger=ledger, executions=executions)

    again = claim(request("run-1"), ledger=ledger, executions=executions)

    assert again.decision == "proceed"


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED])
def test_a_rerun_after_a_failure_is_a_new_attempt(outcome: Outcome) -> None:
    # Given a deployment that ended badly
    ledger, executions = FakeLedger(), FakeExecutions()
    first = claim(request("run-1"), ledger=ledger, executions=executions)
    ledger.update_environment(first.deployment_id, "staging", {"status": "ROLLED_BACK"})
    ledger.finish(first.deployment_id, outcome)

    # When the console re-runs it
    rerun = claim(request("run-2"), ledger=ledger, executions=executions)

    # Then the re-run owns it afresh: running, its old environments and failure cleared
    assert rerun.decision == "proceed"
    record = ledger.get(first.deployment_id)
    assert record is not None
    assert (record.status, record.execution_arn, record.environments) == (Outcome.IN_PROGRESS, "arn:exec:run-2", {})


def test_a_rerun_of_a_live_artifact_is_a_no_op_that_says_so_unless_forced() -> None:
    # Given a deployment that succeeded
    ledger, executions = FakeLedger(), FakeExecutions()
    first = claim(request("run-1"), ledger=ledger, executions=executions)
    ledger.finish(first.deployment_id, Outcome.SUCCEEDED)

    # When it is re-run, then re-run with force
    plain = claim(request("run-2"), ledger=ledger, executions=executions)
    forced = claim(request("run-3", force=True), ledger=ledger, executions=executions)

    # Then the plain re-run changed nothing and says how to force; the forced one proceeds
    assert plain.decision == "already_live"
    assert "already live" in plain.reason
    assert '"force": true' in plain.reason
    assert forced.decision == "proceed"


def test_a_stopped_owner_is_taken_over() -> None:
    # Given a deployment whose execution was aborted while running
    ledger = FakeLedger()
    claim(request("run-1"), ledger=ledger, executions=FakeExecutions())

    # When the same object is re-run
    rerun = claim(request("run-2"), ledger=ledger, executions=FakeExecutions({"arn:exec:run-1": "ABORTED"}))

    # Then the re-run takes it over
    assert (rerun.decision, rerun.owner_execution_arn) == ("proceed", "arn:exec:run-1")


def test_a_malformed_input_is_left_to_validate_artifact() -> None:
    claim = claim_deployment(
        ClaimRequest(event={"nope": 1}, execution_arn="arn:exec:x", started_at=STARTED),
        ledger=FakeLedger(),
        executions=FakeExecutions(),
        artifact_bucket="artifacts",
    )
    assert claim.decision == "proceed"


def test_an_object_in_another_bucket_is_refused_and_never_claimed() -> None:
    # Given an execution input naming someone else's bucket (a hand-written input, a console re-run)
    event = {**EVENT, "detail": {**EVENT["detail"], "bucket": {"name": "attacker-bucket"}}}
    ledger = FakeLedger()

    # Then ClaimDeployment refuses it, naming both buckets (NotifyFailure records and reports it), and claims nothing
    with pytest.raises(ForeignBucketError, match=r"names bucket 'attacker-bucket', not Conveyor's .* 'artifacts'"):
        claim_deployment(
            ClaimRequest(event=event, execution_arn="arn:exec:x", started_at=STARTED),
            ledger=ledger,
            executions=FakeExecutions(),
            artifact_bucket="artifacts",
        )
    assert ledger.records == {}


def live(version: str, built_at: datetime | None = None) -> DeploymentRecord:
    now = datetime(2024, 5, 14, tzinfo=UTC)
    return DeploymentRecord(
        deployment_id="d-live",
        app="hello",
        version=version,
        status=Outcome.SUCCEEDED,
        created_at=now,
        updated_at=now,
        finished_at=now,
        built_at=built_at,
    )


def manifest(version: str, created_at: str = "2024-05-14T09:20:00Z") -> Manifest:
    return Manifest.model_validate(make_manifest(make_package(), version=version, created_at=created_at))


def test_an_older_version_is_refused_as_a_downgrade_naming_both_versions() -> None:
    with pytest.raises(DowngradeRefusedError, match=r"1\.2\.0 .*older than the live 1\.10\.0"):
        check_not_downgrade(manifest("1.2.0"), live("1.10.0"), order="semver", allowed=False, where="s3://b/k")


def test_a_release_rolled_back_by_hand_everywhere_is_not_the_live_one_a_downgrade_is_judged_against() -> None:
    from conveyor.domain.environment import EnvironmentStatus
    from conveyor.stages.validate import live_deployment

    # Given 2.1.0 live, then 2.6.0 live, which a person then rolled back in every environment
    ledger = FakeLedger()
    for n, (version, status) in enumerate(
        [("2.1.0", EnvironmentStatus.LIVE), ("2.6.0", EnvironmentStatus.ROLLED_BACK)]
    ):
        done = datetime(2024, 5, 14, n, tzinfo=UTC)
        record = live(version).model_copy(update={"deployment_id": f"d-{version}", "finished_at": done})
        ledger.start(record)
        ledger.records[record.deployment_id]["status"] = Outcome.SUCCEEDED
        ledger.records[record.deployment_id]["finished_at"] = done
        for environment in ("staging", "production"):
            ledger.update_environment(record.deployment_id, environment, {"status": status})

    # Then the live release, the one a push is compared with and named against, is 2.1.0
    found = live_deployment(ledger, "hello", exclude="d-new")
    assert found is not None
    assert found.version == "2.1.0"
    with pytest.raises(DowngradeRefusedError, match=r"older than the live 2\.1\.0"):
        check_not_downgrade(manifest("1.1.0"), found, order="semver", allowed=False, where="s3://b/k")

    # And with every success rolled back by hand, the newest still judges: the downgrade check never goes off
    for environment in ("staging", "production"):
        ledger.update_environment("d-2.1.0", environment, {"status": EnvironmentStatus.ROLLED_BACK})
    newest = live_deployment(ledger, "hello", exclude="d-new")
    assert newest is not None
    assert newest.version == "2.6.0"


def test_the_same_version_built_earlier_is_refused() -> None:
    built = datetime(2024, 5, 15, tzinfo=UTC)
    with pytest.raises(DowngradeRefusedError):
        check_not_downgrade(
            manifest("1.0.0"), live("1.0.0", built_at=built), order="semver", allowed=False, where="s3://b/k"
        )


def test_the_live_version_with_other_content_is_a_conflict_however_the_race_went() -> None:
    # Given 1.0.0 live, built later than a second build of 1.0.0 with other content pushed before it went live
    other = live("1.0.0", built_at=datetime(2024, 5, 15, tzinfo=UTC)).model_copy(update={"package_sha256": "f" * 64})
    pushed = datetime(2024, 5, 13, 23, 59, 59, tzinfo=UTC)

    # Then the push is refused as a conflicting build of the live version (not overtaken, not a downgrade),
    # naming both contents, whether downgrades are allowed or not
    for allowed in (False, True):
        with pytest.raises(VersionConflictError, match=r"hello 1\.0\.0 is immutable: deployment d-live made it live"):
            check_not_downgrade(
                manifest("1.0.0"), other, order="semver", allowed=allowed, where="s3://b/k", started_at=pushed
            )


def test_an_older_push_overtaken_by_a_newer_one_going_live_is_superseded_not_refused() -> None:
    # Given 1.10.0 went live at midnight, and 1.2.0 pushed a second before it did (a storm of pushes)
    pushed = datetime(2024, 5, 13, 23, 59, 59, tzinfo=UTC)

    # Then 1.2.0 lost a race (SUPERSEDED, nobody paged), while one pushed after it is a real downgrade
    with pytest.raises(DeploymentSupersededError, match=r"1\.2\.0 was overtaken: the newer 1\.10\.0"):
        check_not_downgrade(
            manifest("1.2.0"), live("1.10.0"), order="semver", allowed=False, where="s3://b/k", started_at=pushed
        )
    later = datetime(2024, 5, 14, 0, 0, 1, tzinfo=UTC)
    with pytest.raises(DowngradeRefusedError):
        check_not_downgrade(
            manifest("1.2.0"), live("1.10.0"), order="semver", allowed=False, where="s3://b/k", started_at=later
        )


def test_a_downgrade_passes_when_allowed_and_an_upgrade_always() -> None:
    check_not_downgrade(manifest("1.2.0"), live("1.10.0"), order="semver", allowed=True, where="s3://b/k")
    check_not_downgrade(manifest("1.11.0"), live("1.10.0"), order="semver", allowed=False, where="s3://b/k")
    check_not_downgrade(manifest("0.1.0"), None, order="semver", allowed=False, where="s3://b/k")


def test_a_newer_commit_hash_build_is_not_refused_as_a_downgrade_under_build_time() -> None:
    # Given 9f1c2e7 live, built yesterday, and 1a2b3c4 built today (lower as text)
    live_build = live("9f1c2e7", built_at=datetime(2024, 5, 13, tzinfo=UTC))
    # Then 1a2b3c4 passes, and an older build of another hash is refused
    check_not_downgrade(manifest("1a2b3c4"), live_build, order="build_time", allowed=False, where="s3://b/k")
    with pytest.raises(DowngradeRefusedError, match="version_order build_time"):
        check_not_downgrade(
            manifest("0000000", created_at="2024-05-12T00:00:00Z"),
            live_build,
            order="build_time",
            allowed=False,
            where="s3://b/k",
        )


def test_a_notification_is_published_once_per_key_across_retries() -> None:
    # Given a ledger and a publisher that counts
    ledger, published = FakeLedger(), []

    def publish() -> str:
        published.append(1)
        return f"m-{len(published)}"

    # When the same stage runs three times (a retry and a redrive)
    ids = [publish_once(ledger, "d-1", "run-1#failure", publish) for _ in range(3)]

    # Then one message went out and every run reports its id
    assert (len(published), ids) == (1, ["m-1"] * 3)


def test_an_execution_input_larger_than_any_s3_event_is_refused_before_it_is_parsed() -> None:
    # Given a valid event padded with 200 KB (every state of the execution would carry it)
    event = {**EVENT, "padding": "x" * 200_000}
    with pytest.raises(
        ExecutionInputTooLargeError, match=r"execution input is \d+ bytes, more than the limit of 16384"
    ):
        claim(
            ClaimRequest(event=event, execution_arn="arn:exec:x", started_at=STARTED),
            ledger=FakeLedger(),
            executions=FakeExecutions(),
        )
