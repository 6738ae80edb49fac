"""Opening a pushed bundle safely: a zip holding exactly ``manifest.json`` and ``package.zip``.

Anyone who can write to the bucket can push anything, so the bundle and the package inside
it are checked before a byte is trusted: entry count, sizes, compression ratio, paths and
symlinks, then the manifest's schema and the package's sha256 and size.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from dataclasses import dataclass

from conveyor.errors import BundleInvalidError, DigestMismatchError, ManifestInvalidError
from conveyor.manifest import MANIFEST_NAME, PACKAGE_NAME, Manifest

MAX_BUNDLE_BYTES = 100 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024
# Lambda's own limit for an unzipped deployment package.
MAX_PACKAGE_UNZIPPED_BYTES = 250 * 1024 * 1024
MAX_PACKAGE_ENTRIES = 20_000
MAX_COMPRESSION_RATIO = 200


@dataclass(frozen=True)
class Bundle:
    manifest: Manifest
    package: bytes


def open_bundle(data: bytes, source: str) -> Bundle:
    """Check and unpack a bundle; every refusal names ``source`` and the problem."""
    if not data:
        raise BundleInvalidError(f"{source}: the object is empty")
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleInvalidError(f"{source}: {len(data)} bytes exceeds the bundle limit of {MAX_BUNDLE_BYTES}")
    archive = _open_zip(data, source)
    with archive:
        infos = archive.infolist()
        _check_entries(infos, source, max_entries=8, max_unzipped=MAX_PACKAGE_UNZIPPED_BYTES + MAX_MANIFEST_BYTES)
        names = {info.filename for info in infos}
        if MANIFEST_NAME not in names:
            raise ManifestInvalidError(f"{source}: {MANIFEST_NAME} is missing")
        if PACKAGE_NAME not in names:
            raise BundleInvalidError(f"{source}: {PACKAGE_NAME} is missing")
        unexpected = sorted(names - {MANIFEST_NAME, PACKAGE_NAME})
        if unexpected:
            raise BundleInvalidError(f"{source}: unexpected entries {unexpected}")
        if archive.getinfo(MANIFEST_NAME).file_size > MAX_MANIFEST_BYTES:
            raise ManifestInvalidError(f"{source}: {MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
        manifest = Manifest.from_json(_read(archive, MANIFEST_NAME, source))
        package = _read(archive, PACKAGE_NAME, source)
    verify_package(package, manifest, source)
    return Bundle(manifest=manifest, package=package)


def verify_package(package: bytes, manifest: Manifest, source: str) -> None:
    """The package must be byte-identical to what was built, and itself a safe zip."""
    digest = hashlib.sha256(package).hexdigest()
    if digest != manifest.package.sha256:
        raise DigestMismatchError(
            f"{source}: {PACKAGE_NAME} sha256 is {digest}, manifest package.sha256 says {manifest.package.sha256}"
        )
    if len(package) != manifest.package.size:
        raise DigestMismatchError(
            f"{source}: {PACKAGE_NAME} is {len(package)} bytes, manifest package.size says {manifest.package.size}"
        )
    with _open_zip(package, f"{source}!{PACKAGE_NAME}") as inner:
        _check_entries(
            inner.infolist(),
            f"{source}!{PACKAGE_NAME}",
            max_entries=MAX_PACKAGE_ENTRIES,
            max_unzipped=MAX_PACKAGE_UNZIPPED_BYTES,
        )


def _open_zip(data: bytes, source: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BundleInvalidError(f"{source}: not a zip archive ({exc})") from exc


def _check_entries(infos: list[zipfile.ZipInfo], source: str, *, max_entries: int, max_unzipped: int) -> None:
    if len(infos) > max_entries:
        raise BundleInvalidError(f"{source}: {len(infos)} entries exceeds the limit of {max_entries}")
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise BundleInvalidError(f"{source}: entry {name!r} has an absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            raise BundleInvalidError(f"{source}: entry {name!r} escapes the archive with '..'")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BundleInvalidError(f"{source}: entry {name!r} is a symlink")
        total += info.file_size
        if total > max_unzipped:
            raise BundleInvalidError(f"{source}: uncompressed size exceeds the limit of {max_unzipped} bytes")
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            raise BundleInvalidError(
                f"{source}: entry {name!r} compression ratio exceeds {MAX_COMPRESSION_RATIO} (zip bomb?)"
            )


def _read(archive: zipfile.ZipFile, name: str, source: str) -> bytes:
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BundleInvalidError(f"{source}: {name} cannot be read ({exc})") from exc
