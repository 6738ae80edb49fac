"""Opening a pushed bundle safely: a zip holding exactly ``manifest.json`` and ``package.zip``.

Anyone who can write to the bucket can push anything, so the bundle and the package inside
it are checked before a byte is trusted: entry count, sizes, compression ratio, paths and
symlinks, duplicates, encryption and compression method, then the manifest's schema and the
package's sha256 and size. Every check works on the zip's central directory, before anything
is decompressed; the only members ever decompressed are ``manifest.json`` (at most 8 KiB)
and ``package.zip``, and zipfile never inflates a member past the size its header declares
(a member that would is caught by its CRC). ``package.zip`` itself is never unpacked here:
Lambda unpacks it, and the same limits as Lambda's are checked on its directory first.

Every refusal is a named ``ArtifactRejectedError`` whose message names the object and the
problem, and stays short: entry names and other attacker-chosen text are cut to a few dozen
characters, so a hostile bundle cannot blow up the ledger record or the notification.
"""

import hashlib
import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

from conveyor.domain.errors import BundleInvalidError, DigestMismatchError, ManifestInvalidError
from conveyor.domain.limits import MAX_BUNDLE_BYTES, MAX_MANIFEST_BYTES
from conveyor.domain.manifest import MANIFEST_NAME, PACKAGE_NAME, Manifest

# Lambda's own limit for an unzipped deployment package.
MAX_PACKAGE_UNZIPPED_BYTES = 250 * 1024 * 1024
MAX_PACKAGE_ENTRIES = 20_000
MAX_BUNDLE_ENTRIES = 8
MAX_COMPRESSION_RATIO = 200
#: What ``zip``, ``zipfile`` and every CI archiver write by default; anything else is refused
#: rather than handed to a decompressor (or to Lambda) that may not support it.
ALLOWED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_SHOWN_NAME_CHARS = 80
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# What zipfile raises on malformed archives besides BadZipFile.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class Bundle:
    manifest: Manifest
    package: bytes


def shown(name: str) -> str:
    """An attacker-chosen name, quoted and cut short enough for a log line or a notification."""
    if len(name) <= _SHOWN_NAME_CHARS:
        return repr(name)
    return repr(name[:_SHOWN_NAME_CHARS]) + f"... ({len(name)} characters)"


def open_bundle(data: bytes, source: str, *, max_bytes: int = MAX_BUNDLE_BYTES) -> Bundle:
    """Check and unpack a bundle; every refusal names ``source`` and the problem."""
    if not data:
        raise BundleInvalidError(f"{source}: the object is empty")
    if len(data) > max_bytes:
        raise BundleInvalidError(f"{source}: {len(data)} bytes exceeds the bundle limit of {max_bytes}")
    archive = _open_zip(data, source)
    with archive:
        infos = archive.infolist()
        _check_entries(
            infos, source, max_entries=MAX_BUNDLE_ENTRIES, max_unzipped=MAX_PACKAGE_UNZIPPED_BYTES + MAX_MANIFEST_BYTES
        )
        names = {info.filename for info in infos}
        if MANIFEST_NAME not in names:
            raise ManifestInvalidError(f"{source}: {MANIFEST_NAME} is missing")
        if PACKAGE_NAME not in names:
            raise BundleInvalidError(f"{source}: {PACKAGE_NAME} is missing")
        unexpected = sorted(names - {MANIFEST_NAME, PACKAGE_NAME})
        if unexpected:
            raise BundleInvalidError(f"{source}: unexpected entries [{', '.join(shown(n) for n in unexpected)}]")
        if archive.getinfo(MANIFEST_NAME).file_size > MAX_MANIFEST_BYTES:
            raise ManifestInvalidError(f"{source}: {MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
        manifest = _parse_manifest(_read(archive, MANIFEST_NAME, source), source)
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
        if not any(not info.is_dir() for info in inner.infolist()):
            # Lambda refuses it too ("Uploaded file must be a non-empty zip"), but only once Deploy tries.
            raise BundleInvalidError(f"{source}!{PACKAGE_NAME}: holds no file: there is no code to deploy")


def _parse_manifest(raw: bytes, source: str) -> Manifest:
    try:
        return Manifest.from_json(raw)
    except ManifestInvalidError as exc:
        raise ManifestInvalidError(f"{source}: {exc}") from exc
    except (RecursionError, ValueError) as exc:
        # json.loads on hostile input: nesting deeper than the interpreter's stack, or an
        # integer longer than Python's 4300-digit conversion limit. Not echoed: it is input.
        raise ManifestInvalidError(f"{source}: {MANIFEST_NAME}: not valid JSON ({type(exc).__name__})") from exc


def _open_zip(data: bytes, source: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        if data.startswith(_ZIP_MAGIC):
            # Starts like a zip but its central directory is missing or damaged: an upload cut short.
            raise BundleInvalidError(f"{source}: truncated or corrupt zip archive ({exc})") from exc
        raise BundleInvalidError(f"{source}: not a zip archive ({exc})") from exc


def _check_entries(infos: list[zipfile.ZipInfo], source: str, *, max_entries: int, max_unzipped: int) -> None:
    if len(infos) > max_entries:
        raise BundleInvalidError(f"{source}: {len(infos)} entries exceeds the limit of {max_entries}")
    total = 0
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise BundleInvalidError(f"{source}: entry {shown(name)} has an absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            raise BundleInvalidError(f"{source}: entry {shown(name)} escapes the archive with '..'")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BundleInvalidError(f"{source}: entry {shown(name)} is a symlink")
        if name in seen:
            # Tools disagree on which copy wins: what was checked need not be what runs.
            raise BundleInvalidError(f"{source}: entry {shown(name)} appears more than once")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise BundleInvalidError(f"{source}: entry {shown(name)} is encrypted")
        if info.compress_type not in ALLOWED_COMPRESSION:
            raise BundleInvalidError(
                f"{source}: entry {shown(name)} uses compression method {info.compress_type}; "
                f"only {' and '.join(ALLOWED_COMPRESSION.values())} are accepted"
            )
        total += info.file_size
        if total > max_unzipped:
            raise BundleInvalidError(f"{source}: uncompressed size exceeds the limit of {max_unzipped} bytes")
        # A member that claims to hold data in no bytes at all is lying about one of its sizes.
        if info.file_size and (info.compress_size == 0 or info.file_size / info.compress_size > MAX_COMPRESSION_RATIO):
            raise BundleInvalidError(
                f"{source}: entry {shown(name)} compression ratio exceeds {MAX_COMPRESSION_RATIO} (zip bomb?)"
            )


def _read(archive: zipfile.ZipFile, name: str, source: str) -> bytes:
    try:
        return archive.read(name)
    except _ZIP_ERRORS as exc:
        raise BundleInvalidError(f"{source}: {name} cannot be read ({exc})") from exc
