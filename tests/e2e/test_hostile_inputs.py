"""Hostile and broken pushes, end to end: each is refused by name, recorded, notified, and deploys nothing.

Every case is an object uploaded to the artifact bucket, as anyone with write access could, and runs
the real chain on the local cloud: S3 -> EventBridge -> Step Functions -> ValidateArtifact -> NotifyFailure.
The cases are independent (own key, own app or version), so they are all uploaded at once and run side
by side; each parametrized test then checks its own deployment.

Why "a target not named in the app's pipeline" has no case of its own: a bundle cannot name a target at
all. The manifest schema has no target field and forbids extra fields, the app comes from the object key
(and must equal the manifest's), and the targets come only from the admin-registered
``pipelines/<app>.yaml`` of that app, each of which must carry the ``conveyor:managed`` tag (checked here,
and enforced again by the IAM conditions on every mutating Lambda action). The cases below show each link:
a manifest smuggling ``target`` is a schema violation, a manifest claiming another app is refused, and a
pipeline naming a missing or unmanaged function is refused before anything is touched.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError
from conveyor.domain.layout import RELEASE_PREFIX
from conveyor.domain.limits import MAX_MANIFEST_BYTES

from tests.fakes import make_bundle, make_manifest, make_package, make_zip

from .conftest import Deployed, Stage

pytestmark = pytest.mark.e2e

#: The bundle limit ValidateArtifact runs with in this module, so "oversize" needs 4 MiB, not 100.
TEST_MAX_BUNDLE_BYTES = 4 * 1024 * 1024
UNMANAGED_FUNCTION = "payments-production"  # another team's function: exists, not tagged conveyor:managed
MISSING_FUNCTION = "ghost-staging"


@dataclass(frozen=True)
class Case:
    id: str
    key: str
    body: Callable[[], bytes]
    error: str
    reason: str
    #: the (app, version) whose release must not have been written; None when the key does not parse
    release: tuple[str, str] | None = None


def _bundle(app: str, version: str) -> Callable[[], bytes]:
    return lambda: make_bundle(app, version)


def _with_manifest(version: str, **changes: object) -> Callable[[], bytes]:
    def build() -> bytes:
        package = make_package(version)
        manifest = make_manifest(package, "hostile", version)
        manifest.update(changes)
        return make_bundle("hostile", version, package=package, manifest=manifest)

    return build


def _with_package(version: str, package: Callable[[], bytes]) -> Callable[[], bytes]:
    """A bundle whose package.zip is ``package()``, declared correctly: only the package is hostile."""

    def build() -> bytes:
        data = package()
        manifest = json.dumps(make_manifest(data, "hostile", version)).encode()
        # Stored, as `conveyor package` stores it: the package's own entries are what is judged.
        return _zip_of(
            (_entry("manifest.json"), manifest), (_entry("package.zip", compression=zipfile.ZIP_STORED), data)
        )

    return build


def _zip_of(*infos: tuple[zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": wanted here
        for info, data in infos:
            archive.writestr(info, data)
    return buffer.getvalue()


def _entry(name: str, *, mode: int = 0o644, compression: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.compress_type = compression
    return info


def _patch_central_directory(data: bytes, *, flags: int | None = None, sizes: tuple[int, int] | None = None) -> bytes:
    """Rewrite every central directory record: what a hand-crafted archive can claim."""
    patched = bytearray(data)
    at = patched.find(b"PK\x01\x02")
    while at != -1:
        if flags is not None:
            struct.pack_into("<H", patched, at + 8, flags)
        if sizes is not None:
            struct.pack_into("<II", patched, at + 20, *sizes)
        at = patched.find(b"PK\x01\x02", at + 4)
    return bytes(patched)


def _symlink_package() -> bytes:
    return _zip_of((_entry("app.py", mode=stat.S_IFLNK | 0o777), b"/opt/other-team/secrets.py"))


def _too_many_entries_package() -> bytes:
    return make_zip({f"m/{i}": b"" for i in range(20_001)}, zipfile.ZIP_STORED)


def _lying_sizes_package() -> bytes:
    # 140 entries claiming 2 MB each from 20 kB (ratio 100, under the ratio limit): 280 MB in total.
    entries = make_zip({f"lib/{i}.so": b"x" for i in range(140)})
    return _patch_central_directory(entries, sizes=(20_000, 2_000_000))


def _encrypted_package() -> bytes:
    return _patch_central_directory(make_package("907.0.0"), flags=0x1)


def _bundle_of(entries: dict[str, bytes], version: str) -> bytes:
    return make_zip({**entries, "package.zip": make_package(version)})


def _manifest_json(version: str) -> bytes:
    return json.dumps(make_manifest(make_package(version), "hostile", version)).encode()


def _duplicate_manifest() -> bytes:
    version = "911.0.0"
    package = make_package(version)
    return _zip_of(
        (_entry("manifest.json"), _manifest_json(version)),
        (_entry("package.zip", compression=zipfile.ZIP_STORED), package),
        (_entry("manifest.json"), _manifest_json("999.0.0")),
    )


def _bzip2_manifest() -> bytes:
    version = "912.0.0"
    return _zip_of(
        (_entry("manifest.json", compression=zipfile.ZIP_BZIP2), _manifest_json(version)),
        (_entry("package.zip", compression=zipfile.ZIP_STORED), make_package(version)),
    )


def _truncated() -> bytes:
    data = make_bundle("hostile", "902.0.0")
    return data[: len(data) // 2]


def _sha_mismatch() -> bytes:
    package = make_package("920.0.0")
    manifest = make_manifest(make_package("another build"), "hostile", "920.0.0")
    manifest["package"]["size"] = len(package)
    return make_bundle("hostile", "920.0.0", package=package, manifest=manifest)


def _pipeline_of(app: str, function: str) -> str:
    return json.dumps(
        {
            "schema_version": 1,
            "app": app,
            "environments": [
                {
                    "name": "staging",
                    "target": {"kind": "lambda", "function_name": function, "alias": "live"},
                    "health": {"synthetic": {"payload": {"probe": "health"}, "expect": {"status": "ok"}}},
                }
            ],
        }
    )


#: Specs an admin registered (written straight to the bucket: `conveyor pipeline apply` would refuse the bad ones).
PIPELINES = {
    "ghost": _pipeline_of("ghost", MISSING_FUNCTION),
    "rogue": _pipeline_of("rogue", UNMANAGED_FUNCTION),
    "imposter": _pipeline_of("hello", "hello-staging"),
    "brokenyaml": "environments: [unclosed\n  - name: staging",
    "badspec": _pipeline_of("badspec", "hello-staging").replace('"alias": "live"', '"alias": "live", "weight": 5'),
}

H = "hostile"  # no pipeline registered: every bundle-level case must fail before it is looked up
CASES = [
    # --- the object itself
    Case("not-a-zip", "artifacts/hostile/901.0.0.zip", lambda: b"#!/bin/sh\necho not a zip\n", "BundleInvalidError",
         "not a zip archive", (H, "901.0.0")),
    Case("truncated-zip", "artifacts/hostile/902.0.0.zip", _truncated, "BundleInvalidError",
         "truncated or corrupt zip archive", (H, "902.0.0")),
    Case("empty-object", "artifacts/hostile/903.0.0.zip", lambda: b"", "BundleInvalidError", "the object is empty",
         (H, "903.0.0")),
    Case("oversize-bundle", "artifacts/hostile/904.0.0.zip", lambda: os.urandom(TEST_MAX_BUNDLE_BYTES + 1),
         "BundleInvalidError", f"exceeds the bundle limit of {TEST_MAX_BUNDLE_BYTES}", (H, "904.0.0")),
    # --- zip bombs, in the bundle and inside package.zip
    Case("bomb-ratio-bundle", "artifacts/hostile/905.0.0.zip",
         lambda: _bundle_of({"manifest.json": _manifest_json("905.0.0"), "zeros.bin": b"\0" * 5_000_000}, "905.0.0"),
         "BundleInvalidError", "'zeros.bin' compression ratio exceeds 200", (H, "905.0.0")),
    Case("bomb-ratio-package", "artifacts/hostile/906.0.0.zip",
         _with_package("906.0.0", lambda: make_zip({"app.py": b"x = 1\n", "zeros.bin": b"\0" * 5_000_000})),
         "BundleInvalidError", "!package.zip: entry 'zeros.bin' compression ratio exceeds 200", (H, "906.0.0")),
    Case("bomb-entries-bundle", "artifacts/hostile/908.0.0.zip",
         lambda: _bundle_of({"manifest.json": _manifest_json("908.0.0"), **{f"f{i}": b"x" for i in range(9)}},
                            "908.0.0"),
         "BundleInvalidError", "11 entries exceeds the limit of 8", (H, "908.0.0")),
    Case("bomb-entries-package", "artifacts/hostile/909.0.0.zip", _with_package("909.0.0", _too_many_entries_package),
         "BundleInvalidError", "!package.zip: 20001 entries exceeds the limit of 20000", (H, "909.0.0")),
    Case("bomb-total-size-package", "artifacts/hostile/910.0.0.zip", _with_package("910.0.0", _lying_sizes_package),
         "BundleInvalidError", "!package.zip: uncompressed size exceeds the limit of 262144000", (H, "910.0.0")),
    Case("encrypted-package-entry", "artifacts/hostile/907.0.0.zip", _with_package("907.0.0", _encrypted_package),
         "BundleInvalidError", "!package.zip: entry 'app.py' is encrypted", (H, "907.0.0")),
    Case("unsupported-compression", "artifacts/hostile/912.0.0.zip", _bzip2_manifest, "BundleInvalidError",
         "'manifest.json' uses compression method 12", (H, "912.0.0")),
    Case("duplicate-manifest", "artifacts/hostile/911.0.0.zip", _duplicate_manifest, "BundleInvalidError",
         "'manifest.json' appears more than once", (H, "911.0.0")),
    # --- paths that escape, in the bundle and inside package.zip
    Case("absolute-path-bundle", "artifacts/hostile/913.0.0.zip",
         lambda: make_bundle("hostile", "913.0.0", extra={"/etc/cron.d/conveyor": b"* * * * * root sh"}),
         "BundleInvalidError", "entry '/etc/cron.d/conveyor' has an absolute path", (H, "913.0.0")),
    Case("absolute-path-package", "artifacts/hostile/914.0.0.zip",
         _with_package("914.0.0", lambda: make_zip({"app.py": b"", "/opt/python/sitecustomize.py": b"evil"})),
         "BundleInvalidError", "!package.zip: entry '/opt/python/sitecustomize.py' has an absolute path",
         (H, "914.0.0")),
    Case("dot-dot-bundle", "artifacts/hostile/915.0.0.zip",
         lambda: make_bundle("hostile", "915.0.0", extra={"../../pipelines/hello.yaml": b"app: hello"}),
         "BundleInvalidError", "entry '../../pipelines/hello.yaml' escapes the archive with '..'", (H, "915.0.0")),
    Case("dot-dot-package", "artifacts/hostile/916.0.0.zip",
         _with_package("916.0.0", lambda: make_zip({"app.py": b"", "lib/../../../var/task/app.py": b"evil"})),
         "BundleInvalidError", "escapes the archive with '..'", (H, "916.0.0")),
    Case("dot-dot-long-name", "artifacts/hostile/917.0.0.zip",
         _with_package("917.0.0", lambda: make_zip({"a" * 20_000 + "/../x": b""})),
         "BundleInvalidError", "(20005 characters) escapes the archive with '..'", (H, "917.0.0")),
    Case("symlink-bundle", "artifacts/hostile/918.0.0.zip",
         lambda: _zip_of((_entry("manifest.json"), _manifest_json("918.0.0")),
                         (_entry("package.zip", mode=stat.S_IFLNK | 0o777), b"/proc/self/environ")),
         "BundleInvalidError", "entry 'package.zip' is a symlink", (H, "918.0.0")),
    Case("symlink-package", "artifacts/hostile/919.0.0.zip", _with_package("919.0.0", _symlink_package),
         "BundleInvalidError", "!package.zip: entry 'app.py' is a symlink", (H, "919.0.0")),
    # --- the manifest
    Case("manifest-missing", "artifacts/hostile/921.0.0.zip", lambda: make_zip({"package.zip": make_package()}),
         "ManifestInvalidError", "manifest.json is missing", (H, "921.0.0")),
    Case("manifest-not-json", "artifacts/hostile/922.0.0.zip",
         lambda: make_zip({"manifest.json": b"app: hostile\nversion: 922.0.0\n", "package.zip": make_package()}),
         "ManifestInvalidError", "manifest.json: not valid JSON", (H, "922.0.0")),
    Case("manifest-nested-too-deep", "artifacts/hostile/923.0.0.zip",
         lambda: make_zip({"manifest.json": b"[" * 8_000, "package.zip": make_package()}, zipfile.ZIP_STORED),
         "ManifestInvalidError", "manifest.json: not valid JSON (RecursionError)", (H, "923.0.0")),
    Case("manifest-schema-violation", "artifacts/hostile/924.0.0.zip",
         _with_manifest("924.0.0", schema_version=2, package={"sha256": "not-hex", "size": 0}),
         "ManifestInvalidError", "package.sha256: String should match pattern", (H, "924.0.0")),
    Case("manifest-names-a-target", "artifacts/hostile/925.0.0.zip",
         _with_manifest("925.0.0", target={"function_name": UNMANAGED_FUNCTION, "alias": "live"}),
         "ManifestInvalidError", "target: Extra inputs are not permitted", (H, "925.0.0")),
    Case("manifest-floods-extra-fields", "artifacts/hostile/926.0.0.zip",
         _with_manifest("926.0.0", **{f"x{i}": 0 for i in range(600)}),
         "ManifestInvalidError", "and 590 more problems", (H, "926.0.0")),
    Case("manifest-oversize", "artifacts/hostile/932.0.0.zip", _with_manifest("932.0.0", padding="x" * 9000),
         "ManifestInvalidError", f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes", (H, "932.0.0")),
    Case("manifest-env-over-lambda-limit", "artifacts/hostile/933.0.0.zip",
         _with_manifest("933.0.0", function_config={"environment": {"BIG": "x" * 2100, "BIGGER": "y" * 2100}}),
         "ManifestInvalidError", "more than Lambda's limit of 4096", (H, "933.0.0")),
    Case("manifest-sets-runtime-api", "artifacts/hostile/934.0.0.zip",
         _with_manifest("934.0.0", function_config={"environment": {"AWS_LAMBDA_RUNTIME_API": "203.0.113.9:80"}}),
         "ManifestInvalidError", "sets reserved Lambda variables: AWS_LAMBDA_RUNTIME_API", (H, "934.0.0")),
    Case("manifest-sets-reserved-env", "artifacts/hostile/927.0.0.zip",
         _with_manifest("927.0.0", function_config={"environment": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}}),
         "ManifestInvalidError", "sets reserved Lambda variables: AWS_ACCESS_KEY_ID", (H, "927.0.0")),
    Case("manifest-app-mismatch", "artifacts/hostile/928.0.0.zip", _bundle("payments", "928.0.0"),
         "ManifestInvalidError", "manifest.json says app='payments' version='928.0.0' but the key says app='hostile'",
         (H, "928.0.0")),
    Case("manifest-version-mismatch", "artifacts/hostile/929.0.0.zip", _bundle("hostile", "929.0.1"),
         "ManifestInvalidError", "version='929.0.1' but the key says app='hostile' version='929.0.0'", (H, "929.0.0")),
    Case("package-sha256-mismatch", "artifacts/hostile/920.0.0.zip", _sha_mismatch, "DigestMismatchError",
         "package.zip sha256 is", (H, "920.0.0")),
    # --- keys outside the layout that still match the artifacts/ prefix rule
    Case("key-nested", "artifacts/hostile/nested/930.0.0.zip", _bundle("hostile", "930.0.0"), "ArtifactLayoutError",
         "'artifacts/hostile/nested/930.0.0.zip' is not of the form artifacts/<app>/<version>.zip"),
    Case("key-bad-app", "artifacts/Bad_App/1.zip", _bundle("hostile", "1"), "ArtifactLayoutError",
         "app 'Bad_App' must match"),
    Case("key-not-zip", "artifacts/hostile/931.0.0.tar.gz", _bundle("hostile", "931.0.0"), "ArtifactLayoutError",
         "is not of the form artifacts/<app>/<version>.zip"),
    # --- the app's pipeline and its targets
    Case("unknown-app", "artifacts/nopipe/1.0.0.zip", _bundle("nopipe", "1.0.0"), "PipelineNotFoundError",
         "no pipeline is registered for app 'nopipe'", ("nopipe", "1.0.0")),
    Case("pipeline-not-yaml", "artifacts/brokenyaml/1.0.0.zip", _bundle("brokenyaml", "1.0.0"),
         "PipelineInvalidError", "pipelines/brokenyaml.yaml: not valid YAML", ("brokenyaml", "1.0.0")),
    Case("pipeline-schema-violation", "artifacts/badspec/1.0.0.zip", _bundle("badspec", "1.0.0"),
         "PipelineInvalidError", "environments.0.target.lambda.weight: Extra inputs are not permitted",
         ("badspec", "1.0.0")),
    Case("pipeline-of-another-app", "artifacts/imposter/1.0.0.zip", _bundle("imposter", "1.0.0"),
         "PipelineInvalidError", "app is 'hello', expected 'imposter'", ("imposter", "1.0.0")),
    Case("target-missing", "artifacts/ghost/1.0.0.zip", _bundle("ghost", "1.0.0"), "TargetNotFoundError",
         f"target function '{MISSING_FUNCTION}' does not exist", ("ghost", "1.0.0")),
    Case("target-not-managed", "artifacts/rogue/1.0.0.zip", _bundle("rogue", "1.0.0"), "TargetNotManagedError",
         f"target function '{UNMANAGED_FUNCTION}' is not tagged conveyor:managed=true", ("rogue", "1.0.0")),
]  # fmt: skip


@dataclass
class Outcomes:
    deployments: dict[str, Deployed]
    ids: dict[str, str]
    versions_before: dict[str, list[str]]
    versions_after: dict[str, list[str]]
    aliases_before: dict[str, dict]
    aliases_after: dict[str, dict]
    locks: list[dict]
    releases: dict[str, bool]


def _intake_function(stage: Stage) -> str:
    """The stage function that runs ValidateArtifact (template.yaml's IntakeFunction)."""
    names = [
        f["FunctionName"]
        for page in stage.cloud.client("lambda").get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if "IntakeFunction" in f["FunctionName"]
    ]
    assert len(names) == 1, names
    return names[0]


@pytest.fixture(scope="module")
def bundle_limit(stage: Stage) -> Iterator[None]:
    """ValidateArtifact (in IntakeFunction) with a 4 MiB bundle limit (MAX_BUNDLE_BYTES), restored afterwards."""
    lam = stage.cloud.client("lambda")
    function = _intake_function(stage)
    variables = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=function,
        Environment={"Variables": {**variables, "MAX_BUNDLE_BYTES": str(TEST_MAX_BUNDLE_BYTES)}},
    )
    try:
        yield
    finally:
        lam.update_function_configuration(FunctionName=function, Environment={"Variables": variables})


def _unmanaged_function(stage: Stage) -> None:
    """Another team's function: it exists, but does not carry Conveyor's managed tag."""
    lam, iam = stage.cloud.client("lambda"), stage.cloud.client("iam")
    with pytest.raises(ClientError):
        lam.get_function(FunctionName=UNMANAGED_FUNCTION)
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:*"}]}
    role = iam.create_role(RoleName="payments-team", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    lam.create_function(
        FunctionName=UNMANAGED_FUNCTION,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": make_package("payments")},
        Tags={"team": "payments"},
    )
    lam.create_alias(
        FunctionName=UNMANAGED_FUNCTION,
        Name="live",
        FunctionVersion=lam.publish_version(FunctionName=UNMANAGED_FUNCTION)["Version"],
    )


@pytest.fixture(scope="module")
def outcomes(stage: Stage, bundle_limit: None) -> Outcomes:
    # Given another team's function and the pipelines an admin registered
    _unmanaged_function(stage)
    s3 = stage.cloud.client("s3")
    for app, spec in PIPELINES.items():
        s3.put_object(Bucket=stage.cloud.outputs.bucket, Key=f"pipelines/{app}.yaml", Body=spec.encode())
    functions = [*stage.targets.functions.values(), UNMANAGED_FUNCTION]
    lam = stage.cloud.client("lambda")
    versions_before = {f: stage.versions(f) for f in functions}
    aliases_before = {f: lam.get_alias(FunctionName=f, Name="live") for f in functions}

    # When every hostile object is pushed at once
    bodies = {case.id: case.body() for case in CASES}
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = dict(zip(bodies, pool.map(lambda c: stage.upload(c.key, bodies[c.id]), CASES), strict=True))
    deployments = stage.follow_many(list(ids.values()))

    def released(case: Case) -> bool:
        if case.release is None:
            return False
        # Releases are stored by content: nothing may be stored for the app at all (every case is refused).
        listed = s3.list_objects_v2(Bucket=stage.cloud.outputs.bucket, Prefix=f"{RELEASE_PREFIX}{case.release[0]}/")
        return bool(listed.get("KeyCount"))

    return Outcomes(
        deployments=deployments,
        ids=ids,
        versions_before=versions_before,
        versions_after={f: stage.versions(f) for f in functions},
        aliases_before={
            f: {k: a.get(k) for k in ("FunctionVersion", "RoutingConfig")} for f, a in aliases_before.items()
        },
        aliases_after={
            f: {k: a.get(k) for k in ("FunctionVersion", "RoutingConfig")}
            for f, a in ((f, lam.get_alias(FunctionName=f, Name="live")) for f in functions)
        },
        locks=stage.locks_of(set(ids.values())),
        releases={case.id: released(case) for case in CASES},
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_push_is_refused_by_name_with_nothing_deployed(outcomes: Outcomes, case: Case) -> None:
    # Given the hostile object was pushed (by the fixture, beside all the others)
    deployed = outcomes.deployments[outcomes.ids[case.id]]

    # Then the execution failed before any traffic moved
    assert deployed.execution.status == "FAILED"
    assert deployed.execution.error == "DeploymentFailedError"
    # And the ledger says FAILED with the specific error and a reason naming the problem, kept short
    assert deployed.record.status.value == "FAILED"
    assert deployed.record.failure is not None
    assert deployed.record.failure["error"] == case.error
    assert case.reason in deployed.record.failure["reason"]
    assert len(deployed.record.failure["reason"]) < 2_000
    # And exactly one notification names it
    assert len(deployed.notifications) == 1, deployed.notifications
    assert deployed.notifications[0]["subject"].endswith("FAILED")
    assert case.reason in deployed.notifications[0]["message"]
    # And nothing was deployed: no release written, no version published, every alias as it was, no lock held
    assert outcomes.releases[case.id] is False
    assert outcomes.versions_after == outcomes.versions_before
    assert outcomes.aliases_after == outcomes.aliases_before
    assert [lock for lock in outcomes.locks if lock["deployment_id"]["S"] == outcomes.ids[case.id]] == []
