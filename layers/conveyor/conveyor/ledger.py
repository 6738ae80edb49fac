"""The deployment ledger: every deployment, every stage it went through, and how it ended.

One DynamoDB table. A deployment is an item ``pk=DEPLOYMENT#<id>, sk=META`` (indexed by app
and creation time for history); each stage transition is an item ``sk=EVENT#<time>#...`` beside
it, with its timing and evidence. DORA metrics and ``conveyor status`` read from here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from conveyor import aws
from conveyor.contracts import Outcome
from conveyor.errors import LedgerError


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
    events: list[StageEvent] = Field(default_factory=list)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()


class Ledger(Protocol):
    def start(self, record: DeploymentRecord) -> DeploymentRecord: ...
    def record_event(self, event: StageEvent) -> None: ...
    def update_environment(self, deployment_id: str, environment: str, fields: dict[str, Any]) -> None: ...
    def finish(self, deployment_id: str, outcome: Outcome, failure: dict[str, Any] | None = None) -> None: ...
    def get(self, deployment_id: str) -> DeploymentRecord | None: ...
    def history(self, app: str | None = None, limit: int = 50) -> list[DeploymentRecord]: ...


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
_RECORD_FIELDS = frozenset(DeploymentRecord.model_fields) - {"events"}


class DynamoLedger:
    """The ledger on DynamoDB (``LEDGER_TABLE``)."""

    def __init__(self, table_name: str) -> None:
        self._table = aws.resource("dynamodb").Table(table_name)

    @staticmethod
    def _pk(deployment_id: str) -> str:
        return f"DEPLOYMENT#{deployment_id}"

    def start(self, record: DeploymentRecord) -> DeploymentRecord:
        """Create the deployment, or count one more attempt of it (a re-run of the same object)."""
        fields = record.model_dump(mode="json", exclude={"events", "attempts", "created_at", "deployment_id"})
        names = {f"#{k}": k for k in fields}
        values = {f":{k}": _to_item(v) for k, v in fields.items()}
        values |= {":one": 1, ":created": record.created_at.isoformat(), ":id": record.deployment_id}
        assignments = ", ".join(f"#{k} = :{k}" for k in fields)
        with self._errors("start"):
            response = self._table.update_item(
                Key={"pk": self._pk(record.deployment_id), "sk": _META},
                UpdateExpression=f"SET {assignments}, created_at = if_not_exists(created_at, :created), "
                "deployment_id = :id ADD attempts :one",
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
        if meta is None or "status" not in meta:
            # Absent, or caught mid-creation (the local cloud applies an update expression non-atomically).
            return None
        events = [StageEvent.model_validate(_from_item(item)) for item in items if item["sk"] != _META]
        return self._record(meta, events=events)

    def history(self, app: str | None = None, limit: int = 50) -> list[DeploymentRecord]:
        with self._errors("history"):
            if app is not None:
                response = self._table.query(
                    IndexName="by-app",
                    KeyConditionExpression="app = :app",
                    ExpressionAttributeValues={":app": app},
                    ScanIndexForward=False,
                    Limit=limit,
                )
                items = response["Items"]
            else:
                items = [item for item in self._scan() if item["sk"] == _META]
        records = [self._record(item, events=[]) for item in items]
        return sorted(records, key=lambda r: r.created_at, reverse=True)[:limit]

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
        return DeploymentRecord.model_validate({**fields, "events": sorted(events, key=lambda e: e.finished_at)})

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise LedgerError(f"ledger {operation} failed: {exc}") from exc


@contextmanager
def timed_stage(
    ledger: Ledger, deployment_id: str, stage: str, environment: str | None = None
) -> Iterator[dict[str, Any]]:
    """Record one stage in the ledger: its timing, status and the ``detail`` the body fills in.

    A stage that raises is recorded as failed with the error, then the error propagates.
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
        ledger.record_event(
            StageEvent(
                deployment_id=deployment_id,
                stage=stage,
                environment=environment,
                status=detail.pop("status", status),
                started_at=started,
                finished_at=finished,
                duration_ms=round((finished - started).total_seconds() * 1000, 1),
                detail=detail,
            )
        )
