"""What a local Lambda worker may import beyond the standard library, as on Lambda's python3.11 runtime.

On AWS a function's ``sys.path`` is its code (``/var/task``), its layers (``/opt/python``), the
standard library and the runtime's own ``boto3`` with its dependencies, and nothing else. A worker
started on the whole server venv could import anything the developer happens to have installed
(``awscrt``, moto, pytest), so a handler that forgot a dependency passed locally and failed on
AWS. Workers therefore start with ``python -I -S`` (no site-packages at all) and get:

- the function's code, then each layer's ``python/`` directory, then that layer's dependencies;
- the standard library;
- ``RUNTIME_DISTRIBUTIONS``: the packages the python3.11 runtime ships.

Nothing is copied: each set is a directory of symlinks to the server venv's installed copies
(``site_dir``), built once per set of (distribution, version) and reused by every worker.

A layer's dependencies are what ``sam build`` would install from the ``requirements.txt`` in its
``ContentUri`` (the file itself is not zipped into the layer). Provisioning declares them
(``declare_layer_requirements``, keyed by the layer zip's SHA-256), checking each pin against the
server venv at once, so a pin the venv does not satisfy is refused by name
(``LayerDependencyError``) before any function uses the layer.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: The distributions the AWS Lambda python3.11 runtime ships (``boto3`` and its dependency closure).
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six", "jmespath")


class LayerDependencyError(Exception):
    """A layer's ``requirements.txt`` names a distribution the local cloud's venv does not hold at that version."""


@dataclass(frozen=True)
class Distribution:
    """An installed distribution: its name, version and the top-level entries (packages, modules) it installed."""

    name: str
    version: str
    entries: tuple[Path, ...]


def installed(name: str) -> Distribution:
    """The server venv's copy of distribution ``name`` (``PackageNotFoundError`` when it has none)."""
    dist = importlib.metadata.distribution(name)
    base = Path(str(dist.locate_file("")))
    tops: set[str] = set()
    for file in dist.files or ():
        parts = Path(str(file)).parts
        if not parts or parts[0] in {"..", "__pycache__"} or parts[0].endswith(".pth"):
            continue  # console scripts (../../bin), bytecode caches, path hooks
        tops.add(parts[0])
    entries = tuple(sorted(base / top for top in tops if (base / top).exists()))
    return Distribution(name=dist.metadata["Name"], version=dist.version, entries=entries)


def site_dir(root: Path, distributions: Iterable[Distribution]) -> Path:
    """A directory of symlinks to ``distributions``' entries under ``root``, one per set of (name, version)."""
    chosen = sorted({(dist.name, dist.version): dist for dist in distributions}.items())
    digest = hashlib.sha256(repr([key for key, _ in chosen]).encode()).hexdigest()[:16]
    target = root / digest
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".site-"))
    for _, dist in chosen:
        for entry in dist.entries:
            link = staging / entry.name
            if not link.exists():
                link.symlink_to(entry)
    try:
        staging.rename(target)
    except OSError:  # another worker built the same set first: theirs is as good
        for link in staging.iterdir():
            link.unlink()
        staging.rmdir()
    return target


def runtime_distributions() -> list[Distribution]:
    return [installed(name) for name in RUNTIME_DISTRIBUTIONS]


# ----------------------------------------------------------------- layers' dependencies

_LAYER_REQUIREMENTS: dict[str, tuple[Distribution, ...]] = {}
_LOCK = threading.Lock()


def parse_requirements(path: Path) -> list[Distribution]:
    """The server venv's distributions pinned by ``path``; raises ``LayerDependencyError`` naming a mismatch."""
    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            message = f"{path}:{number}: {line!r} is not a requirement the local cloud reads: {exc}"
            raise LayerDependencyError(message) from exc
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            dist = installed(requirement.name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise LayerDependencyError(
                f"{path}:{number}: {requirement.name} is not installed in the local cloud's environment "
                f"({sys.prefix}); install it there (make install) or drop it from the layer"
            ) from exc
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise LayerDependencyError(
                f"{path}:{number}: the layer pins {requirement} but the local cloud's environment has "
                f"{dist.name} {dist.version}; align requirements-dev.txt with the layer"
            )
        found.append(dist)
    return found


def declare_layer_requirements(zip_sha256: str, requirements: Path) -> None:
    """Record what ``sam build`` would install into the layer whose zip hashes to ``zip_sha256``."""
    distributions = tuple(parse_requirements(requirements)) if requirements.is_file() else ()
    with _LOCK:
        _LAYER_REQUIREMENTS[zip_sha256] = distributions


def layer_dependencies(zip_sha256: str) -> tuple[Distribution, ...]:
    """The dependencies declared for a layer (none for a layer published without a ``requirements.txt``)."""
    with _LOCK:
        return _LAYER_REQUIREMENTS.get(zip_sha256, ())
