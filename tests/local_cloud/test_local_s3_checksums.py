"""A checksum sent with an upload is verified and kept on the local cloud, as on S3 (moto does neither)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError


def _sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


@pytest.fixture
def bucket(aws: Callable[[str], Any]) -> str:
    name = f"checksums-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=name)
    aws("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_an_upload_whose_body_does_not_match_its_checksum_is_refused_and_not_stored(
    aws: Callable[[str], Any], bucket: str
) -> None:
    # When a package is put with the SHA-256 of other content (corrupted on the way, or a lying client)
    with pytest.raises(ClientError) as refused:
        aws("s3").put_object(Bucket=bucket, Key="releases/p.zip", Body=b"PK tampered", ChecksumSHA256=_sha256(b"PK"))
    # Then S3's refusal, and nothing at the key
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError, match="404"):
        aws("s3").head_object(Bucket=bucket, Key="releases/p.zip")


def test_a_checksum_given_with_an_upload_is_kept_with_the_object(aws: Callable[[str], Any], bucket: str) -> None:
    # When a package is put with its own SHA-256 (as ValidateArtifact stores a release)
    body = b"PK package"
    aws("s3").put_object(Bucket=bucket, Key="releases/p.zip", Body=body, ChecksumSHA256=_sha256(body), IfNoneMatch="*")
    # Then HeadObject and GetObject say it, when asked
    head = aws("s3").head_object(Bucket=bucket, Key="releases/p.zip", ChecksumMode="ENABLED")
    got = aws("s3").get_object(Bucket=bucket, Key="releases/p.zip", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == got["ChecksumSHA256"] == _sha256(body)
    assert got["Body"].read() == body
