"""The deployment ledger: every deployment, every stage it went through, and how it ended.

One DynamoDB table. A deployment is an item ``pk=DEPLOYMENT#<id>, sk=META`` (indexed by app
and creation time for history); each stage transition is an item ``sk=EVENT#<time>#...`` beside
it, with its timing and evidence. DORA metrics and ``conveyor status`` read from here.

Exactly-once: the META item is also the deployment's claim. ``claim`` takes it with a conditional
write (only one execution of an object can own its deployment at a time); the executions that lose
end as skipped duplicates, counted and listed on the META item (``skipped``). Notifications are
claimed too (``sk=NOTICE#<execution>#<kind>``) so a retried or redriven stage never notifies twice.

A version is immutable: ``pk=RELEASE#<app>#<version>, sk=META`` (``ReleaseRecord``) binds an app version
to the sha256 of the package its first deployment carried, taken with one conditional write; and
``pk=SERVED#<function>#<alias>, sk=CURRENT`` (``ServedRelease``) records which release an alias serves,
written whenever Conveyor moves the alias to a release (Lambda version descriptions are immutable and a
version is reused for byte-identical code, so they cannot say it).

Locks live beside the deployments (``DynamoLocks``), one per target function, whatever app or
environment deploys to it: ``pk=LOCK#<function ARN>``, ``sk=HOLDER`` is the lock (holder, its app
and environment, lease expiry, fencing token), ``sk=WAIT#<start time>#<execution>`` its queue.
Each function has one owning pipeline: ``pk=TARGET#<function ARN>, sk=OWNER`` (``DynamoTargetOwners``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor import aws
from conveyor.contracts import Outcome, ServedRelease
from conveyor.errors import LedgerError
from conveyor.observability import logger
from conveyor.versions import BuiltVersion


def utcnow() -> datetime:
    return datetime.now(UTC)


class StageEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment_id: str
    stage: str
    environment: str | None = None
    status: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    detail: dict[str, Any] = Field(default_factory=dict)


class DeploymentRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment_id: str
    app: str
    version: str
    status: Outcome
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    attempts: int = 1
    execution_arn: str | None = None
    artifact: dict[str, Any] = Field(default_factory=dict)
    package_sha256: str | None = None
    pushed_by: str | None = None
    commit_time: datetime | None = None
    environments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    failure: dict[str, Any] | None = None
    built_at: datetime | None = Field(default=None, description="the manifest's created_at (for downgrade checks)")
    skipped_count: int = Field(default=0, description="executions of this object that ended without acting")
    skipped: list[dict[str, Any]] = Field(default_factory=list, description="each skipped execution and why")
    events: list[StageEvent] = Field(default_factory=list)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()


class ReleaseRecord(BaseModel):
    """One app version and the only content it may ever carry (``pk=RELEASE#<app>#<version>``).

    ``first_deployment_id`` took the version (never changes); ``deployment_id`` is the deployment that
    carries it now: the first, or a later push of the same content that made a new attempt after it failed.
    """

    model_config = ConfigDict(frozen=True)

    app: str
    version: str
    sha256: str
    first_deployment_id: str
    deployment_id: str
    claimed_at: datetime = Field(description="not created_at: the by-app index must list deployments only")


class Ledger(Protocol):
    def start(self, record: DeploymentRecord) -> DeploymentRecord: ...
    def record_event(self, event: StageEvent) -> None: ...
    def update_environment(self, deployment_id: str, environment: str, fields: dict[str, Any]) -> None: ...
    def finish(self, deployment_id: str, outcome: Outcome, failure: dict[str, Any] | None = None) -> None: ...
    def get(self, deployment_id: str) -> DeploymentRecord | None: ...
    def history(
        self, app: str | None = None, limit: int = 50, status: Outcome | None = None
    ) -> list[DeploymentRecord]: ...
    def claim(self, seed: DeploymentRecord, *, replaceable: Collection[Outcome], stale_owner: str | None) -> bool: ...
    def record_skip(self, deployment_id: str, entry: dict[str, Any]) -> None: ...
    def set_status(
        self,
        deployment_id: str,
        status: Outcome,
        *,
        owner: str,
        expected: Collection[Outcome],
        fields: dict[str, Any] | None = None,
    ) -> bool: ...
    def set_fields(self, deployment_id: str, fields: dict[str, Any]) -> None: ...
    def claim_notice(self, deployment_id: str, key: str, *, now: float, lease_seconds: float) -> str | None: ...
    def record_notice(self, deployment_id: str, key: str, message_id: str) -> None: ...
    def claim_release(self, release: ReleaseRecord) -> ReleaseRecord: ...
    def move_release(self, app: str, version: str, *, carrier: str, to: str) -> bool: ...
    def record_served(self, served: ServedRelease) -> None: ...
    def forget_served(self, function_name: str, alias: str) -> None: ...
    def served(self, function_name: str, alias: str) -> ServedRelease | None: ...


def _to_item(value: Any) -> Any:
    """JSON-shaped data as DynamoDB accepts it (numbers as ``Decimal``)."""
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def _from_item(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_item(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_item(v) for v in value]
    return value


_META = "META"
_DEPLOYMENT_PREFIX = "DEPLOYMENT#"
_EVENT_PREFIX = "EVENT#"
_NOTICE_PREFIX = "NOTICE#"
_RECORD_FIELDS = frozenset(DeploymentRecord.model_fields) - {"events"}
_SERVED_SK = "CURRENT"


def served_key(function_name: str, alias: str) -> str:
    """The partition key of what ``function_name:alias`` serves (one item per target alias)."""
    return f"SERVED#{function_name}#{alias}"


NOTICE_IN_FLIGHT = ""
"""``claim_notice``'s answer while another try holds the notice's lease and has not recorded a publication."""


def _condition_failed(exc: ClientError) -> bool:
    return aws.error_code(exc) == "ConditionalCheckFailedException"


def _update_if(table: Any, **update: Any) -> dict[str, Any] | None:
    """``update_item`` whose ``ConditionExpression`` may not hold: the response, or None when it did not."""
    try:
        response: dict[str, Any] = table.update_item(**update)
    except ClientError as exc:
        if _condition_failed(exc):
            return None
        raise
    return response


class DynamoLedger:
    """The ledger on DynamoDB (``LEDGER_TABLE``)."""

    def __init__(self, table_name: str) -> None:
        self._table = aws.resource("dynamodb").Table(table_name)

    @staticmethod
    def _pk(deployment_id: str) -> str:
        return f"DEPLOYMENT#{deployment_id}"

    def start(self, record: DeploymentRecord) -> DeploymentRecord:
        """Create the deployment, or count one more attempt of it (a re-run of the same object).

        Attempts are counted as the set of executions that started the deployment, so a retried or
        redriven stage of the same execution is not a new attempt.
        """
        fields = record.model_dump(
            mode="json",
            # Kept from the claim and from skipped executions, never reset by a (re)start.
            exclude={"events", "attempts", "created_at", "deployment_id", "skipped", "skipped_count", "built_at"},
        )
        names = {f"#{k}": k for k in fields}
        values = {f":{k}": _to_item(v) for k, v in fields.items()}
        values |= {
            ":me": {record.execution_arn or "-"},
            ":created": record.created_at.isoformat(),
            ":id": record.deployment_id,
        }
        assignments = ", ".join(f"#{k} = :{k}" for k in fields)
        with self._errors("start"):
            response = self._table.update_item(
                Key={"pk": self._pk(record.deployment_id), "sk": _META},
                UpdateExpression=f"SET {assignments}, created_at = if_not_exists(created_at, :created), "
                "deployment_id = :id ADD attempt_executions :me",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        return self._record(response["Attributes"], events=[])

    def record_event(self, event: StageEvent) -> None:
        item = _to_item(event.model_dump(mode="json"))
        item |= {
            "pk": self._pk(event.deployment_id),
            "sk": f"EVENT#{event.finished_at.isoformat()}#{event.stage}#{event.environment or '-'}",
        }
        with self._errors("record_event"):
            self._table.put_item(Item=item)

    def update_environment(self, deployment_id: str, environment: str, fields: dict[str, Any]) -> None:
        key = {"pk": self._pk(deployment_id), "sk": _META}
        names = {"#envs": "environments", "#env": environment}
        field_names = {f"#f{i}": name for i, name in enumerate(fields)}
        with self._errors("update_environment"):
            # A map member must exist before its own members can be set.
            self._table.update_item(
                Key=key,
                UpdateExpression="SET #envs.#env = if_not_exists(#envs.#env, :empty), updated_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":empty": {}, ":now": utcnow().isoformat()},
            )
            self._table.update_item(
                Key=key,
                UpdateExpression="SET " + ", ".join(f"#envs.#env.{name} = :v{i}" for i, name in enumerate(field_names)),
                ExpressionAttributeNames=names | field_names,
                ExpressionAttributeValues={f":v{i}": _to_item(value) for i, value in enumerate(fields.values())},
            )

    def finish(self, deployment_id: str, outcome: Outcome, failure: dict[str, Any] | None = None) -> None:
        now = utcnow().isoformat()
        with self._errors("finish"):
            self._table.update_item(
                Key={"pk": self._pk(deployment_id), "sk": _META},
                UpdateExpression="SET #status = :status, finished_at = :now, updated_at = :now, failure = :failure",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":status": outcome.value, ":now": now, ":failure": _to_item(failure)},
            )

    def get(self, deployment_id: str) -> DeploymentRecord | None:
        with self._errors("get"):
            items = list(
                self._query(
                    KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": self._pk(deployment_id)}
                )
            )
        meta = next((item for item in items if item["sk"] == _META), None)
        if meta is None or "status" not in meta or "app" not in meta:
            # Absent, or caught mid-creation (the local cloud applies an update expression non-atomically).
            return None
        events = [StageEvent.model_validate(_from_item(item)) for item in items if item["sk"].startswith(_EVENT_PREFIX)]
        return self._record(meta, events=events)

    def history(self, app: str | None = None, limit: int = 50, status: Outcome | None = None) -> list[DeploymentRecord]:
        """The newest ``limit`` deployments (of ``app``, with ``status``), newest first.

        A status filter pages through the index until enough match: DynamoDB applies ``Limit``
        before ``FilterExpression``, so one page could hold none of the wanted records.
        """
        with self._errors("history"):
            if app is not None:
                query: dict[str, Any] = {
                    "IndexName": "by-app",
                    "KeyConditionExpression": "app = :app",
                    "ExpressionAttributeValues": {":app": app},
                    "ScanIndexForward": False,
                }
                if status is not None:
                    query["FilterExpression"] = "#status = :status"
                    query["ExpressionAttributeNames"] = {"#status": "status"}
                    query["ExpressionAttributeValues"] |= {":status": status.value}
                items = list(itertools.islice(self._query(**query), limit))
            else:
                items = [
                    item
                    for item in self._scan()
                    if item["sk"] == _META
                    and str(item["pk"]).startswith(_DEPLOYMENT_PREFIX)
                    and (status is None or item.get("status") == status.value)
                ]
        records = [self._record(item, events=[]) for item in items]
        return sorted(records, key=lambda r: r.created_at, reverse=True)[:limit]

    def claim(self, seed: DeploymentRecord, *, replaceable: Collection[Outcome], stale_owner: str | None) -> bool:
        """Make ``seed.execution_arn`` the deployment's owner; False if another execution owns it.

        Taken when the deployment is new, ended in one of ``replaceable`` (a new attempt: its
        environments and failure are cleared), is already owned by this execution (a retry), or is
        owned by ``stale_owner`` (an execution known to have stopped without ending it).
        """
        owner = seed.execution_arn or ""
        names = {"#status": "status", "#owner": "execution_arn"}
        values: dict[str, Any] = {
            ":me": owner,
            ":stale": stale_owner or owner,
            ":running": Outcome.IN_PROGRESS.value,
            ":now": utcnow().isoformat(),
            ":created": seed.created_at.isoformat(),
            ":id": seed.deployment_id,
            ":app": seed.app,
            ":version": seed.version,
            ":artifact": _to_item(seed.artifact),
            ":pushed_by": seed.pushed_by,
            ":empty": {},
        }
        statuses = []
        for i, outcome in enumerate(replaceable):
            values[f":r{i}"] = outcome.value
            statuses.append(f":r{i}")
        replace = f" OR #status IN ({', '.join(statuses)})" if statuses else ""
        with self._errors("claim"):
            updated = _update_if(
                self._table,
                Key={"pk": self._pk(seed.deployment_id), "sk": _META},
                UpdateExpression="SET #status = :running, #owner = :me, updated_at = :now, deployment_id = :id, "
                "app = :app, version = :version, artifact = :artifact, pushed_by = :pushed_by, "
                "created_at = if_not_exists(created_at, :created), "
                "environments = :empty REMOVE finished_at, failure",
                ConditionExpression=f"attribute_not_exists(pk) OR #owner IN (:me, :stale){replace}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        return updated is not None

    def record_skip(self, deployment_id: str, entry: dict[str, Any]) -> None:
        """List a skipped execution on the deployment, once per execution (a retried stage adds nothing)."""
        execution = str(entry.get("execution_arn") or "-")
        with self._errors("record_skip"):
            _update_if(
                self._table,
                Key={"pk": self._pk(deployment_id), "sk": _META},
                UpdateExpression="SET skipped = list_append(if_not_exists(skipped, :none), :entry), updated_at = :now "
                "ADD skipped_count :one, skipped_executions :me_set",
                ConditionExpression="attribute_exists(pk) AND NOT contains(skipped_executions, :me)",
                ExpressionAttributeValues={
                    ":none": [],
                    ":entry": [_to_item(entry)],
                    ":now": utcnow().isoformat(),
                    ":one": 1,
                    ":me": execution,
                    ":me_set": {execution},
                },
            )

    def set_status(
        self,
        deployment_id: str,
        status: Outcome,
        *,
        owner: str,
        expected: Collection[Outcome],
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Move the deployment to ``status`` (with ``fields``, in the same write) if ``owner`` still owns it
        and it is in one of ``expected``."""
        values: dict[str, Any] = {":status": status.value, ":owner": owner, ":now": utcnow().isoformat()}
        values |= {f":e{i}": outcome.value for i, outcome in enumerate(expected)}
        extra = fields or {}
        values |= {f":f{i}": _to_item(value) for i, value in enumerate(extra.values())}
        with self._errors("set_status"):
            updated = _update_if(
                self._table,
                Key={"pk": self._pk(deployment_id), "sk": _META},
                UpdateExpression="SET #status = :status, updated_at = :now"
                + "".join(f", #f{i} = :f{i}" for i in range(len(extra))),
                ConditionExpression=f"execution_arn = :owner AND #status IN "
                f"({', '.join(f':e{i}' for i in range(len(expected)))})",
                ExpressionAttributeNames={"#status": "status"} | {f"#f{i}": name for i, name in enumerate(extra)},
                ExpressionAttributeValues=values,
            )
        return updated is not None

    def set_fields(self, deployment_id: str, fields: dict[str, Any]) -> None:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        with self._errors("set_fields"):
            self._table.update_item(
                Key={"pk": self._pk(deployment_id), "sk": _META},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":v{i}": _to_item(value) for i, value in enumerate(fields.values())},
            )

    def claim_notice(self, deployment_id: str, key: str, *, now: float, lease_seconds: float) -> str | None:
        """Claim the right to publish notice ``key`` for ``lease_seconds``.

        None if claimed now; the earlier message id if it was published; ``NOTICE_IN_FLIGHT`` while
        another try holds an unexpired claim. A claim whose lease ran out without a publication was
        left by a try that crashed (before or after publishing): it is taken over, the one duplicate
        that can only follow a crash in that narrow window.
        """
        key_item = {"pk": self._pk(deployment_id), "sk": f"{_NOTICE_PREFIX}{key}"}
        with self._errors("claim_notice"):
            try:
                self._table.put_item(
                    Item=key_item | {"claimed_at": utcnow().isoformat(), "lease_until": _to_item(now + lease_seconds)},
                    ConditionExpression=(
                        "attribute_not_exists(message_id) AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                    ),
                    ExpressionAttributeValues={":now": _to_item(now)},
                )
            except ClientError as exc:
                if not _condition_failed(exc):
                    raise
                item = self._table.get_item(Key=key_item, ConsistentRead=True).get("Item", {})
                return str(item.get("message_id", NOTICE_IN_FLIGHT))
        return None

    def record_notice(self, deployment_id: str, key: str, message_id: str) -> None:
        with self._errors("record_notice"):
            self._table.update_item(
                Key={"pk": self._pk(deployment_id), "sk": f"{_NOTICE_PREFIX}{key}"},
                UpdateExpression="SET message_id = :id, published_at = :now",
                ExpressionAttributeValues={":id": message_id, ":now": utcnow().isoformat()},
            )

    # --- a version's content, and what each alias serves ---------------------------------------
    @staticmethod
    def _release_key(app: str, version: str) -> dict[str, str]:
        return {"pk": f"RELEASE#{app}#{version}", "sk": _META}

    def claim_release(self, release: ReleaseRecord) -> ReleaseRecord:
        """Bind ``release.version`` to ``release.sha256`` if no deployment did yet; the binding that holds."""
        item = _to_item(release.model_dump(mode="json")) | self._release_key(release.app, release.version)
        with self._errors("claim_release"):
            try:
                self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            except ClientError as exc:
                if not _condition_failed(exc):
                    raise
                stored = self._table.get_item(Key=self._release_key(release.app, release.version), ConsistentRead=True)[
                    "Item"
                ]
                return ReleaseRecord.model_validate(
                    {k: v for k, v in _from_item(stored).items() if k in ReleaseRecord.model_fields}
                )
        return release

    def move_release(self, app: str, version: str, *, carrier: str, to: str) -> bool:
        """Make ``to`` the release's carrier if ``carrier`` still is (one new attempt wins a race)."""
        with self._errors("move_release"):
            updated = _update_if(
                self._table,
                Key=self._release_key(app, version),
                UpdateExpression="SET deployment_id = :to, moved_at = :now",
                ConditionExpression="deployment_id = :carrier",
                ExpressionAttributeValues={":to": to, ":carrier": carrier, ":now": utcnow().isoformat()},
            )
        return updated is not None

    @staticmethod
    def _served_key(function_name: str, alias: str) -> dict[str, str]:
        return {"pk": served_key(function_name, alias), "sk": _SERVED_SK}

    def record_served(self, served: ServedRelease) -> None:
        item = _to_item(served.model_dump(mode="json")) | self._served_key(served.function_name, served.alias)
        with self._errors("record_served"):
            self._table.put_item(Item=item)

    def forget_served(self, function_name: str, alias: str) -> None:
        with self._errors("forget_served"):
            self._table.delete_item(Key=self._served_key(function_name, alias))

    def served(self, function_name: str, alias: str) -> ServedRelease | None:
        with self._errors("served"):
            item = self._table.get_item(Key=self._served_key(function_name, alias), ConsistentRead=True).get("Item")
        if item is None:
            return None
        return ServedRelease.model_validate(
            {k: v for k, v in _from_item(item).items() if k in ServedRelease.model_fields}
        )

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = self._table.query(**kwargs)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _scan(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        while True:
            response = self._table.scan(**kwargs)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @staticmethod
    def _record(item: dict[str, Any], events: list[StageEvent]) -> DeploymentRecord:
        fields = {k: v for k, v in _from_item(item).items() if k in _RECORD_FIELDS}
        fields["attempts"] = max(1, len(item.get("attempt_executions", ())))
        return DeploymentRecord.model_validate({**fields, "events": sorted(events, key=lambda e: e.finished_at)})

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise LedgerError(f"ledger {operation} failed: {exc}") from exc


@contextmanager
def timed_stage(
    ledger: Ledger, deployment_id: str, stage: str, environment: str | None = None, *, quiet: bool = False
) -> Iterator[dict[str, Any]]:
    """Record one stage in the ledger: its timing, status and the ``detail`` the body fills in.

    A stage that raises is recorded as failed with the error, then the error propagates. ``quiet``:
    a ledger that cannot take the record is logged, not raised (for a stage whose result matters
    more than its record, such as a health verdict on the way to a rollback; the reconciler fills
    in what is missing once the execution ends).
    """
    started = utcnow()
    detail: dict[str, Any] = {}
    status = "succeeded"
    try:
        yield detail
    except Exception as exc:
        status = "failed"
        detail["error"] = type(exc).__name__
        detail["reason"] = str(exc)
        raise
    finally:
        finished = utcnow()
        event = StageEvent(
            deployment_id=deployment_id,
            stage=stage,
            environment=environment,
            status=detail.pop("status", status),
            started_at=started,
            finished_at=finished,
            duration_ms=round((finished - started).total_seconds() * 1000, 1),
            detail=detail,
        )
        if quiet:
            record_quietly(ledger, event)
        else:
            ledger.record_event(event)


def record_quietly(ledger: Ledger, event: StageEvent) -> bool:
    """Write a stage event; False (logged, not raised) when the ledger cannot take it."""
    try:
        ledger.record_event(event)
    except LedgerError as exc:
        logger.error("could not record a stage event", extra={"stage": event.stage, "error": str(exc)})
        return False
    return True


# --- locks -------------------------------------------------------------------------------
class LockState(BaseModel):
    """The lock of one target function: who holds it, until when, and its fencing token."""

    model_config = ConfigDict(frozen=True)

    holder: str | None = Field(default=None, description="the holding execution's ARN; None when free")
    deployment_id: str | None = None
    app: str | None = Field(default=None, description="the holder's app (for status and history)")
    environment: str | None = Field(default=None, description="the holder's environment of that app")
    token: int = Field(default=0, description="incremented on every acquisition; never reused")
    expires_at: float = Field(default=0.0, description="lease end, epoch seconds")

    def free_at(self, now: float) -> bool:
        return self.holder is None or self.expires_at < now


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Waiter(BaseModel):
    """One execution waiting in a target's queue; ``key`` is its arrival (start time, then execution ARN)."""

    model_config = ConfigDict(frozen=True)

    key: str
    holder: str
    deployment_id: str
    app: str
    environment: str
    version: str
    built_at: datetime | None = Field(default=None, description="the release's build time (version_order: build_time)")
    committed_at: datetime | None = None
    first_seen: float
    last_seen: float
    superseded_by: str | None = None

    @property
    def built_version(self) -> BuiltVersion:
        """The waiter's place in the version order (a waiter stored without a build time sorts as built at 0)."""
        return BuiltVersion(version=self.version, built_at=self.built_at or _EPOCH, committed_at=self.committed_at)


class LockTable(Protocol):
    """One lock and one queue per target, keyed by the function's canonical ARN (``FunctionId.arn``)."""

    def get(self, target: str) -> LockState | None: ...
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
    ) -> int | None: ...
    def renew(self, target: str, *, holder: str, token: int, lease_seconds: int, now: float) -> bool: ...
    def release(self, target: str, holder: str) -> bool: ...
    def enqueue(self, target: str, waiter: Waiter) -> None: ...
    def waiters(self, target: str) -> list[Waiter]: ...
    def supersede(self, target: str, key: str, by: str) -> None: ...
    def remove_waiter(self, target: str, key: str) -> None: ...


_HOLDER = "HOLDER"
_WAIT_PREFIX = "WAIT#"
# Stored under other names than the deployment items' ``app``: that attribute keys the by-app index.
_LOCK_ATTRIBUTES = {"app": "lock_app", "environment": "lock_environment"}


def _lock_fields(item: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    data = _from_item(item)
    for field, stored in _LOCK_ATTRIBUTES.items():
        if stored in data:
            data[field] = data.pop(stored)
    return {k: v for k, v in data.items() if k in model.model_fields}


class DynamoLocks:
    """``LockTable`` on the ledger table: every change is one complete, conditional write on one item.

    ``pk=LOCK#<function ARN>``: ``sk=HOLDER`` is the lock, ``sk=WAIT#<key>`` a waiter. A waiter is
    created whole (one ``put_item``) and only ever updated where it still exists, so no reader can
    see a waiter half-written, and a late update never brings a removed waiter back as a husk.
    """

    def __init__(self, table_name: str) -> None:
        self._table = aws.resource("dynamodb").Table(table_name)

    @staticmethod
    def _pk(target: str) -> str:
        return f"LOCK#{target}"

    def get(self, target: str) -> LockState | None:
        with self._errors("get", target):
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
        with self._errors("try_acquire", target):
            response = _update_if(
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
                    ":expires": _to_item(now + lease_seconds),
                    ":at": utcnow().isoformat(),
                    ":one": 1,
                    ":now": _to_item(now),
                    **taken_over,
                },
                ReturnValues="ALL_NEW",
            )
            if response is None:
                return None
        return int(response["Attributes"]["token"])

    def renew(self, target: str, *, holder: str, token: int, lease_seconds: int, now: float) -> bool:
        """Extend the lease if ``holder`` still holds the lock with ``token`` (the fencing check)."""
        with self._errors("renew", target):
            updated = _update_if(
                self._table,
                Key={"pk": self._pk(target), "sk": _HOLDER},
                UpdateExpression="SET expires_at = :expires",
                ConditionExpression="holder = :me AND #token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={
                    ":me": holder,
                    ":token": token,
                    ":expires": _to_item(now + lease_seconds),
                },
            )
        return updated is not None

    def release(self, target: str, holder: str) -> bool:
        """Free the lock if ``holder`` holds it; False (and nothing changed) otherwise."""
        with self._errors("release", target):
            updated = _update_if(
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
        item = _to_item(waiter.model_dump(mode="json", exclude={"key", "superseded_by", "app", "environment"}))
        item |= key | {"lock_app": waiter.app, "lock_environment": waiter.environment}
        with self._errors("enqueue", target):
            try:
                self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
                return
            except ClientError as exc:
                if not _condition_failed(exc):
                    raise
            _update_if(
                self._table,
                Key=key,
                UpdateExpression="SET last_seen = :last",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":last": _to_item(waiter.last_seen)},
            )

    def waiters(self, target: str) -> list[Waiter]:
        """The queue in arrival order; an item that is not a whole waiter is skipped (and logged), never fatal."""
        with self._errors("waiters", target):
            items = list(
                self._query(
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :wait)",
                    ExpressionAttributeValues={":pk": self._pk(target), ":wait": _WAIT_PREFIX},
                    ConsistentRead=True,
                )
            )
        waiters = []
        for item in items:
            data = _lock_fields(item, Waiter) | {"key": str(item["sk"]).removeprefix(_WAIT_PREFIX)}
            try:
                waiters.append(Waiter.model_validate(data))
            except ValidationError:
                logger.warning("skipped a partial lock waiter", extra={"target": target, "sk": item["sk"]})
        return sorted(waiters, key=lambda w: w.key)

    def supersede(self, target: str, key: str, by: str) -> None:
        """Mark a waiter superseded, only if it is still a whole waiter not already superseded."""
        with self._errors("supersede", target):
            _update_if(
                self._table,
                Key={"pk": self._pk(target), "sk": _WAIT_PREFIX + key},
                UpdateExpression="SET superseded_by = :by",
                ConditionExpression="attribute_exists(holder) AND attribute_not_exists(superseded_by)",
                ExpressionAttributeValues={":by": by},
            )

    def remove_waiter(self, target: str, key: str) -> None:
        with self._errors("remove_waiter", target):
            self._table.delete_item(Key={"pk": self._pk(target), "sk": _WAIT_PREFIX + key})

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = self._table.query(**kwargs)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @contextmanager
    def _errors(self, operation: str, target: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise LedgerError(f"lock {operation} on {target} failed: {exc}") from exc


# --- target ownership ----------------------------------------------------------------------
class TargetClaim(BaseModel):
    """Which app's pipeline (and which of its environments) owns a target function."""

    model_config = ConfigDict(frozen=True)

    target: str = Field(description="the function's canonical ARN")
    app: str
    environment: str
    claimed_at: datetime | None = None


class TargetOwners(Protocol):
    def claim(self, target: str, *, app: str, environment: str) -> TargetClaim | None: ...
    def owner(self, target: str) -> TargetClaim | None: ...
    def release(self, target: str, *, app: str) -> bool: ...


_OWNER = "OWNER"
_CLAIM_ATTEMPTS = 3


class DynamoTargetOwners:
    """``TargetOwners`` on the ledger table: ``pk=TARGET#<function ARN>, sk=OWNER``, written conditionally.

    The first app to claim a function owns it until it lets go (a re-registered pipeline that no
    longer names it); a claim by the same app is idempotent and records its current environment.
    """

    def __init__(self, table_name: str) -> None:
        self._table = aws.resource("dynamodb").Table(table_name)

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
        with self._errors("claim", target):
            for _ in range(_CLAIM_ATTEMPTS):  # the other claim may be let go between our write and our read
                try:
                    self._table.put_item(
                        Item=item,
                        ConditionExpression="attribute_not_exists(pk) OR owner_app = :app",
                        ExpressionAttributeValues={":app": app},
                    )
                    return None
                except ClientError as exc:
                    if not _condition_failed(exc):
                        raise
                other = self.owner(target)
                if other is not None:
                    return other
        raise LedgerError(f"claiming {target} for {app}: its owner kept changing; try again")

    def owner(self, target: str) -> TargetClaim | None:
        with self._errors("owner", target):
            item = self._table.get_item(Key=self._key(target), ConsistentRead=True).get("Item")
        if item is None:
            return None
        data = _from_item(item)
        return TargetClaim(
            target=target,
            app=data["owner_app"],
            environment=data["owner_environment"],
            claimed_at=data.get("claimed_at"),
        )

    def release(self, target: str, *, app: str) -> bool:
        """Let go of ``target`` if ``app`` owns it; False (nothing changed) otherwise."""
        with self._errors("release", target):
            try:
                self._table.delete_item(
                    Key=self._key(target),
                    ConditionExpression="owner_app = :app",
                    ExpressionAttributeValues={":app": app},
                )
            except ClientError as exc:
                if _condition_failed(exc):
                    return False
                raise
        return True

    @contextmanager
    def _errors(self, operation: str, target: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise LedgerError(f"target owner {operation} of {target} failed: {exc}") from exc
