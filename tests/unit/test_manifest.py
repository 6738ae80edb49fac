import json
from typing import Any

import pytest
from conveyor.domain.errors import ManifestInvalidError
from conveyor.domain.manifest import Manifest, base64_digest

from tests.fakes import make_manifest, make_package


def _manifest(**overrides: Any) -> dict[str, Any]:
    return make_manifest(make_package(), **overrides)


def _parse(document: Any) -> Manifest:
    return Manifest.from_json(json.dumps(document).encode())


def test_valid_manifest_parses() -> None:
    # Given a manifest as `conveyor package` writes it
    document = _manifest(function_config={"environment": {"GREETING": "hi"}, "memory_mb": 256, "timeout_seconds": 10})
    # When it is parsed
    manifest = _parse(document)
    # Then every field is typed
    assert (manifest.app, manifest.version) == ("hello", "1.0.0")
    assert manifest.package.sha256 == document["package"]["sha256"]
    assert manifest.commit_time is not None
    assert manifest.commit_time.isoformat() == "2024-05-14T09:00:00+00:00"
    assert manifest.function_config is not None
    assert manifest.function_config.memory_mb == 256


def test_minimal_manifest_has_no_commit_time() -> None:
    document = _manifest()
    del document["commit"], document["build"]
    assert _parse(document).commit_time is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["package"].update(sha256="ABC"), "package.sha256"),
        (lambda m: m["package"].update(sha256="0" * 63), "package.sha256"),
        (lambda m: m["package"].update(size=0), "package.size"),
        (lambda m: m["package"].pop("size"), "package.size"),
        (lambda m: m.pop("app"), "app"),
        (lambda m: m.update(app="Hello_World"), "app"),
        (lambda m: m.update(version="../1"), "version"),
        (lambda m: m.update(schema_version=2), "schema_version"),
        (lambda m: m.update(created_at="2024-05-14T09:20:00"), "created_at"),
        (lambda m: m["commit"].update(sha="not-a-sha"), "commit.sha"),
        (lambda m: m["commit"].update(time="yesterday"), "commit.time"),
        (lambda m: m.update(surprise=True), "surprise"),
        (lambda m: m.update(function_config={"memory_mb": 64}), "function_config.memory_mb"),
        (lambda m: m.update(function_config={"timeout_seconds": 901}), "function_config.timeout_seconds"),
    ],
)
def test_schema_violation_names_the_field(change: Any, field: str) -> None:
    # Given a manifest with one schema violation
    document = _manifest()
    change(document)
    # When it is parsed Then the error names manifest.json and the field
    with pytest.raises(ManifestInvalidError) as raised:
        _parse(document)
    assert str(raised.value).startswith("manifest.json: ")
    assert f"{field}: " in str(raised.value)


@pytest.mark.parametrize("name", ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"])
def test_reserved_environment_variables_are_rejected(name: str) -> None:
    document = _manifest(function_config={"environment": {name: "x", "OK": "y"}})
    with pytest.raises(ManifestInvalidError, match=f"function_config.environment: .*reserved Lambda variables: {name}"):
        _parse(document)


def test_invalid_environment_variable_name_is_rejected() -> None:
    with pytest.raises(ManifestInvalidError, match=r"function_config\.environment"):
        _parse(_manifest(function_config={"environment": {"1BAD": "x"}}))


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe\x00"])
def test_bad_json_is_rejected(raw: bytes) -> None:
    with pytest.raises(ManifestInvalidError, match=r"^manifest\.json: not valid JSON"):
        Manifest.from_json(raw)


def test_a_json_array_is_not_a_manifest() -> None:
    with pytest.raises(ManifestInvalidError, match=r"manifest\.json: \(document\)"):
        Manifest.from_json(b"[1, 2]")


def test_base64_digest_matches_what_lambda_reports() -> None:
    # Lambda's CodeSha256 is base64 of the raw digest; manifests carry hex
    assert base64_digest("00" * 31 + "ff") == "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8="
