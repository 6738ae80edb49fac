"""Build step of the layer: remove what no stage function can import, then prove it.

``python trim.py LAYER_PYTHON_DIR FUNCTIONS_DIR`` runs after ``pip install`` in the Makefile (it is
not shipped: the Makefile copies only ``conveyor/`` and what pip installs). What it removes is
listed in ``UNUSED``, each with its reason; a listed path that matches nothing fails the build, so
a dependency upgrade that moves one is noticed instead of silently shipping it again.

The proof: every module that Conveyor's code (``conveyor/`` in the layer and each handler under
``FUNCTIONS_DIR``) imports, anywhere in a file (function bodies and ``try`` blocks included, only
``if TYPE_CHECKING:`` left out), is followed through the packages trimmed by module
(``CHECKED_PACKAGES``); a module it reaches that the trim removed fails the build, naming the
importer. PyYAML without its C extension is its own pure-Python fallback (``yaml/__init__.py``
imports ``cyaml`` inside ``try ... except ImportError``); Conveyor only uses ``yaml.SafeLoader``.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Paths (globs relative to the layer's python/ dir) that no stage function imports, and why.
UNUSED: tuple[tuple[str, str], ...] = (
    ("aws_lambda_powertools/event_handler", "API Gateway/AppSync/Bedrock routers; Conveyor has no HTTP handler"),
    ("aws_lambda_powertools/utilities/auth_alpha", "unused Powertools utility"),
    ("aws_lambda_powertools/utilities/batch", "unused Powertools utility (SQS/Kinesis batches)"),
    ("aws_lambda_powertools/utilities/circuit_breaker", "unused Powertools utility"),
    ("aws_lambda_powertools/utilities/data_classes", "unused Powertools utility (event classes)"),
    ("aws_lambda_powertools/utilities/data_masking", "unused Powertools utility"),
    ("aws_lambda_powertools/utilities/feature_flags", "unused Powertools utility"),
    ("aws_lambda_powertools/utilities/idempotency", "unused Powertools utility"),
    ("aws_lambda_powertools/utilities/kafka", "unused Powertools utility"),
    ("aws_lambda_powertools/utilities/metadata", "unused Powertools utility"),
    ("aws_lambda_powertools/utilities/parameters", "unused Powertools utility (SSM/Secrets)"),
    ("aws_lambda_powertools/utilities/parser", "unused Powertools utility (we validate with our own models)"),
    ("aws_lambda_powertools/utilities/streaming", "unused Powertools utility (S3 streaming)"),
    ("aws_lambda_powertools/utilities/validation", "unused Powertools utility (JSON Schema)"),
    (
        "yaml/_yaml.*.so",
        "PyYAML's libyaml binding (2.8 MB); Conveyor parses small specs with the pure-Python SafeLoader",
    ),
    ("_yaml", "PyYAML's deprecated top-level shim of the same binding"),
    ("bin", "console scripts (jp.py); Lambda never runs them"),
)
#: Packages trimmed module by module, whose imports the proof follows.
CHECKED_PACKAGES = ("aws_lambda_powertools", "conveyor")
#: Imports of removed modules that no stage function can execute: (importer, imported) -> why. An entry
#: the proof no longer finds fails the build too, so this list cannot go stale.
UNREACHABLE: dict[tuple[str, str], str] = {
    ("aws_lambda_powertools.shared.functions", "aws_lambda_powertools.event_handler.openapi.compat"): (
        "inside pydantic_to_dict, which Logger.inject_lambda_context calls only to log the event"
        " (POWERTOOLS_LOGGER_LOG_EVENT is false in template.yaml and never set in code) and only when"
        " the event is a pydantic model (a Lambda event arrives as a dict)"
    ),
}


class LayerTrimError(Exception):
    """The trim would remove nothing it was told to, or removed a module Conveyor's code can import."""


def trim(layer: Path) -> list[Path]:
    """Remove every ``UNUSED`` path from ``layer``; returns what was removed."""
    removed = []
    for pattern, _reason in UNUSED:
        matches = sorted(layer.glob(pattern))
        if not matches:
            raise LayerTrimError(f"{pattern} is listed in trim.py UNUSED but is not in {layer}: update the list")
        for path in matches:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        pending.extend(ast.iter_child_nodes(node))


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules a file imports (``from a import b`` names ``a`` and ``a.b``)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:
            base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*base_parts, node.module] if node.module else base_parts)
        else:
            base = node.module or ""
        found.add(base)
        found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def module_name(layer: Path, path: Path) -> str:
    """``yaml/_yaml.cpython-311-aarch64-linux-gnu.so`` -> ``yaml._yaml``; a directory is its package."""
    relative = path.relative_to(layer)
    return ".".join([*relative.parts[:-1], relative.name.split(".")[0]])


def _module_file(layer: Path, module: str) -> tuple[Path, bool] | None:
    path = layer.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py", True
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py"), False
    return None


def _roots(layer: Path, handlers: Iterable[Path]) -> list[tuple[Path, str, bool]]:
    roots = [(handler, "app", False) for handler in handlers]
    for path in sorted((layer / "conveyor").rglob("*.py")):
        relative = path.relative_to(layer).with_suffix("")
        is_package = relative.name == "__init__"
        roots.append((path, ".".join(relative.parts[:-1] if is_package else relative.parts), is_package))
    return roots


def removed_imports(layer: Path, handlers: Iterable[Path], removed: Iterable[str]) -> set[tuple[str, str]]:
    """Each (importer, imported module) where code reachable from the handlers and ``conveyor/`` imports a
    removed module (or one inside a removed package), following imports through ``CHECKED_PACKAGES``."""
    gone = set(removed)
    found: set[tuple[str, str]] = set()
    seen: set[str] = set()
    pending = _roots(layer, handlers)
    while pending:
        path, module, is_package = pending.pop()
        for name in sorted(imported_modules(path.read_text(encoding="utf-8"), module, is_package)):
            parts = name.split(".")
            if any(".".join(parts[:n]) in gone for n in range(1, len(parts) + 1)):
                found.add((module, name))
                continue
            if parts[0] not in CHECKED_PACKAGES or name in seen:
                continue
            seen.add(name)
            located = _module_file(layer, name)
            if located is not None:
                pending.append((located[0], name, located[1]))
    # ``from a.b import c`` names both a.b and a.b.c: keep the outermost one.
    return {(who, name) for who, name in found if not any(name.startswith(f"{o}.") for w, o in found if w == who)}


def check(found: set[tuple[str, str]]) -> None:
    """Fail unless the imports of removed modules are exactly the ones ``UNREACHABLE`` explains."""
    unexplained = sorted(found - set(UNREACHABLE))
    stale = sorted(set(UNREACHABLE) - found)
    lines = [f"{importer} imports {name}, which trim.py removes" for importer, name in unexplained]
    lines += [f"UNREACHABLE lists {importer} -> {name}, which no longer happens: remove it" for importer, name in stale]
    if lines:
        raise LayerTrimError("the layer trim is not proven safe:\n  " + "\n  ".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python trim.py", description=__doc__.splitlines()[0])
    parser.add_argument("layer", type=Path, help="the layer's python/ directory")
    parser.add_argument("functions", type=Path, help="the functions/ directory (each <stage>/app.py)")
    args = parser.parse_args(argv)
    removed = trim(args.layer)
    check(
        removed_imports(
            args.layer, sorted(args.functions.glob("*/app.py")), [module_name(args.layer, p) for p in removed]
        )
    )
    print(f"trim.py: removed {len(removed)} paths from {args.layer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
