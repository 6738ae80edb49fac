"""What a handler's cold start imports: PyYAML only where a pipeline spec is parsed."""

from __future__ import annotations

import subprocess
import sys

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
