"""``conveyor package``: a build directory in, a bundle (``manifest.json`` + ``package.zip``) out.

The package zip is reproducible (sorted entries, fixed timestamps and modes), so the same
build always has the same sha256 and Conveyor can recognise code that is already deployed.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import math
import os
import subprocess
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.domain.manifest import MANIFEST_NAME, PACKAGE_NAME, FunctionConfig, Manifest
from pydantic import ValidationError

from conveyor_cli.context import CliError, UsageError

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".git", ".venv", ".pytest_cache", ".mypy_cache"}


def environment_of(pairs: list[tuple[str, str]] | None) -> dict[str, str] | None:
    """The ``--env`` pairs as the function's variables; a key given twice is a usage error naming it (which value
    was meant is not for the CLI to guess)."""
    if not pairs:
        return None
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise UsageError(f"--env: {', '.join(twice)} given more than once")
    return dict(pairs)


_FLAGS = {"environment": "--env", "memory_mb": "--memory", "timeout_seconds": "--timeout"}
"""The command-line flag of each function configuration field."""


def function_config_of(
    env: list[tuple[str, str]] | None, memory: int | None, timeout: int | None
) -> FunctionConfig | None:
    """The function configuration ``--env``/``--memory``/``--timeout`` ask for (None: none asked), validated as the
    manifest's (a CliError naming the field otherwise)."""
    try:
        config = FunctionConfig.model_validate(
            {"environment": environment_of(env), "memory_mb": memory, "timeout_seconds": timeout}
        )
    except ValidationError as exc:
        # Named as typed on the command line, not as the manifest's field it fills.
        refused = [f"{_FLAGS.get(str(error['loc'][0]), error['loc'][0])}: {error['msg']}" for error in exc.errors()]
        raise UsageError("; ".join(refused)) from exc
    return config if config.model_dump(exclude_none=True) else None


def at_least(smallest: float, kind: type[int] | type[float], *, exclusive: bool = False) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` no smaller than ``smallest`` (``exclusive``: greater than it), else a
    usage error naming it."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if exclusive and value <= smallest:
            raise argparse.ArgumentTypeError(f"{text} is not more than {smallest:g}")
        if value < smallest:
            raise argparse.ArgumentTypeError(f"{text} is less than {smallest:g}")
        return value

    return parse


def env_variable(text: str) -> tuple[str, str]:
    """An argparse type for ``--env``: ``KEY=VALUE`` (the value may hold ``=``), else a usage error naming it."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = (mode & 0o777 | 0o100000) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def zip_directory(source: Path, *, prefix: str = "", exclude: Iterable[str] = ()) -> bytes:
    """A reproducible zip of ``source``'s files under ``prefix`` (sorted, fixed timestamps, so unchanged code keeps
    its sha256); symlinks, caches and files matching an ``exclude`` pattern are left out.

    The one zip builder: bundles (``build_bundle``), the sample app and the local cloud's functions and layers.
    """
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a directory")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in packaged_files(source, exclude):
            archive.writestr(_entry(f"{prefix}{path.relative_to(source).as_posix()}", 0o644), path.read_bytes())
    return buffer.getvalue()


def packaged_files(source: Path, exclude: Iterable[str] = ()) -> Iterator[Path]:
    """The files ``zip_directory`` packages, in order: no symlinks, caches, ``.pyc`` or ``exclude`` matches."""
    patterns = tuple(exclude)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_symlink() or not path.is_file() or _SKIP_DIRS & set(relative.parts) or path.suffix == ".pyc":
            continue
        if any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in patterns):
            continue
        yield path


def output_path(out: str | None, default_name: str) -> Path:
    """Where a file named on the command line is written: ``out`` as the file, or (a folder that exists, or a path
    ending in ``/``) the folder for ``default_name``; ``default_name`` here when ``out`` is None."""
    if out is None:
        return Path(default_name)
    path = Path(out)
    return path / default_name if out.endswith(("/", os.sep)) or path.is_dir() else path


def bundle_destination(out: str | None, app: str, version: str) -> Path:
    """Where a bundle is written (``output_path``), by default ``<app>-<version>.zip``."""
    return output_path(out, f"{app}-{version}.zip")


def write_bundle(path: Path, data: bytes) -> None:
    """Write a bundle at ``path`` (its folder made if missing); a ``CliError`` naming the path if it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write the bundle to {path}: {exc.strerror or exc}") from exc


class BundleSourceError(CliError):
    """The directory to package is missing, is not a directory, or holds no file to deploy.

    Raised before anything is built or pushed, so a CI job whose build step left nothing behind (a wrong
    path, an empty output folder) fails at packaging, naming the path, instead of deploying an empty function.
    """


def check_bundle_source(source: Path) -> None:
    """A ``BundleSourceError`` naming ``source`` unless it is a directory with at least one file to package."""
    if not source.exists():
        raise BundleSourceError(f"cannot package {source}: no such directory")
    if not source.is_dir():
        raise BundleSourceError(f"cannot package {source}: not a directory (give the folder holding the build)")
    if next(packaged_files(source), None) is None:
        raise BundleSourceError(
            f"cannot package {source}: no file to deploy in it (caches, symlinks and .git are left out)"
        )


def git_commit(source: Path) -> dict[str, str] | None:
    """The commit ``source`` was built from, if it is inside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "log", "-1", "--format=%H %cI"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": out[0], "time": out[1]} if len(out) == 2 else None


def build_info() -> dict[str, str] | None:
    """The CI build that produced the bundle (GitHub Actions, GitLab CI, Jenkins), if any."""
    if os.environ.get("GITHUB_RUN_ID"):
        server, repo = os.environ.get("GITHUB_SERVER_URL", ""), os.environ.get("GITHUB_REPOSITORY", "")
        run = os.environ["GITHUB_RUN_ID"]
        return {"id": run, "url": f"{server}/{repo}/actions/runs/{run}"}
    if os.environ.get("CI_PIPELINE_ID"):
        return {"id": os.environ["CI_PIPELINE_ID"], "url": os.environ.get("CI_PIPELINE_URL", "")}
    if os.environ.get("BUILD_TAG"):
        return {"id": os.environ["BUILD_TAG"], "url": os.environ.get("BUILD_URL", "")}
    return None


def build_bundle(
    source: Path,
    *,
    app: str,
    version: str,
    function_config: FunctionConfig | None = None,
    commit: dict[str, str] | None = None,
) -> tuple[bytes, Manifest]:
    """The bundle of ``source`` and its manifest; a ``BundleSourceError`` if ``source`` holds nothing to deploy."""
    check_bundle_source(source)
    package = zip_directory(source)
    manifest = Manifest.model_validate(
        {
            "schema_version": 1,
            "app": app,
            "version": version,
            "package": {"sha256": hashlib.sha256(package).hexdigest(), "size": len(package)},
            "created_at": datetime.now(UTC).isoformat(),
            "commit": commit if commit is not None else git_commit(source),
            "build": build_info(),
            "function_config": function_config.model_dump(exclude_none=True) if function_config else None,
        }
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(_entry(MANIFEST_NAME, 0o644), manifest.model_dump_json(indent=2, exclude_none=True))
        # package.zip is already compressed: store it as is.
        info = _entry(PACKAGE_NAME, 0o644)
        info.compress_type = zipfile.ZIP_STORED
        bundle.writestr(info, package)
    return buffer.getvalue(), manifest
