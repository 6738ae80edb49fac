"""The artifact bucket: pushed bundles, registered pipeline specs and extracted releases.

The stages read bundles and specs and store releases; an operator's tools (the CLI) push bundles, register
specs and list what the bucket holds, through the same class. Every object is written SSE-S3 encrypted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from boto3.session import Session
from botocore.exceptions import ClientError

from conveyor.adapters import aws
from conveyor.domain.errors import (
    BundleInvalidError,
    DigestMismatchError,
    PipelineInvalidError,
    PipelineNotFoundError,
    ReleaseStoreError,
)
from conveyor.domain.layout import pipeline_key
from conveyor.domain.limits import MAX_BUNDLE_BYTES, MAX_PIPELINE_SPEC_BYTES
from conveyor.domain.manifest import base64_digest


@dataclass(frozen=True)
class StoredObject:
    """An object version of the bucket: its key, S3 version id (None unversioned), ETag, size and time."""

    key: str
    version_id: str | None
    etag: str | None
    size: int | None = None
    last_modified: datetime | None = None


class S3Artifacts:
    def __init__(self, session: Session, max_bundle_bytes: int = MAX_BUNDLE_BYTES) -> None:
        self._s3 = aws.client(session, "s3")
        self._max_bundle_bytes = max_bundle_bytes

    def read_bundle(self, bucket: str, key: str, version_id: str | None) -> bytes:
        """The exact object version that was pushed (a later push to the same key cannot swap it)."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, **extra)
            if response["ContentLength"] > self._max_bundle_bytes:
                # Refused before the body is read (the stream is closed unread): the function never holds an
                # oversize object.
                response["Body"].close()
                raise BundleInvalidError(
                    f"s3://{bucket}/{key}: {response['ContentLength']} bytes exceeds the bundle limit of "
                    f"{self._max_bundle_bytes}"
                )
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if aws.error_code(exc) in ("NoSuchKey", "404", "NoSuchVersion"):
                raise BundleInvalidError(f"s3://{bucket}/{key}: the pushed object no longer exists") from exc
            raise
        return body

    def read_pipeline(self, bucket: str, app: str) -> bytes:
        key = pipeline_key(app)
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
            if response["ContentLength"] > MAX_PIPELINE_SPEC_BYTES:
                # Refused before the body is read: an oversize spec never reaches the parser or the state.
                raise PipelineInvalidError(
                    f"s3://{bucket}/{key}: {response['ContentLength']} bytes, more than the pipeline spec limit "
                    f"of {MAX_PIPELINE_SPEC_BYTES}"
                )
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if aws.error_code(exc) in ("NoSuchKey", "404"):
                raise PipelineNotFoundError(
                    f"no pipeline is registered for app {app!r} (s3://{bucket}/{key}); "
                    f"run `conveyor pipeline apply pipelines/{app}.yaml`"
                ) from exc
            raise
        return body

    def put_release(self, bucket: str, key: str, package: bytes, sha256_hex: str) -> str | None:
        """Store the package at its content address, only if absent; the S3 version id holding it.

        A conditional put (``If-None-Match: *``) never replaces a stored release. When one is already
        there (the same content pushed as another version, a re-run, a concurrent validation), its
        digest is checked instead, and its version id is the one Deploy reads.
        """
        try:
            response = self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=package,
                ContentType="application/zip",
                ChecksumSHA256=base64_digest(sha256_hex),
                ServerSideEncryption="AES256",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            # 412: the key exists. 409: a concurrent conditional write to it is under way (S3 asks to retry).
            if aws.error_code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise
            return self._stored_release(bucket, key, sha256_hex)
        version_id: str | None = response.get("VersionId")
        return version_id

    def _stored_release(self, bucket: str, key: str, sha256_hex: str, attempts: int = 5) -> str | None:
        """The version id of the release already at ``key``, once its content is checked to be ``sha256_hex``."""
        for _ in range(attempts):
            try:
                head = self._s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            except ClientError as exc:
                if aws.error_code(exc) not in ("NoSuchKey", "404"):
                    raise
                time.sleep(0.2)  # a concurrent write (409) that has not landed yet
                continue
            version_id: str | None = head.get("VersionId")
            stored = head.get("ChecksumSHA256")
            if stored is None:
                # Stored without a checksum (not by Conveyor): read it and hash it.
                extra = {"VersionId": version_id} if version_id else {}
                body = self._s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
                stored = base64_digest(hashlib.sha256(body).hexdigest())
            if stored != base64_digest(sha256_hex):
                raise DigestMismatchError(
                    f"s3://{bucket}/{key} (version {version_id}) already holds content whose sha256 is not "
                    f"{sha256_hex}: the release store was changed outside Conveyor; nothing was deployed"
                )
            return version_id
        raise ReleaseStoreError(f"s3://{bucket}/{key}: a concurrent write of this release never became readable")

    def put_bundle(self, bucket: str, key: str, bundle: bytes) -> StoredObject:
        """Push a bundle (its Object Created event starts the deployment)."""
        response = self._s3.put_object(
            Bucket=bucket, Key=key, Body=bundle, ContentType="application/zip", ServerSideEncryption="AES256"
        )
        return StoredObject(key, response.get("VersionId"), response.get("ETag"), len(bundle))

    def put_pipeline(self, bucket: str, app: str, spec: bytes) -> StoredObject:
        """Register ``app``'s pipeline spec (the caller has validated it)."""
        key = pipeline_key(app)
        response = self._s3.put_object(
            Bucket=bucket, Key=key, Body=spec, ContentType="application/yaml", ServerSideEncryption="AES256"
        )
        return StoredObject(key, response.get("VersionId"), response.get("ETag"), len(spec))

    def head(self, bucket: str, key: str) -> StoredObject:
        head = self._s3.head_object(Bucket=bucket, Key=key)
        return StoredObject(
            key, head.get("VersionId"), head.get("ETag"), head.get("ContentLength"), head.get("LastModified")
        )

    def listed(self, bucket: str, prefix: str) -> Iterator[StoredObject]:
        """The current objects under ``prefix``, page by page (no version ids: ListObjectsV2 gives none)."""
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"], None, item.get("ETag"), item.get("Size"), item.get("LastModified"))

    def pipeline_versions(self, bucket: str, app: str) -> Iterator[StoredObject]:
        """Every stored version of ``app``'s pipeline spec (the bucket is versioned), in S3's order."""
        key = pipeline_key(app)
        for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Versions", []):
                if item["Key"] == key:
                    yield StoredObject(key, item["VersionId"], item.get("ETag"), item.get("Size"), item["LastModified"])

    def read_version(self, bucket: str, stored: StoredObject) -> bytes:
        extra = {"VersionId": stored.version_id} if stored.version_id else {}
        body: bytes = self._s3.get_object(Bucket=bucket, Key=stored.key, **extra)["Body"].read()
        return body
