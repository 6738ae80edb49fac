"""Input bounds: what a pipeline spec or a manifest may hold before Conveyor parses it, carries it or deploys it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conveyor.domain import limits
from conveyor.domain.errors import ManifestInvalidError, PipelineInvalidError
from conveyor.domain.limits import MAX_MANIFEST_BYTES, MAX_PIPELINE_SPEC_BYTES
from conveyor.domain.manifest import MAX_ENVIRONMENT_BYTES, RESERVED_ENVIRONMENT_VARIABLES, FunctionConfig, Manifest
from conveyor.domain.pipeline import MAX_ALARMS, PipelineSpec
from pydantic import ValidationError

from conveyor_cli import main as cli
from conveyor_cli.context import Outputs
from tests.fakes import DEFAULT_SPEC, make_manifest, make_package, pipeline_yaml

SOURCE = "s3://conveyor-artifacts/pipelines/hello.yaml"

BILLION_LAUGHS = """\
app: hello
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
environments: [*i]
"""

MERGED = """\
app: hello
environments:
  - &staging
    name: staging
    target: {function_name: hello-staging}
    health: {alarms: [hello-errors]}
  - <<: *staging
    name: production
    target: {function_name: hello-prod}
"""


# --- pipeline specs --------------------------------------------------------------------------
def test_a_billion_laughs_spec_is_refused_naming_the_file() -> None:
    # Given a 600-byte spec whose aliases expand to a billion strings
    assert len(BILLION_LAUGHS.encode()) < 600
    # When it is loaded, it is refused before anything is expanded, naming the file and the anchor
    with pytest.raises(PipelineInvalidError, match=rf"^{SOURCE}: .*anchors and aliases are not allowed .*&a at line 2"):
        PipelineSpec.from_yaml(BILLION_LAUGHS, SOURCE)


def test_an_alias_reused_by_a_merge_key_is_refused_too() -> None:
    # Even a well-meant anchor (a YAML merge key) is refused: a spec has no use for either
    assert yaml.safe_load(MERGED)["environments"][1]["health"] == {"alarms": ["hello-errors"]}
    with pytest.raises(PipelineInvalidError, match="anchors and aliases are not allowed"):
        PipelineSpec.from_yaml(MERGED, SOURCE)


def test_a_key_written_twice_is_refused_naming_both_lines() -> None:
    # Given a spec whose second `health:` would silently replace the first (and its post-traffic hook)
    spec = pipeline_yaml().replace(
        "  health:", "  health:\n    post_traffic: {function_name: hello-hook}\n  health:", 1
    )
    assert "post_traffic" in spec
    # Then it is refused, naming the file, the key and both lines, rather than loaded without the hook
    with pytest.raises(PipelineInvalidError, match=rf"^{SOURCE}: .*duplicate key 'health' at lines \d+ and \d+"):
        PipelineSpec.from_yaml(spec, SOURCE)
    assert limits.load_yaml("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}  # one key per mapping, nested or not


def test_an_oversize_spec_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a spec one byte over the limit, and a parser that must not be reached
    raw = pipeline_yaml() + "#" * MAX_PIPELINE_SPEC_BYTES

    def parse(_: Any) -> Any:
        raise AssertionError("an oversize spec was parsed")

    monkeypatch.setattr("conveyor.domain.pipeline.load_yaml", parse)
    # Then it is refused naming the file and both sizes
    with pytest.raises(
        PipelineInvalidError, match=rf"^{SOURCE}: {len(raw)} bytes, more than .* {MAX_PIPELINE_SPEC_BYTES}"
    ):
        PipelineSpec.from_yaml(raw, SOURCE)


@pytest.mark.parametrize(
    ("health", "field"),
    [
        ({"synthetic": {"payload": {"p": "x" * 2048}, "expect": {}}}, "environments.0.health.synthetic.0.payload"),
        ({"synthetic": {"expect": {"e": "x" * 1024}}}, "environments.0.health.synthetic.0.expect"),
        ({"alarms": [f"a{i}" for i in range(MAX_ALARMS + 1)]}, "environments.0.health.alarms"),
        ({"alarms": ['quote"d']}, "environments.0.health.alarms.0"),
    ],
)
def test_what_a_check_carries_through_the_state_is_bounded(health: dict[str, Any], field: str) -> None:
    document = {**DEFAULT_SPEC, "environments": [{**DEFAULT_SPEC["environments"][0], "health": health}]}
    with pytest.raises(PipelineInvalidError, match=rf"^{SOURCE}: {field}: "):
        PipelineSpec.from_yaml(yaml.safe_dump(document), SOURCE)


class RecordingS3:
    def __init__(self) -> None:
        self.puts: list[str] = []

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self.puts.append(kwargs["Key"])
        return {}


class FakeCloud:
    outputs = Outputs(bucket="b", state_machine_arn="arn:sm", ledger_table="t", topic_arn="arn:topic")

    def __init__(self) -> None:
        self.s3 = RecordingS3()

    def client(self, service: str) -> Any:
        assert service == "s3"
        return self.s3


@pytest.mark.parametrize("raw", [BILLION_LAUGHS, pipeline_yaml() + "#" * MAX_PIPELINE_SPEC_BYTES])
def test_pipeline_apply_refuses_aliases_and_oversize_specs_and_registers_nothing(
    raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given `conveyor pipeline apply` on a hostile spec file
    cloud = FakeCloud()
    monkeypatch.setattr(cli, "_cloud", lambda args: cloud)
    spec_file = tmp_path / "hello.yaml"
    spec_file.write_text(raw)

    # Then it exits 1 with a reason naming the file, and nothing is uploaded
    assert cli.main(["pipeline", "apply", str(spec_file)]) == 1
    assert f"conveyor: {spec_file}: " in capsys.readouterr().err
    assert cloud.s3.puts == []


# --- manifests -------------------------------------------------------------------------------
def _manifest(**overrides: Any) -> dict[str, Any]:
    return make_manifest(make_package(), **overrides)


def test_an_oversize_manifest_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.dumps(_manifest()).encode() + b" " * MAX_MANIFEST_BYTES
    monkeypatch.setattr("conveyor.domain.manifest.json.loads", lambda _: pytest.fail("an oversize manifest was parsed"))
    with pytest.raises(ManifestInvalidError, match=rf"^manifest.json: {len(raw)} bytes, more than the limit"):
        Manifest.from_json(raw)


@pytest.mark.parametrize("name", sorted(RESERVED_ENVIRONMENT_VARIABLES))
def test_every_reserved_lambda_variable_is_refused_naming_it(name: str) -> None:
    # Lambda refuses these only in UpdateFunctionConfiguration, after the code of $LATEST has changed
    raw = json.dumps(_manifest(function_config={"environment": {name: "x", "OK": "y"}})).encode()
    with pytest.raises(
        ManifestInvalidError,
        match=rf"^manifest.json: function_config.environment: .*reserved Lambda variables: {name}$",
    ):
        Manifest.from_json(raw)


def test_the_reserved_list_is_the_whole_of_lambdas() -> None:
    assert len(RESERVED_ENVIRONMENT_VARIABLES) == 18
    assert {"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "AWS_ACCESS_KEY"} <= (
        RESERVED_ENVIRONMENT_VARIABLES
    )


def test_variables_over_lambdas_4_kb_are_refused_naming_the_size() -> None:
    # Given variables measured as Lambda measures them (the map as compact JSON): 4,097 bytes
    variables = {"A": "x" * (MAX_ENVIRONMENT_BYTES - len('{"A":""}') + 1)}
    assert len(json.dumps(variables, separators=(",", ":"))) == MAX_ENVIRONMENT_BYTES + 1
    with pytest.raises(ValidationError, match=rf"are {MAX_ENVIRONMENT_BYTES + 1} bytes \(as JSON\), more than"):
        FunctionConfig.model_validate({"environment": variables})
    # And one byte less is Lambda's limit exactly: accepted
    variables["A"] = variables["A"][:-1]
    assert FunctionConfig.model_validate({"environment": variables}).environment == variables


def test_24_kb_of_variables_are_refused_at_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `conveyor package` refuses them before any bundle is written
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return {}\n")
    env = [f"V{i}={'x' * 1000}" for i in range(24)]
    out = tmp_path / "bundle.zip"
    args = ["package", str(tmp_path), "--app", "hello", "--version", "1.0.0", "--out", str(out)]
    assert (
        cli.main([*args, *(arg for pair in env for arg in ("--env", pair))]) == 2
    )  # a flag value refused: a usage error naming --env
    assert "more than Lambda's limit of 4096" in capsys.readouterr().err
    assert not out.exists()


def test_json_bytes_counts_utf8_as_step_functions_does() -> None:
    assert limits.json_bytes({"k": "é"}) == len('{"k": "é"}'.encode())
    assert limits.clip("é" * 10, 5) == "é..."
