"""The one zip builder (bundles, the sample app, the local cloud's functions and layers)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from conveyor_cli.packaging import zip_directory


def _names(archive: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(archive)).namelist()


def _source(root: Path) -> Path:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "app.py").write_text("def handler(event, context):\n    return {}\n")
    (root / "requirements.txt").write_text("requests\n")
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (root / "link.py").symlink_to(root / "app.py")
    return root


def test_a_layer_is_zipped_under_its_prefix_without_the_excluded_files(tmp_path: Path) -> None:
    # Given a source directory with caches, a symlink and a requirements file
    source = _source(tmp_path)
    # When it is zipped as a layer (under python/), leaving requirements files out
    archive = zip_directory(source, prefix="python/", exclude=("requirements.txt",))
    # Then only its own files are there, under the prefix, in a stable order
    assert _names(archive) == ["python/app.py", "python/pkg/mod.py"]


def test_the_same_files_always_zip_to_the_same_bytes(tmp_path: Path) -> None:
    # Given one source directory zipped twice (Then: byte-identical, so unchanged code keeps its sha256)
    source = _source(tmp_path)
    assert zip_directory(source) == zip_directory(source)
    # and without excludes the requirements file ships, a symlink never does
    assert _names(zip_directory(source)) == ["app.py", "pkg/mod.py", "requirements.txt"]
