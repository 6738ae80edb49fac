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
