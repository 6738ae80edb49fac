"""S3: bucket policies with their conditions evaluated, and checksums given with an upload verified and kept.

``moto.s3.models.FakeBucket.get_permission(self, action, resource)``
    moto enforces bucket policies but ignores their ``Condition`` blocks, so the template's standard
    "Deny s3:* when aws:SecureTransport is false" statement denies every object request. We evaluate
    the conditions we understand (``aws:SecureTransport`` holds as true: SDKs use TLS on AWS, the
    local loopback hop is plain HTTP) and leave out statements whose conditions we cannot evaluate,
    then let moto's ``IAMPolicy`` (relied on: ``moto.iam.access_control.IAMPolicy``) decide.

``moto.s3.responses.S3Response._get_checksum(self, response_headers)``
    A checksum the client computed and sent in a header (``x-amz-checksum-sha256: ...``, as ``PutObject`` with
    ``ChecksumSHA256`` does) is, on AWS, verified against the body (a mismatch is refused, ``BadDigest``: nothing
    is stored) and kept with the object (``HeadObject``/``GetObject`` with ``ChecksumMode=ENABLED`` return it).
    moto verifies nothing (its own TODO), and keeps the value only when the SDK also sent
    ``x-amz-sdk-checksum-algorithm``, which it does not for a value it was given. We verify and keep SHA-256,
    SHA-1 and CRC32 values (those moto can compute exactly: its CRC32C and CRC64NVME fall back to CRC32 without
    optional libraries), and leave every other request to moto's own. Conveyor stores each release at its
    content address with its SHA-256 this way, and trusts what ``HeadObject`` says is there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from conveyor_local.moto_patches.registry import original, patches, relies_on, resolve_dotted

LOG = logging.getLogger(__name__)

#: condition (operator, key) -> its value on every local request
_KNOWN_CONDITIONS: Mapping[tuple[str, str], str] = {("bool", "aws:securetransport"): "true"}


def _condition_holds(condition: Mapping[str, Any] | None) -> bool | None:
    """True/False when every clause is one we can evaluate; None when one is not."""
    if not condition:
        return True
    for operator, clauses in condition.items():
        for key, expected in clauses.items():
            actual = _KNOWN_CONDITIONS.get((operator.lower(), key.lower()))
            if actual is None:
                return None
            values = expected if isinstance(expected, list) else [expected]
            if actual not in {str(value).lower() for value in values}:
                return False
    return True


def effective_bucket_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The statements of ``policy`` that apply to a local request (conditions evaluated as described above)."""
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        holds = _condition_holds(statement.get("Condition"))
        if holds is None:
            LOG.warning("bucket policy statement %s has conditions the local cloud ignores", statement.get("Sid"))
        elif holds:
            kept.append({key: value for key, value in statement.items() if key != "Condition"})
    return {**policy, "Statement": kept}


def _bucket_get_permission(self: Any, action: str, resource: str) -> Any:
    """Replacement for ``FakeBucket.get_permission``: bucket policies with their conditions evaluated."""
    access_control = resolve_dotted("moto.iam.access_control")
    if self.policy is None:
        return access_control.PermissionResult.NEUTRAL
    raw = self.policy.decode() if isinstance(self.policy, bytes) else str(self.policy)
    policy = effective_bucket_policy(json.loads(raw))
    return access_control.IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)


patches("moto.s3.models.FakeBucket.get_permission", ("self", "action", "resource"), _bucket_get_permission)
relies_on("moto.iam.access_control.IAMPolicy.is_action_permitted", ("self", "action", "resource"))


#: The checksum headers a client may send with an upload, and the algorithm each carries (those verified here).
_CHECKSUM_HEADERS: Mapping[str, str] = {
    "x-amz-checksum-sha256": "SHA256",
    "x-amz-checksum-sha1": "SHA1",
    "x-amz-checksum-crc32": "CRC32",
}
S3_GET_CHECKSUM = "moto.s3.responses.S3Response._get_checksum"


def _bad_digest(algorithm: str) -> Exception:
    error_class = resolve_dotted("moto.s3.exceptions.S3ClientError")
    return error_class("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")


def _get_checksum(self: Any, response_headers: dict[str, Any]) -> tuple[str, str | None]:
    """Replacement for ``S3Response._get_checksum``: a checksum given in a header is verified against the body and
    kept with the object, as S3 does."""
    named = str(self.headers.get("x-amz-sdk-checksum-algorithm") or "").upper()
    given = next(
        (
            (algorithm, str(self.headers[header]))
            for header, algorithm in _CHECKSUM_HEADERS.items()
            if self.headers.get(header)
        ),
        None,
    )
    if given is None or (named and named != given[0]):
        return original(S3_GET_CHECKSUM)(self, response_headers)
    algorithm, value = given
    compute = resolve_dotted("moto.s3.utils.compute_checksum")
    if compute(self.body or b"", algorithm=algorithm).decode("utf-8") != value:
        raise _bad_digest(algorithm)
    response_headers[f"x-amz-checksum-{algorithm.lower()}"] = value
    return algorithm, value


patches(S3_GET_CHECKSUM, ("self", "response_headers"), _get_checksum)
relies_on("moto.s3.utils.compute_checksum", ("body", "algorithm", "encode_base64"))
relies_on("moto.s3.exceptions.S3ClientError")
