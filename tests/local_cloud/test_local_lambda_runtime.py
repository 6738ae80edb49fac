"""A local Lambda worker imports what the python3.11 runtime would let it import, and nothing else."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_cloud_support import FIXTURES, invoke

from conveyor_local import runtime_site

Aws = Callable[[str], Any]

_REPORT_IMPORTS = """
import importlib
import sys


def handler(event, context):
    found = {}
    for name in event["modules"]:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            found[name] = f"{type(exc).__name__}: {exc}"
        else:
            found[name] = "ok"
    return {"imports": found, "sys_path": sys.path}
"""


def _package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def role_arn(aws: Aws) -> str:
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:*"}]}
    role = aws("iam").create_role(
        RoleName=f"runtime-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(policy)
    )
    return str(role["Role"]["Arn"])


def _create(aws: Aws, role_arn: str, source: str, **extra: Any) -> str:
    name = f"runtime-{uuid.uuid4().hex[:12]}"
    aws("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role_arn,
        Handler="app.handler",
        Code={"ZipFile": _package(source)},
        Timeout=30,
        **extra,
    )
    return name


def test_a_function_without_layers_sees_only_the_runtime(aws: Aws, role_arn: str) -> None:
    # Given a function with no layer
    name = _create(aws, role_arn, _REPORT_IMPORTS)

    # When it tries what the python3.11 runtime ships and what only the server's venv holds
    shipped = ["boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six", "jmespath", "json"]
    venv_only = ["awscrt", "moto", "pytest", "yaml", "pydantic", "conveyor_local", "conveyor"]
    payload, response = invoke(aws("lambda"), name, {"modules": shipped + venv_only})

    # Then the runtime's packages import and nothing else of the venv does
    assert "FunctionError" not in response, payload
    assert {module: payload["imports"][module] for module in shipped} == dict.fromkeys(shipped, "ok")
    for module in venv_only:
        assert payload["imports"][module].startswith("ModuleNotFoundError"), (module, payload["imports"][module])
    # And no site-packages directory is on the path, only the code, the stdlib and the runtime's links
    assert not [entry for entry in payload["sys_path"] if entry.endswith("site-packages")]


def test_a_handler_importing_what_the_runtime_lacks_fails_at_init_as_on_aws(aws: Aws, role_arn: str) -> None:
    # Given a handler module importing a package the server's venv has but Lambda's runtime does not
    name = _create(aws, role_arn, "import awscrt\n\n\ndef handler(event, context):\n    return 'unreachable'\n")

    # When it is invoked
    payload, response = invoke(aws("lambda"), name, {})

    # Then the init phase fails with the runtime's error, naming the module
    assert response["FunctionError"]
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"] == "Unable to import module 'app': No module named 'awscrt'"


def test_a_layer_brings_the_dependencies_its_build_installs(
    local_cloud: dict[str, Any], aws: Aws, role_arn: str
) -> None:
    # Given a function with the probe layer, whose requirements.txt pins PyYAML
    layer = aws("lambda").get_function_configuration(FunctionName=local_cloud["outputs"]["ProbeFunctionName"])
    name = _create(aws, role_arn, _REPORT_IMPORTS, Layers=[entry["Arn"] for entry in layer["Layers"]])

    # When it imports the layer's code, the layer's dependency and something the layer does not declare
    payload, _ = invoke(aws("lambda"), name, {"modules": ["probe_lib", "yaml", "pydantic"]})

    # Then the first two import, the undeclared one does not
    assert payload["imports"]["probe_lib"] == "ok"
    assert payload["imports"]["yaml"] == "ok"
    assert payload["imports"]["pydantic"].startswith("ModuleNotFoundError")


def test_a_layer_pin_the_venv_does_not_satisfy_is_refused_by_name(tmp_path: Path) -> None:
    # Given a layer whose requirements.txt pins a version the local cloud's environment does not have
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nPyYAML==0.0.1\n", encoding="utf-8")

    # When it is declared
    with pytest.raises(runtime_site.LayerDependencyError) as refused:
        runtime_site.declare_layer_requirements("0" * 64, requirements)

    # Then the message names the file, the line and both versions
    message = str(refused.value)
    assert f"{requirements}:2" in message
    assert "PyYAML==0.0.1" in message
    assert "PyYAML 6." in message


def test_a_layer_requirement_not_installed_is_refused_by_name(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-distribution-anywhere==1.0\n", encoding="utf-8")

    with pytest.raises(runtime_site.LayerDependencyError, match="no-such-distribution-anywhere is not installed"):
        runtime_site.declare_layer_requirements("1" * 64, requirements)


def test_the_probe_fixture_layer_declares_a_real_pin() -> None:
    # The fixture template's layer must provision: its pins are satisfied by the dev environment.
    assert [dist.name for dist in runtime_site.parse_requirements(FIXTURES / "probe_layer" / "requirements.txt")] == [
        "PyYAML"
    ]
