import io
import json
import stat
import zipfile

import pytest
from conveyor.domain.bundle import open_bundle
from conveyor.domain.errors import BundleInvalidError, DigestMismatchError, ManifestInvalidError
from conveyor.domain.limits import MAX_MANIFEST_BYTES

from tests.fakes import make_bundle, make_manifest, make_package, make_zip

SOURCE = "s3://bucket/artifacts/hello/1.0.0.zip"


def _zip_with_info(info: zipfile.ZipInfo, data: bytes, others: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in others.items():
            archive.writestr(name, content)
        archive.writestr(info, data)
    return buffer.getvalue()


def _bundle_entries() -> dict[str, bytes]:
    package = make_package()
    return {"manifest.json": json.dumps(make_manifest(package)).encode(), "package.zip": package}


def test_good_bundle_opens() -> None:
    # Given a bundle as `conveyor package` builds it
    package = make_package()
    # When it is opened
    bundle = open_bundle(make_bundle(package=package), SOURCE)
    # Then the package is byte-identical and the manifest parsed
    assert bundle.package == package
    assert bundle.manifest.app == "hello"


def test_empty_object_is_rejected() -> None:
    with pytest.raises(BundleInvalidError, match=f"^{SOURCE}: the object is empty"):
        open_bundle(b"", SOURCE)


def test_not_a_zip_is_rejected() -> None:
    with pytest.raises(BundleInvalidError, match=f"^{SOURCE}: not a zip archive"):
        open_bundle(b"PK? this is a tarball, honest", SOURCE)


def test_truncated_zip_is_rejected() -> None:
    # Given a bundle cut off half way through the upload
    data = make_bundle()
    # Then it is refused as a bundle, not a crash
    with pytest.raises(BundleInvalidError, match=SOURCE):
        open_bundle(data[: len(data) // 2], SOURCE)


def test_zip_with_a_corrupt_member_is_rejected() -> None:
    # Given a bundle whose central directory is intact but whose package bytes are damaged
    entries = _bundle_entries()
    data = bytearray(make_zip(entries, compression=zipfile.ZIP_STORED))
    offset = bytes(data).index(entries["package.zip"][:30]) + 40
    data[offset : offset + 8] = b"\x00" * 8
    # Then it is refused naming the entry
    with pytest.raises(BundleInvalidError, match=r"package\.zip cannot be read"):
        open_bundle(bytes(data), SOURCE)


def test_missing_manifest_is_rejected() -> None:
    with pytest.raises(ManifestInvalidError, match=r"manifest\.json is missing"):
        open_bundle(make_zip({"package.zip": make_package()}), SOURCE)


def test_missing_package_is_rejected() -> None:
    package = make_package()
    with pytest.raises(BundleInvalidError, match=r"package\.zip is missing"):
        open_bundle(make_zip({"manifest.json": json.dumps(make_manifest(package)).encode()}), SOURCE)


def test_unexpected_entries_are_rejected_by_name() -> None:
    with pytest.raises(BundleInvalidError, match=r"unexpected entries \['README\.md', 'extra/run\.sh'\]"):
        open_bundle(make_bundle(extra={"README.md": b"hi", "extra/run.sh": b"rm -rf /"}), SOURCE)


def test_too_many_entries_are_rejected() -> None:
    extra = {f"f{i}": b"x" for i in range(10)}
    with pytest.raises(BundleInvalidError, match="entries exceeds the limit of 8"):
        open_bundle(make_bundle(extra=extra), SOURCE)


@pytest.mark.parametrize("name", ["/etc/passwd", "\\windows\\evil", "C:evil.txt"])
def test_absolute_path_entry_is_rejected(name: str) -> None:
    data = make_zip({**_bundle_entries(), name: b"x"})
    with pytest.raises(BundleInvalidError, match="has an absolute path"):
        open_bundle(data, SOURCE)


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "a\\..\\escape"])
def test_dot_dot_entry_is_rejected(name: str) -> None:
    data = make_zip({**_bundle_entries(), name: b"x"})
    with pytest.raises(BundleInvalidError, match=r"escapes the archive with '\.\.'"):
        open_bundle(data, SOURCE)


def test_symlink_entry_is_rejected() -> None:
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = _zip_with_info(link, b"/etc/passwd", _bundle_entries())
    with pytest.raises(BundleInvalidError, match="'link' is a symlink"):
        open_bundle(data, SOURCE)


def test_symlink_inside_the_package_is_rejected() -> None:
    # Given a package whose code contains a symlink (checked after the digest matches)
    link = zipfile.ZipInfo("app.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    package = _zip_with_info(link, b"/etc/passwd", {})
    with pytest.raises(BundleInvalidError, match=r"!package\.zip: entry 'app\.py' is a symlink"):
        open_bundle(make_bundle(package=package), SOURCE)


def test_zip_bomb_is_rejected_by_compression_ratio() -> None:
    # Given a 10 MB entry of zeros that compresses ~1000:1
    bomb = make_zip({**_bundle_entries(), "zeros.bin": b"\0" * 10_000_000})
    assert len(bomb) < 100_000
    with pytest.raises(BundleInvalidError, match=r"'zeros\.bin' compression ratio exceeds 200"):
        open_bundle(bomb, SOURCE)


def test_zip_bomb_inside_the_package_is_rejected() -> None:
    package = make_zip({"app.py": b"x = 1\n", "zeros.bin": b"\0" * 10_000_000})
    with pytest.raises(BundleInvalidError, match=r"!package\.zip: entry 'zeros\.bin' compression ratio"):
        open_bundle(make_bundle(package=package), SOURCE)


def test_sha256_mismatch_is_rejected() -> None:
    # Given a manifest that declares another package's digest
    package = make_package()
    manifest = make_manifest(make_package("2.0.0"))
    manifest["package"]["size"] = len(package)
    with pytest.raises(
        DigestMismatchError, match=r"package\.zip sha256 is [0-9a-f]{64}, manifest package\.sha256 says"
    ):
        open_bundle(make_bundle(package=package, manifest=manifest), SOURCE)


def test_size_mismatch_is_rejected() -> None:
    package = make_package()
    manifest = make_manifest(package)
    manifest["package"]["size"] = len(package) + 1
    with pytest.raises(DigestMismatchError, match=rf"is {len(package)} bytes, manifest package\.size says"):
        open_bundle(make_bundle(package=package, manifest=manifest), SOURCE)


def test_package_that_is_not_a_zip_is_rejected() -> None:
    # Given a correctly declared package that is not a zip Lambda could run
    package = b"#!/bin/sh\necho not a zip\n"
    with pytest.raises(BundleInvalidError, match=rf"^{SOURCE}!package\.zip: not a zip archive"):
        open_bundle(make_bundle(package=package), SOURCE)


@pytest.mark.parametrize("entries", [{}, {"src/": b""}], ids=["no entry", "a folder only"])
def test_package_that_holds_no_file_is_rejected(entries: dict[str, bytes]) -> None:
    # Given a correctly declared package.zip with nothing to run in it (Lambda refuses it only at Deploy)
    package = make_zip(entries)
    with pytest.raises(BundleInvalidError, match=rf"^{SOURCE}!package\.zip: holds no file: there is no code"):
        open_bundle(make_bundle(package=package), SOURCE)


def test_manifest_that_is_not_json_is_rejected() -> None:
    data = make_zip({"manifest.json": b"app: hello", "package.zip": make_package()})
    with pytest.raises(ManifestInvalidError, match="not valid JSON"):
        open_bundle(data, SOURCE)


def test_oversized_manifest_is_rejected() -> None:
    package = make_package()
    manifest = make_manifest(package)
    manifest["padding"] = "x" * 70_000
    data = make_zip({"manifest.json": json.dumps(manifest).encode(), "package.zip": package}, zipfile.ZIP_STORED)
    with pytest.raises(ManifestInvalidError, match=f"larger than {MAX_MANIFEST_BYTES} bytes"):
        open_bundle(data, SOURCE)
