"""A version is immutable and tied to its content, end to end on the local cloud (issue 8, part 3)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conveyor.domain.manifest import base64_digest
from conveyor.domain.outcome import Outcome

from conveyor_cli import operations
from conveyor_cli.rollback import manual_rollback
from conveyor_cli.sample import EXAMPLES, alias_versions

from .conftest import Stage

pytestmark = pytest.mark.e2e


def changed_source(tmp_path: Path, marker: str) -> Path:
    """The sample app with one more line: other content, same behaviour."""
    source = tmp_path / f"hello-{marker}"
    shutil.copytree(EXAMPLES / "hello", source)
    with (source / "app.py").open("a") as handler:
        handler.write(f"\n# build {marker}\n")
    return source


def test_the_same_version_with_other_code_is_refused_and_the_same_code_again_is_a_duplicate(
    stage: Stage, tmp_path: Path
) -> None:
    # Given 10.0.0 live
    first = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "10.0.0"))["deployment_id"])
    assert first.record.status is Outcome.SUCCEEDED

    # When 10.0.0 is pushed again with other code
    conflict = stage.follow(
        operations.push(stage.cloud, stage.bundle(changed_source(tmp_path, "other"), "10.0.0"))["deployment_id"]
    )

    # Then it is refused naming both sha256 and the first deployment, nothing changed, the on-call told once
    assert conflict.record.status is Outcome.FAILED
    assert conflict.record.failure is not None
    assert conflict.record.failure["error"] == "VersionConflictError"
    reason = conflict.record.failure["reason"]
    assert first.record.deployment_id in reason
    assert first.record.package_sha256 is not None
    assert first.record.package_sha256 in reason
    assert conflict.record.package_sha256 is not None
    assert conflict.record.package_sha256 in reason
    assert conflict.after == conflict.before
    assert len(conflict.notifications) == 1
    assert not any(e.stage == "Deploy" for e in conflict.record.events)

    # When the same code is rebuilt and pushed as 10.0.0 again (another object, another deployment)
    again = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "10.0.0"))["deployment_id"])

    # Then it is a duplicate of the live release: the execution succeeds at once, nothing deployed, nobody paged
    assert again.record.deployment_id != first.record.deployment_id
    assert again.record.status is Outcome.SKIPPED_DUPLICATE
    assert again.record.failure is not None
    assert again.record.failure["duplicate_of"] == first.record.deployment_id
    assert again.execution.status == "SUCCEEDED"
    assert again.after == again.before
    assert again.notifications == []


def test_the_ledger_records_which_release_each_alias_serves_through_a_manual_rollback(stage: Stage) -> None:
    # Given 11.0.0 then 11.1.0 live everywhere
    first = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "11.0.0"))["deployment_id"])
    second = stage.follow(operations.push(stage.cloud, stage.bundle(EXAMPLES / "hello", "11.1.0"))["deployment_id"])
    assert (first.record.status, second.record.status) == (Outcome.SUCCEEDED, Outcome.SUCCEEDED)
    ledger = operations.ledger(stage.cloud)
    for env, function in stage.targets.functions.items():
        served = ledger.served(function, "live")
        assert served is not None
        assert (served.version, served.deployment_id) == ("11.1.0", second.record.deployment_id)
        assert served.lambda_version == second.after[env]["version"]
        assert served.sha256 == second.record.package_sha256

    # When the on-call rolls staging back by hand
    manual_rollback(stage.cloud, "hello", "staging", to=None)

    # Then the ledger says staging serves 11.0.0's release again; production still 11.1.0's
    staging = ledger.served(stage.targets.functions["staging"], "live")
    assert staging is not None
    assert (staging.version, staging.deployment_id) == ("11.0.0", first.record.deployment_id)
    assert staging.recorded_by.startswith("ManualRollback:")
    assert staging.serves(alias_versions(stage.cloud, stage.targets.functions)["staging"]["version"])
    production = ledger.served(stage.targets.functions["production"], "live")
    assert production is not None
    assert production.version == "11.1.0"


def test_two_builds_of_one_version_pushed_at_once_deploy_one_content_and_refuse_the_other(
    stage: Stage, tmp_path: Path
) -> None:
    # Given two different builds of 12.0.0
    # (stage.bundle writes hello-<version>.zip: each build is moved aside before the next)
    bundles = [
        stage.bundle(changed_source(tmp_path, marker), "12.0.0").rename(tmp_path / f"{marker}.zip")
        for marker in ("left", "right")
    ]

    # When both are pushed at once
    with ThreadPoolExecutor(max_workers=2) as pool:
        ids = list(pool.map(lambda bundle: operations.push(stage.cloud, bundle)["deployment_id"], bundles))
    outcomes = stage.follow_many(ids)

    # Then exactly one deployed; the other was refused as a conflicting build of the same version
    records = sorted((d.record for d in outcomes.values()), key=lambda r: r.status.value)
    assert [r.status for r in records] == [Outcome.FAILED, Outcome.SUCCEEDED]
    refused, live = records
    assert refused.failure is not None
    assert refused.failure["error"] == "VersionConflictError"
    assert not any(e.stage == "Deploy" for e in refused.events)
    # And every environment runs the winner's validated code, nothing else
    lam = stage.cloud.client("lambda")
    assert live.package_sha256 is not None
    for function in stage.targets.functions.values():
        alias = lam.get_alias(FunctionName=function, Name="live")
        code = lam.get_function(FunctionName=function, Qualifier=alias["FunctionVersion"])["Configuration"]
        assert code["CodeSha256"] == base64_digest(live.package_sha256)
