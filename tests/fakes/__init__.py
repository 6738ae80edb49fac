"""In-memory fakes for Conveyor's ports, and builders for real bundles, manifests and pipeline specs."""

from tests.fakes.builders import (
    DEFAULT_SPEC,
    make_bundle,
    make_manifest,
    make_package,
    make_zip,
    pipeline_yaml,
    stage_event,
)
from tests.fakes.ports import (
    FakeAlarms,
    FakeArtifacts,
    FakeBeanstalk,
    FakeExecutions,
    FakeFreezes,
    FakeFunction,
    FakeLedger,
    FakeLocks,
    FakeNotifier,
    FakeProber,
    FakeTargetOwners,
    FakeTargets,
    FakeTaskTokens,
)

__all__ = [
    "DEFAULT_SPEC",
    "FakeAlarms",
    "FakeArtifacts",
    "FakeBeanstalk",
    "FakeExecutions",
    "FakeFreezes",
    "FakeFunction",
    "FakeLedger",
    "FakeLocks",
    "FakeNotifier",
    "FakeProber",
    "FakeTargetOwners",
    "FakeTargets",
    "FakeTaskTokens",
    "make_bundle",
    "make_manifest",
    "make_package",
    "make_zip",
    "pipeline_yaml",
    "stage_event",
]
