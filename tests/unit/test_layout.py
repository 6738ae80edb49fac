import pytest
from conveyor.domain.errors import ArtifactLayoutError
from conveyor.domain.layout import ArtifactKey, artifact_key, deployment_id, pipeline_key, release_key


@pytest.mark.parametrize(
    ("key", "app", "version"),
    [
        ("artifacts/hello/1.0.0.zip", "hello", "1.0.0"),
        ("artifacts/billing-api/2024.05.14+build.7.zip", "billing-api", "2024.05.14+build.7"),
        ("artifacts/a/v1_rc-2.zip", "a", "v1_rc-2"),
    ],
)
def test_parse_accepts_artifact_keys(key: str, app: str, version: str) -> None:
    # When a key in the layout is parsed
    parsed = ArtifactKey.parse(key)
    # Then app and version come from the path, and the key round-trips
    assert (parsed.app, parsed.version) == (app, version)
    assert parsed.key == key


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("pipelines/hello.yaml", "is not of the form artifacts/<app>/<version>.zip"),
        ("artifacts/hello.zip", "is not of the form"),
        ("artifacts/hello/builds/1.0.0.zip", "is not of the form"),
        ("artifacts/hello/1.0.0.tar.gz", "is not of the form"),
        ("artifacts/Hello/1.0.0.zip", "app 'Hello' must match"),
        ("artifacts/9lives/1.0.0.zip", "app '9lives' must match"),
        ("artifacts/hello/.hidden.zip", "version '.hidden' must match"),
        ("artifacts/hello/1 0.zip", "version '1 0' must match"),
    ],
)
def test_parse_rejects_keys_outside_the_layout_naming_the_problem(key: str, problem: str) -> None:
    # When a key outside the layout is parsed Then the error names the key and what is wrong with it
    with pytest.raises(ArtifactLayoutError) as raised:
        ArtifactKey.parse(key)
    assert problem in str(raised.value)
    assert repr(key) in str(raised.value)


def test_layout_keys() -> None:
    assert artifact_key("hello", "1.0.0") == "artifacts/hello/1.0.0.zip"
    assert pipeline_key("hello") == "pipelines/hello.yaml"
    sha = "ab" * 32
    assert release_key("hello", sha) == f"releases/hello/{sha}/package.zip"


def test_deployment_id_is_deterministic() -> None:
    # Given the same object delivered twice When the id is derived Then it is the same
    first = deployment_id("bucket", "artifacts/hello/1.0.0.zip", "v1", '"etag"')
    again = deployment_id("bucket", "artifacts/hello/1.0.0.zip", "v1", '"etag"')
    assert first == again
    assert first.startswith("d-")
    assert len(first) == 22


def test_deployment_id_differs_by_version_id() -> None:
    # Given two pushes to the same key (a versioned bucket) Then they are two deployments
    assert deployment_id("bucket", "artifacts/hello/1.0.0.zip", "v1", "e") != deployment_id(
        "bucket", "artifacts/hello/1.0.0.zip", "v2", "e"
    )


def test_deployment_id_ignores_etag_when_a_version_id_exists() -> None:
    assert deployment_id("b", "artifacts/a/1.zip", "v1", "etag-1") == deployment_id("b", "artifacts/a/1.zip", "v1", "x")


def test_deployment_id_differs_by_bucket_and_key() -> None:
    base = deployment_id("b", "artifacts/a/1.zip", "v1", None)
    assert base != deployment_id("other", "artifacts/a/1.zip", "v1", None)
    assert base != deployment_id("b", "artifacts/a/2.zip", "v1", None)


def test_deployment_id_falls_back_to_etag_without_version_id() -> None:
    # Given an unversioned bucket Then the etag (quoted or not) identifies the content
    quoted = deployment_id("b", "artifacts/a/1.zip", None, '"abc"')
    assert quoted == deployment_id("b", "artifacts/a/1.zip", None, "abc")
    assert quoted != deployment_id("b", "artifacts/a/1.zip", None, "def")
