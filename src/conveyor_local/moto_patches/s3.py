"""S3: bucket policies with their conditions evaluated.

``moto.s3.models.FakeBucket.get_permission(self, action, resource)``
    moto enforces bucket policies but ignores their ``Condition`` blocks, so the template's standard
    "Deny s3:* when aws:SecureTransport is false" statement denies every object request. We evaluate
    the conditions we understand (``aws:SecureTransport`` holds as true: SDKs use TLS on AWS, the
    local loopback hop is plain HTTP) and leave out statements whose conditions we cannot evaluate,
    then let moto's ``IAMPolicy`` (relied on: ``moto.iam.access_control.IAMPolicy``) decide.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from conveyor_local.moto_patches.registry import patches, relies_on, resolve_dotted

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
