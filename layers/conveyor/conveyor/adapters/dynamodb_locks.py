"""Locks and target owners on the ledger table (``DynamoLocks``, ``DynamoTargetOwners``).

Locks live beside the deployments, one per target function, whatever app or environment deploys to it:
``pk=LOCK#<function ARN>``, ``sk=HOLDER`` is the lock (holder, its app and environment, lease expiry,
fencing token), ``sk=WAIT#<start time>#<execution>`` its queue. Each function has one owning pipeline:
``pk=TARGET#<function ARN>, sk=OWNER``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection
from typing import Any

from boto3.session import Session
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from conveyor.adapters import aws
from conveyor.adapters.dynamodb import condition_failed, from_item, ledger_errors, query, to_item, update_if
from conveyor.domain.errors import LedgerError
from conveyor.domain.records import LockState, TargetClaim, Waiter
from conveyor.domain.timing import utcnow
from conveyor.observability import logger

_HOLDER = "HOLDER"
_WAIT_PREFIX = "WAIT#"
# Stored under other names than the deployment items' ``app``: that attribute keys the by-app index.
_LOCK_ATTRIBUTES = {"app": "lock_app", "environment": "lock_environment"}


def _lock_fields(item: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    data = from_item(item)
    for field, stored in _LOCK_ATTRIBUTES.items():
        if stored in data:
            data[field] = data.pop(stored)
    return {k: v for k, v in data.items() if k in model.model_fields}


def _waiters(target: str, items: list[dict[str, Any]]) -> list[Waiter]:
    """The waiter items of a lock in arrival order; one that is not a whole waiter is skipped (and logged)."""
    waiters = []
    for item in items:
        data = _lock_fields(item, Waiter) | {"key": str(item["sk"]).removeprefix(_WAIT_PREFIX)}
        try:
            waiters.append(Waiter.model_validate(data))
        except ValidationError:
            logger.warning("skipped a partial lock waiter", extra={"target": target, "sk": item["sk"]})
    return sorted(waiters, key=lambda w: w.key)


class DynamoLocks:
    """``LockTable`` on the ledger table: every change is one complete, conditional write on one item.

    ``pk=LOCK#<function ARN>``: ``sk=HOLDER`` is the lock, ``sk=WAIT#<key>`` a waiter. A waiter is
    created whole (one ``put_item``) and only ever updated where it still exists, so no reader can
    see a waiter half-written, and a late update never brings a removed waiter back as a husk.
    """

    def __init__(self, session: Session, table_name: str) -> None:
        self._table = aws.resource(session, "dynamodb").Table(table_name)

    @staticmethod
    def _pk(target: str) -> str:
        return f"LOCK#{target}"

    def get(self, target: str) -> LockState | None:
        with ledger_errors(f"lock get on {target}"):
            item = self._table.get_item(Key={"pk": self._pk(target), "sk": _HOLDER}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        return LockState.model_validate(_lock_fields(item, LockState))

    def try_acquire(
        self,
        target: str,
        *,
        holder: str,
        deployment_id: str,
        app: str,
        environment: str,
        lease_seconds: int,
        now: float,
        stale: LockState | None = None,
    ) -> int | None:
        """Take the lock if it is free, its lease expired, or it is still exactly ``stale`` (the hold of an
        execution that ended: same holder, same token); the new fencing token, or None if held."""
        condition, taken_over = "attribute_not_exists(holder) OR expires_at < :now", {}
        if stale is not None:
            condition += " OR (holder = :stale AND #token = :stale_token)"
            taken_over = {":stale": stale.holder, ":stale_token": stale.token}
        with ledger_errors(f"lock try_acquire on {target}"):
            response = update_if(
                self._table,
                Key={"pk": self._pk(target), "sk": _HOLDER},
                UpdateExpression="SET holder = :me, deployment_id = :id, lock_app = :app, lock_environment = :env, "
                "expires_at = :expires, acquired_at = :at ADD #token :one",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={
                    ":me": holder,
                    ":id": deployment_id,
                    ":app": app,
                    ":env": environment,
                    ":expires": to_item(now + lease_seconds),
                    ":at": utcnow().isoformat(),
                    ":one": 1,
                    ":now": to_item(now),
                    **taken_over,
                },
                ReturnValues="ALL_NEW",
            )
            if response is None:
                return None
        return int(response["Attributes"]["token"])

    def renew(self, target: str, *, holder: str, token: int, lease_seconds: int, now: float) -> bool:
        """Extend the lease if ``holder`` still holds the lock with ``token`` (the fencing check)."""
        with ledger_errors(f"lock renew on {target}"):
            updated = update_if(
                self._table,
                Key={"pk": self._pk(target), "sk": _HOLDER},
                UpdateExpression="SET expires_at = :expires",
                ConditionExpression="holder = :me AND #token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={
                    ":me": holder,
                    ":token": token,
                    ":expires": to_item(now + lease_seconds),
                },
            )
        return updated is not None

    def release(self, target: str, holder: str) -> bool:
        """Free the lock if ``holder`` holds it; False (and nothing changed) otherwise."""
        with ledger_errors(f"lock release on {target}"):
            updated = update_if(
                self._table,
                Key={"pk": self._pk(target), "sk": _HOLDER},
                UpdateExpression="SET expires_at = :zero, released_at = :at "
                "REMOVE holder, deployment_id, lock_app, lock_environment",
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": holder, ":zero": 0, ":at": utcnow().isoformat()},
            )
        return updated is not None

    def enqueue(self, target: str, waiter: Waiter) -> None:
        """Join the queue (idempotent): a new waiter is written whole; a known one only moves ``last_seen``.

        ``first_seen`` and ``superseded_by`` survive a re-ask. Both writes are conditional, so the
        two can race (a retried AcquireLock, a removal by another waiter) without leaving a partial item.
        """
        key = {"pk": self._pk(target), "sk": _WAIT_PREFIX + waiter.key}
        item = to_item(waiter.model_dump(mode="json", exclude={"key", "superseded_by", "app", "environment"}))
        item |= key | {"lock_app": waiter.app, "lock_environment": waiter.environment}
        with ledger_errors(f"lock enqueue on {target}"):
            try:
                self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
                return
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
            update_if(
                self._table,
                Key=key,
                UpdateExpression="SET last_seen = :last",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":last": to_item(waiter.last_seen)},
            )

    def waiters(self, target: str) -> list[Waiter]:
        """The queue in arrival order; an item that is not a whole waiter is skipped (and logged), never fatal."""
        with ledger_errors(f"lock waiters on {target}"):
            items = list(
                query(
                    self._table,
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :wait)",
                    ExpressionAttributeValues={":pk": self._pk(target), ":wait": _WAIT_PREFIX},
                    ConsistentRead=True,
                )
            )
        return _waiters(target, items)

    def read(self, target: str) -> tuple[LockState | None, list[Waiter]]:
        """The lock and its queue (as ``get`` and ``waiters``) in one consistent read of the lock's partition."""
        with ledger_errors(f"lock read on {target}"):
            items = list(
                query(
                    self._table,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": self._pk(target)},
                    ConsistentRead=True,
                )
            )
        holder = next((item for item in items if item["sk"] == _HOLDER), None)
        lock = None if holder is None else LockState.model_validate(_lock_fields(holder, LockState))
        return lock, _waiters(target, [item for item in items if str(item["sk"]).startswith(_WAIT_PREFIX)])

    def supersede(self, target: str, key: str, by: str) -> None:
        """Mark a waiter superseded, only if it is still a whole waiter not already superseded."""
        with ledger_errors(f"lock supersede on {target}"):
            update_if(
                self._table,
                Key={"pk": self._pk(target), "sk": _WAIT_PREFIX + key},
                UpdateExpression="SET superseded_by = :by",
                ConditionExpression="attribute_exists(holder) AND attribute_not_exists(superseded_by)",
                ExpressionAttributeValues={":by": by},
            )

    def remove_waiter(self, target: str, key: str) -> None:
        with ledger_errors(f"lock remove_waiter on {target}"):
            self._table.delete_item(Key={"pk": self._pk(target), "sk": _WAIT_PREFIX + key})


_OWNER = "OWNER"
_CLAIM_ATTEMPTS = 3
_BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem
_BATCH_GET_ROUNDS = 5  # keys still unprocessed after this many asks: an outage to name, not throttling to wait out


def _backoff(round_: int) -> None:
    """Wait before asking again for unprocessed keys: full jitter, as the SDKs do (at most 0.1, 0.2, 0.4, 0.8 s)."""
    time.sleep(random.uniform(0, 0.05 * 2**round_))  # noqa: S311 - jitter, not a secret


def _claim(item: dict[str, Any]) -> TargetClaim:
    data = from_item(item)
    return TargetClaim(
        target=data["target"],
        app=data["owner_app"],
        environment=data["owner_environment"],
        claimed_at=data.get("claimed_at"),
    )


class DynamoTargetOwners:
    """``TargetOwners`` on the ledger table: ``pk=TARGET#<function ARN>, sk=OWNER``, written conditionally.

    The first app to claim a function owns it until it lets go (a re-registered pipeline that no
    longer names it); a claim by the same app is idempotent and records its current environment.
    """

    def __init__(self, session: Session, table_name: str) -> None:
        self._resource = aws.resource(session, "dynamodb")
        self._table = self._resource.Table(table_name)

    @staticmethod
    def _key(target: str) -> dict[str, str]:
        return {"pk": f"TARGET#{target}", "sk": _OWNER}

    def claim(self, target: str, *, app: str, environment: str) -> TargetClaim | None:
        """Claim ``target`` for ``app``: None when it is now ``app``'s, else the other app's claim."""
        item = self._key(target) | {
            "target": target,
            "owner_app": app,
            "owner_environment": environment,
            "claimed_at": utcnow().isoformat(),
        }
        with ledger_errors(f"target owner claim of {target}"):
            for _ in range(_CLAIM_ATTEMPTS):  # the other claim may be let go between our write and our read
                try:
                    self._table.put_item(
                        Item=item,
                        ConditionExpression="attribute_not_exists(pk) OR owner_app = :app",
                        ExpressionAttributeValues={":app": app},
                    )
                    return None
                except ClientError as exc:
                    if not condition_failed(exc):
                        raise
                other = self.owner(target)
                if other is not None:
                    return other
        raise LedgerError(f"claiming {target} for {app}: its owner kept changing; try again")

    def owner(self, target: str) -> TargetClaim | None:
        with ledger_errors(f"target owner owner of {target}"):
            item = self._table.get_item(Key=self._key(target), ConsistentRead=True).get("Item")
        return None if item is None else _claim(item)

    def owners(self, targets: Collection[str]) -> dict[str, TargetClaim]:
        """The claims on ``targets`` that exist, by target: one consistent ``BatchGetItem`` per 100 targets
        (keys DynamoDB leaves unprocessed under load are asked again, backing off; a ``LedgerError`` if they stay)."""
        claims: dict[str, TargetClaim] = {}
        wanted = list(dict.fromkeys(targets))
        with ledger_errors("target owners"):
            for start in range(0, len(wanted), _BATCH_GET_KEYS):
                keys = [self._key(target) for target in wanted[start : start + _BATCH_GET_KEYS]]
                request: dict[str, Any] = {self._table.name: {"Keys": keys, "ConsistentRead": True}}
                for round_ in range(_BATCH_GET_ROUNDS):
                    if round_:
                        _backoff(round_)
                    response = self._resource.batch_get_item(RequestItems=request)
                    for item in response["Responses"].get(self._table.name, []):
                        claim = _claim(item)
                        claims[claim.target] = claim
                    request = response.get("UnprocessedKeys") or {}
                    if not request:
                        break
                else:
                    left = len(request[self._table.name]["Keys"])
                    raise LedgerError(
                        f"target owners: {left} of {len(keys)} keys still unprocessed after {_BATCH_GET_ROUNDS} asks"
                    )
        return claims

    def release(self, target: str, *, app: str) -> bool:
        """Let go of ``target`` if ``app`` owns it; False (nothing changed) otherwise."""
        with ledger_errors(f"target owner release of {target}"):
            try:
                self._table.delete_item(
                    Key=self._key(target),
                    ConditionExpression="owner_app = :app",
                    ExpressionAttributeValues={":app": app},
                )
            except ClientError as exc:
                if condition_failed(exc):
                    return False
                raise
        return True
