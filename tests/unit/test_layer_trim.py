"""The layer trim (layers/conveyor/trim.py): it removes what it lists, and proves no handler imports it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TRIM_PY = Path(__file__).parents[2] / "layers" / "conveyor" / "trim.py"


def _load_trim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layer_trim", TRIM_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["layer_trim"] = module
    spec.loader.exec_module(module)
    return module


trim = _load_trim()


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    """A layer where conveyor imports Powertools' logging, which imports a utility lazily."""
    root = tmp_path / "python"
    _write(
        root,
        {
            "conveyor/__init__.py": "",
            "conveyor/observability.py": "from aws_lambda_powertools.logging import Logger\n",
            "aws_lambda_powertools/__init__.py": "",
            "aws_lambda_powertools/logging/__init__.py": "from .logger import Logger\n",
            "aws_lambda_powertools/logging/logger.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from aws_lambda_powertools.utilities.parser import BaseModel\n"
                "class Logger:\n    def inject(self):\n"
                "        from aws_lambda_powertools.utilities.jmespath_utils import query\n"
            ),
            "aws_lambda_powertools/utilities/__init__.py": "",
            "aws_lambda_powertools/utilities/jmespath_utils/__init__.py": "def query(): ...\n",
            "aws_lambda_powertools/utilities/parser/__init__.py": "BaseModel = object\n",
        },
    )
    return root


def _removed(layer: Path, *paths: str) -> set[tuple[str, str]]:
    return trim.removed_imports(layer, [], [trim.module_name(layer, layer / p) for p in paths])


def test_an_import_inside_a_function_of_a_reachable_module_is_followed(layer: Path) -> None:
    # When the utility the logger imports lazily, inside a method, is removed
    found = _removed(layer, "aws_lambda_powertools/utilities/jmespath_utils")

    # Then the proof names the importer and the module
    assert found == {("aws_lambda_powertools.logging.logger", "aws_lambda_powertools.utilities.jmespath_utils")}
    with pytest.raises(trim.LayerTrimError, match=r"logger imports aws_lambda_powertools\.utilities\.jmespath_utils"):
        trim.check(found)


def test_a_type_checking_import_is_not_an_import_at_run_time(layer: Path) -> None:
    # When the parser, imported only under TYPE_CHECKING, is removed
    found = _removed(layer, "aws_lambda_powertools/utilities/parser")

    # Then nothing can import it
    assert found == set()


def test_a_handler_is_a_root_of_the_proof(layer: Path, tmp_path: Path) -> None:
    # Given a handler that imports the parser directly
    handler = tmp_path / "functions" / "stage" / "app.py"
    _write(tmp_path, {"functions/stage/app.py": "from aws_lambda_powertools.utilities.parser import BaseModel\n"})

    # When the parser is removed
    found = trim.removed_imports(layer, [handler], ["aws_lambda_powertools.utilities.parser"])

    # Then the handler is named as its importer
    assert found == {("app", "aws_lambda_powertools.utilities.parser")}


def test_relative_imports_resolve_against_their_package(layer: Path) -> None:
    # When the logging package's own module is removed
    found = _removed(layer, "aws_lambda_powertools/logging/logger.py")

    # Then ``from .logger import Logger`` in logging/__init__.py is the import found
    assert found == {("aws_lambda_powertools.logging", "aws_lambda_powertools.logging.logger")}


def test_an_explained_import_passes_and_a_stale_explanation_fails() -> None:
    # Given the one import the real trim explains
    explained = set(trim.UNREACHABLE)

    # Then finding exactly it passes, and no longer finding it fails (so the list cannot go stale)
    trim.check(explained)
    with pytest.raises(trim.LayerTrimError, match="no longer happens"):
        trim.check(set())


def test_a_listed_path_that_is_not_there_fails_the_trim(tmp_path: Path) -> None:
    # Given a layer that lacks what UNUSED lists (a dependency upgrade moved it)
    (tmp_path / "conveyor").mkdir()

    # Then the trim refuses, naming the pattern
    with pytest.raises(trim.LayerTrimError, match="aws_lambda_powertools/event_handler is listed"):
        trim.trim(tmp_path)


def test_module_names_of_removed_paths() -> None:
    # A native extension is named after its module, a directory after its package
    root = Path("/layer")
    assert trim.module_name(root, root / "yaml" / "_yaml.cpython-311-aarch64-linux-gnu.so") == "yaml._yaml"
    assert trim.module_name(root, root / "aws_lambda_powertools" / "event_handler") == (
        "aws_lambda_powertools.event_handler"
    )
