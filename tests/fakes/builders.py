"""Builders for the artifacts CI pushes: a deployable package, its manifest, and the bundle holding both."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile
from typing import Any

import yaml
from conveyor.domain.ports import ExecutionState
from conveyor.domain.records import StageEvent
from conveyor.domain.timing import utcnow

HANDLER_SOURCE = 'def handler(event, context):\n    return {"status": "ok", "version": "%s"}\n'


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_package(version: str = "1.0.0") -> bytes:
    """A deployable Lambda package: ``app.py`` with a handler answering ``{"status": "ok"}``."""
    info = zipfile.ZipInfo("app.py", date_time=(2024, 1, 1, 0, 0, 0))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(info, HANDLER_SOURCE % version)
    return buffer.getvalue()


def make_manifest(package: bytes, app: str = "hello", version: str = "1.0.0", **overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schema_version": 1,
        "app": app,
        "version": version,
        "package": {"sha256": hashlib.sha256(package).hexdigest(), "size": len(package)},
        "created_at": "2024-05-14T09:20:00Z",
        "commit": {"sha": "0123456789abcdef0123456789abcdef01234567", "time": "2024-05-14T09:00:00Z"},
        "build": {"id": "build-42", "url": "https://ci.example.com/builds/42"},
    }
    manifest.update(overrides)
    return manifest


def make_bundle(
    app: str = "hello",
    version: str = "1.0.0",
    *,
    package: bytes | None = None,
    manifest: dict[str, Any] | None = None,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """A real bundle: ``manifest.json`` + ``package.zip`` (and any ``extra`` entries)."""
    package = make_package(version) if package is None else package
    manifest = make_manifest(package, app, version) if manifest is None else manifest
    return make_zip({"manifest.json": json.dumps(manifest).encode(), "package.zip": package, **(extra or {})})


DEFAULT_SPEC: dict[str, Any] = {
    "schema_version": 1,
    "app": "hello",
    "environments": [
        {
            "name": "staging",
            "target": {"kind": "lambda", "function_name": "hello-staging", "alias": "live"},
            "strategy": {"type": "all_at_once"},
            "health": {"synthetic": {"payload": {"ping": True}, "expect": {"status": "ok"}}},
        }
    ],
}


def pipeline_yaml(**changes: Any) -> str:
    """The default pipeline spec (one ``staging`` environment) with top-level keys replaced."""
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec.update(changes)
    return yaml.safe_dump(spec, sort_keys=False)


#: ``CreateTable`` arguments (all but its name) of a table shaped as the template's ledger: ``pk``/``sk`` and the
#: ``by-app`` index.
LEDGER_TABLE_SHAPE: dict[str, Any] = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "app", "created_at")
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by-app",
            "KeySchema": [
                {"AttributeName": "app", "KeyType": "HASH"},
                {"AttributeName": "created_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
}


def described(execution_arn: str, status: str) -> ExecutionState:
    """An execution as Step Functions would describe it, in ``status``."""
    return ExecutionState(
        execution_arn=execution_arn,
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:conveyor",
        name=execution_arn.rsplit(":", 1)[-1],
        status=status,
    )


def stage_event(
    deployment_id: str, stage: str, *, environment: str = "staging", status: str = "succeeded", **detail: Any
) -> StageEvent:
    """A stage event of ``deployment_id``, finished now in a millisecond, with ``detail``."""
    now = utcnow()
    return StageEvent(
        deployment_id=deployment_id,
        stage=stage,
        environment=environment,
        status=status,
        started_at=now,
        finished_at=now,
        duration_ms=1.0,
        detail=detail,
    )
