"""The runtime library's wings keep their rules: a stage never imports another stage, a stage talks to AWS only
through the ports (no SDK, no adapter, no wiring: an adapter names every AWS failure as a domain error), and the
domain never imports boto3, botocore or an adapter. Read from the source with ``ast``, so an import inside a
function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "layers" / "conveyor" / "conveyor"
STAGES = LIBRARY / "stages"
DOMAIN = LIBRARY / "domain"

#: What the domain may not import: AWS SDKs, and the modules that talk to AWS or wire adapters.
FORBIDDEN_IN_DOMAIN = ("boto3", "botocore", "conveyor.adapters", "conveyor.runtime", "conveyor.stages")
#: What a stage may not import: the SDK and what talks to AWS or wires adapters (the handlers do the wiring).
FORBIDDEN_IN_STAGES = ("boto3", "botocore", "conveyor.adapters", "conveyor.runtime")


def module_name(path: Path) -> str:
    """``conveyor.stages.lock`` for ``.../conveyor/stages/lock.py`` (a package's ``__init__`` is the package)."""
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, importer: str, *, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports, relative imports resolved against ``importer``.

    ``from package import name`` counts both ``package`` and ``package.name`` (the name may be a module).
    """
    package = importer if is_package else importer.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def stage_modules() -> list[Path]:
    return sorted(path for path in STAGES.glob("*.py") if path.name != "__init__.py")


def test_the_checker_sees_every_form_of_a_stage_importing_a_stage() -> None:
    # Given imports of a sibling stage in each spelling Python allows
    sources = [
        "from conveyor.stages.report import publish_once",
        "from conveyor.stages import report",
        "import conveyor.stages.report",
        "from .report import publish_once",
        "from . import report",
        "def late():\n    from conveyor.stages.report import publish_once",
    ]
    # When each is read as if it were conveyor.stages.lock
    # Then every one names the other stage
    for source in sources:
        assert "conveyor.stages.report" in imported_modules(source, "conveyor.stages.lock"), source


@pytest.mark.parametrize("stage", stage_modules(), ids=lambda path: path.stem)
def test_no_stage_imports_another_stage(stage: Path) -> None:
    # Given one module per state of the pipeline
    others = {module_name(path) for path in stage_modules()} - {module_name(stage)}
    # When its imports are read
    imported = imports_of(stage)
    # Then none is another stage: what two stages share lives in conveyor.domain
    assert not imported & others, f"{module_name(stage)} imports the stage(s) {sorted(imported & others)}"


@pytest.mark.parametrize("stage", stage_modules(), ids=lambda path: path.stem)
def test_no_stage_imports_the_aws_sdk_an_adapter_or_the_wiring(stage: Path) -> None:
    # When a stage's imports are read
    found = sorted(m for m in imports_of(stage) if within(m, FORBIDDEN_IN_STAGES))
    # Then it reaches AWS only through the ports it is given, and catches only the domain's errors
    assert found == [], f"{module_name(stage)} imports {found}"


def test_the_domain_imports_no_aws_sdk_and_no_adapter() -> None:
    # Given the domain wing (it must exist and hold the models, rules and ports)
    modules = sorted(DOMAIN.glob("*.py"))
    assert {"ports.py", "records.py", "errors.py"} <= {path.name for path in modules}
    # When the imports of every domain module are read
    offences = {
        module_name(path): sorted(m for m in imports_of(path) if within(m, FORBIDDEN_IN_DOMAIN)) for path in modules
    }
    # Then none reaches boto3, botocore, an adapter, the runtime wiring or a stage
    assert {name: found for name, found in offences.items() if found} == {}
