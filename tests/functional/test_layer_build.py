"""The layer as ``sam build`` makes it (layers/conveyor/Makefile): small, and every handler still imports from it.

Built once for this module with the real Makefile (pip fetches the pinned arm64 wheels), then each
handler is imported in a fresh interpreter laid out as Lambda's python3.11 runtime is (``-S``, the
function dir, the layer, then only what the runtime ships), so a module the trim removed but a
handler needs fails here rather than on AWS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.coldstart import host_layer, import_once, runtime_shim, tree_size

ROOT = Path(__file__).parents[2]
LAYER_SOURCE = ROOT / "layers" / "conveyor"
HANDLERS = sorted(p.parent for p in (ROOT / "functions").glob("*/app.py"))
LAYER_BUDGET_BYTES = 15_000_000


@pytest.fixture(scope="module")
def built_layer() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="conveyor-layer-") as artifacts:
        env = dict(os.environ, ARTIFACTS_DIR=artifacts, PYTHON=sys.executable)
        result = subprocess.run(
            ["make", "--makefile", str(LAYER_SOURCE / "Makefile"), "build-ConveyorLayer"],
            cwd=LAYER_SOURCE,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        yield Path(artifacts) / "python"


@pytest.fixture(scope="module")
def lambda_paths(built_layer: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(layer as this host imports it, the runtime's own packages)."""
    scratch = tmp_path_factory.mktemp("lambda-runtime")
    layer, _ = host_layer(built_layer, scratch / "opt-python")
    return layer, runtime_shim(scratch / "var-runtime")


def test_the_layer_fits_its_budget(built_layer: Path) -> None:
    # Then the unzipped layer, bytecode included, is within 15 MB
    size = tree_size(built_layer.parent)
    assert size <= LAYER_BUDGET_BYTES, f"layer is {size / 1e6:.2f} MB unzipped"
    assert any(built_layer.joinpath("pydantic").rglob("*.pyc")), "third-party bytecode is shipped"


def test_what_the_trim_removes_is_gone(built_layer: Path) -> None:
    assert not (built_layer / "aws_lambda_powertools" / "event_handler").exists()
    assert not (built_layer / "aws_lambda_powertools" / "utilities" / "parser").exists()
    assert not list((built_layer / "yaml").glob("_yaml*.so"))
    assert (built_layer / "aws_lambda_powertools" / "utilities" / "typing").is_dir()


@pytest.mark.parametrize("function_dir", HANDLERS, ids=[p.name for p in HANDLERS])
def test_every_handler_imports_from_the_built_layer(function_dir: Path, lambda_paths: tuple[Path, Path]) -> None:
    # When the handler is imported as Lambda would (raises, with the traceback, if a module is missing)
    milliseconds, _, _ = import_once(function_dir, *lambda_paths, function_dir.name)

    # Then it imported
    assert milliseconds > 0


def test_pipeline_specs_parse_with_the_pure_python_yaml(lambda_paths: tuple[Path, Path]) -> None:
    # Given the layer without PyYAML's C extension
    layer, shim = lambda_paths
    script = (
        "import pathlib, sys, yaml\n"
        "from conveyor.domain.pipeline import PipelineSpec\n"
        "assert not yaml.__with_libyaml__, 'the C extension is still there'\n"
        "spec = PipelineSpec.from_yaml(pathlib.Path(sys.argv[1]).read_bytes(), 'hello.yaml')\n"
        "print(spec.app, [e.name for e in spec.environments])\n"
    )

    # When the sample pipeline is parsed in a Lambda-like interpreter
    result = subprocess.run(
        [sys.executable, "-S", "-c", script, str(ROOT / "examples" / "pipelines" / "hello.yaml")],
        env={"PYTHONPATH": os.pathsep.join([str(layer), str(shim)]), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then it validates as before
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "hello ['staging', 'production']"
