"""``conveyor ship`` end to end, as a CI job runs it: the real CLI process against the local cloud, judged by its
exit code, its output and what the cloud holds afterwards.

The sample app's pipeline is registered with ``allow_downgrade`` so these pushes (low versions) go live whatever
an earlier module left live, and leave later modules free to push any version above them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conveyor_cli import operations
from conveyor_cli.sample import EXAMPLES, alias_versions
from tests.e2e.conftest import Stage

CONVEYOR = Path(sys.executable).parent / "conveyor"


@pytest.fixture(autouse=True)
def downgrades_allowed(pipeline: Callable[..., None]) -> None:
    pipeline(allow_downgrade=True)


def conveyor(stage: Stage, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a CI step runs it (its own process, its exit code untouched)."""
    return subprocess.run(
        [str(CONVEYOR), "--local", *args],
        env=dict(os.environ) | {"CONVEYOR_STATE_DIR": str(stage.state_dir)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def ship(stage: Stage, source: Path, version: str, summary: Path) -> subprocess.CompletedProcess[str]:
    bundle = stage.workdir / f"ship-{version}.zip"
    return conveyor(
        stage, "ship", str(source), "--app", "hello", "--version", version, "--out", str(bundle),
        "--summary", str(summary), "--wait-timeout", "180",
    )  # fmt: skip


def deployment_of(result: subprocess.CompletedProcess[str]) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("deployment ")]
    return line.removeprefix("deployment ")


def test_ship_of_a_good_build_exits_zero_once_it_is_live(stage: Stage, tmp_path: Path) -> None:
    # Given a good build and an empty job summary
    summary = tmp_path / "summary.md"

    # When CI ships it
    result = ship(stage, EXAMPLES / "hello", "0.0.50", summary)

    # Then it exits 0, after printing the deployment id and one line saying it went live
    assert result.returncode == 0, result.stderr
    deployment = deployment_of(result)
    assert result.stdout.splitlines()[-1].startswith("hello 0.0.50 SUCCEEDED in ")
    assert result.stdout.splitlines()[-1].endswith("(exit 0)")
    # And the ledger and the aliases agree: the release is live in both environments
    record = operations.ledger(stage.cloud).get(deployment)
    assert record is not None
    assert record.status == "SUCCEEDED"
    aliases = alias_versions(stage.cloud, stage.targets.functions)
    assert {env: aliases[env]["version"] for env in aliases} == {
        env: entry.version_after for env, entry in record.environments.items()
    }
    # And the job summary says so
    assert summary.read_text().startswith("### ✅ hello 0.0.50: SUCCEEDED")


def test_ship_of_a_broken_build_exits_with_the_rollback_code(stage: Stage, tmp_path: Path) -> None:
    # Given a broken build (its health probe fails) and what the aliases serve now
    summary = tmp_path / "summary.md"
    before = alias_versions(stage.cloud, stage.targets.functions)

    # When CI ships it
    result = ship(stage, EXAMPLES / "hello-broken", "0.0.51", summary)

    # Then it exits 4 (ROLLED_BACK), its last line says why, and the aliases serve what they served before
    assert result.returncode == 4, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("hello 0.0.51 ROLLED_BACK in ")
    assert last.endswith("(exit 4)")
    assert "staging" in last
    assert alias_versions(stage.cloud, stage.targets.functions) == before
    # And `conveyor summary`, as a later CI step runs it, writes the same outcome and exits 0
    again = tmp_path / "again.md"
    written = conveyor(stage, "summary", deployment_of(result), "--out", str(again))
    assert written.returncode == 0, written.stderr
    assert summary.read_text().startswith("### ❌ hello 0.0.51: ROLLED_BACK")
    assert again.read_text().startswith("### ❌ hello 0.0.51: ROLLED_BACK")
    assert "| staging | `hello-staging:live` |" in again.read_text()


def test_ship_of_a_missing_build_directory_fails_before_pushing(stage: Stage, tmp_path: Path) -> None:
    # Given a build directory the build step never created
    missing = tmp_path / "build"

    # When CI ships it
    result = ship(stage, missing, "0.0.52", tmp_path / "summary.md")

    # Then it exits 1 with one line naming the directory, and nothing reached the bucket
    assert result.returncode == 1
    assert result.stderr == f"conveyor: cannot package {missing}: no such directory\n"
    assert result.stdout == ""
    with pytest.raises(ClientError, match=r"404|Not Found"):
        stage.cloud.client("s3").head_object(Bucket=stage.cloud.outputs.bucket, Key="artifacts/hello/0.0.52.zip")
    assert not (stage.workdir / "ship-0.0.52.zip").exists()
