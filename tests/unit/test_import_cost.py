"""What a handler's cold start imports: PyYAML only where a pipeline spec is parsed, the X-Ray SDK patches
only the AWS SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conveyor.domain.errors import PipelineInvalidError
from conveyor.domain.pipeline import PipelineSpec


def _imported_after(statement: str) -> set[str]:
    script = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(result.stdout.split())


def test_importing_every_adapter_and_contract_does_not_import_yaml() -> None:
    # When the modules every handler imports are imported in a fresh interpreter
    modules = _imported_after(
        "import conveyor.runtime, conveyor.domain.contracts, conveyor.domain.pipeline, conveyor.observability"
    )

    # Then PyYAML is not among them (only parsing a spec loads it)
    assert "conveyor.domain.pipeline" in modules
    assert "yaml" not in modules


def test_parsing_a_spec_still_refuses_what_is_not_yaml() -> None:
    # When a document PyYAML cannot parse is given
    with pytest.raises(PipelineInvalidError) as refused:
        PipelineSpec.from_yaml("app: [unclosed", "pipelines/broken.yaml")

    # Then it is a PipelineInvalidError naming the file, with PyYAML's reason
    assert str(refused.value).startswith("pipelines/broken.yaml: not valid YAML (")


def test_tracing_in_lambda_patches_the_aws_sdk_only() -> None:
    # Given an interpreter that looks like a Lambda execution environment with tracing on (Powertools
    # enables its Tracer only there)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env.update(LAMBDA_TASK_ROOT=str(Path.cwd()), AWS_LAMBDA_FUNCTION_NAME="conveyor-rollout", AWS_REGION="us-east-1")
    script = (
        "import json, sys\n"
        "from conveyor.observability import tracer\n"
        "from aws_xray_sdk.core.patcher import _PATCHED_MODULES\n"
        "print(json.dumps({'enabled': not tracer.disabled, 'patched': sorted(_PATCHED_MODULES),"
        " 'sqlite3': 'sqlite3' in sys.modules}))\n"
    )

    # When the module holding the one Tracer is imported
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True, env=env
    )
    seen = json.loads(result.stdout)

    # Then botocore, and nothing else X-Ray knows (sqlite3 is importable everywhere), is patched and imported
    assert seen == {"enabled": True, "patched": ["botocore"], "sqlite3": False}


_BUILT_AT_IMPORT = """
import importlib, json, pkgutil
import conveyor
from pydantic import BaseModel

for module in pkgutil.walk_packages(conveyor.__path__, "conveyor."):
    importlib.import_module(module.name)

def models(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from models(sub)

ours = {m for m in models(BaseModel) if m.__module__.startswith("conveyor.")}
built = sorted(f"{m.__module__}.{m.__qualname__}" for m in ours if m.__pydantic_complete__)

from conveyor.entry import StageCall
StageCall.model_validate({"stage": "Deploy", "input": {}})
validator = StageCall.__pydantic_validator__
StageCall.model_validate({"stage": "Finalize", "input": {}})
print(json.dumps({"models": len(ours), "built_at_import": built, "built_on_first_use": StageCall.__pydantic_complete__,
                  "built_once": StageCall.__pydantic_validator__ is validator}))
"""


def test_importing_the_library_builds_no_model_until_it_is_first_used() -> None:
    # When every module of the library is imported in a fresh interpreter
    result = subprocess.run(
        [sys.executable, "-c", _BUILT_AT_IMPORT], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(result.stdout)

    # Then none of its models has built its validator yet (a stage function builds only what it uses)
    assert seen["models"] > 40
    assert seen["built_at_import"] == []
    # And a model is built by its first validation, once: a second call reuses the same validator
    assert seen["built_on_first_use"] is True
    assert seen["built_once"] is True


FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

_ROUTED = """
import importlib.util, json, sys

def loaded(prefix):
    return sorted(name for name in sys.modules if name.startswith(prefix))

spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
seen = {"stages": loaded("conveyor.stages."), "adapters": loaded("conveyor.adapters.")}

class Context:
    function_name = "conveyor-rollout"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:conveyor-rollout"
    aws_request_id = "6f2c1f0e-0000-4000-8000-000000000001"

try:  # routed, then refused by the request's own validation: nothing reaches AWS
    app.handler({"stage": sys.argv[2], "input": {}}, Context())
except Exception as exc:
    seen["refused_with"] = type(exc).__name__
seen["routed_stages"] = loaded("conveyor.stages.")
print(json.dumps(seen))
"""


@pytest.mark.parametrize(
    ("function", "stage", "imported"),
    [
        ("intake", "AcquireLock", ["conveyor.stages.gate", "conveyor.stages.lock"]),
        ("rollout", "Deploy", ["conveyor.stages.deploy", "conveyor.stages.lock"]),
        ("report", "Finalize", ["conveyor.stages.report"]),
    ],
)
def test_a_stage_function_imports_a_stage_and_its_adapters_only_once_it_is_routed(
    function: str, stage: str, imported: list[str]
) -> None:
    # When a stage function's handler module is imported in a fresh interpreter, then called for one stage
    result = subprocess.run(
        [sys.executable, "-c", _ROUTED, str(FUNCTIONS / function / "app.py"), stage],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(result.stdout)

    # Then importing it loaded no stage module and no adapter (the cold start pays for neither)
    assert seen["stages"] == []
    assert seen["adapters"] == []
    # And routing a call loaded that stage's modules only (its empty request was then refused, before AWS)
    assert seen["refused_with"] == "ValidationError"
    assert seen["routed_stages"] == imported
