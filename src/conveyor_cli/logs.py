"""``conveyor logs ID [--stage S]``: a deployment's stage events, and the Lambda log lines its stages wrote.

The events come from the ledger. The log lines come from CloudWatch Logs: the groups of the functions the state
machine's definition invokes (and the reconciler's), filtered to the lines naming the deployment id (every
stage's structured log line carries it as ``correlation_id``) within the deployment's time window. ``--stage``
keeps the events of that stage and the lines it logged (their ``stage`` key).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from conveyor.adapters.logs import CloudWatchLogs
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.timing import utcnow
from pydantic import BaseModel

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud
from conveyor_cli.output import when
from conveyor_cli.status import render_event

WINDOW_MARGIN = timedelta(minutes=2)
"""How far before a deployment's record and after its end log lines are looked for (clock skew, a late retry)."""
MAX_LOG_LINES = 2_000


class LogLine(BaseModel):
    timestamp: datetime
    function_name: str
    stage: str | None = None
    level: str | None = None
    message: str
    fields: dict[str, Any] | None = None
    """The whole structured line, when it was JSON (Powertools' logger writes JSON)."""


class DeploymentLogs(BaseModel):
    deployment_id: str
    stage: str | None
    events: list[StageEvent]
    lines: list[LogLine]
    functions: list[str]
    unreadable: list[str] = []
    """Log groups that could not be read, and why (none is an error: the events still show)."""

    created_at: datetime | None = None


def stage_functions(cloud: Cloud) -> list[str]:
    """The names of the Lambda functions the state machine invokes, and the reconciler's."""
    try:
        definition = operations.executions(cloud).definition(cloud.outputs.state_machine_arn)
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"cannot read the state machine {cloud.outputs.state_machine_arn}: {exc}") from exc
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and node.startswith("arn:") and ":lambda:" in node and ":function:" in node:
            names.add(node.split(":function:", 1)[1].split(":", 1)[0])

    walk(json.loads(definition))
    if cloud.outputs.reconcile_function_name:
        names.add(cloud.outputs.reconcile_function_name)
    return sorted(names)


def parse_line(function_name: str, event: dict[str, Any]) -> LogLine:
    """A CloudWatch Logs event as a log line: its structured fields when it is JSON, the raw text otherwise."""
    text = str(event.get("message", "")).rstrip("\n")
    moment = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, tz=UTC)
    try:
        fields = json.loads(text)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return LogLine(timestamp=moment, function_name=function_name, message=text)
    message = fields.get("message")
    return LogLine(
        timestamp=moment,
        function_name=function_name,
        stage=fields.get("stage"),
        level=fields.get("level"),
        message=message if isinstance(message, str) else json.dumps(message, default=str),
        fields=fields,
    )


def read_lines(cloud: Cloud, function_name: str, deployment_id: str, start: datetime, end: datetime) -> list[LogLine]:
    """The lines of ``function_name`` that name the deployment, less those another deployment logged (a line of
    a duplicate push names the deployment it duplicates, under its own ``correlation_id``)."""
    events = CloudWatchLogs(cloud.session).function_events(function_name, start=start, end=end, text=deployment_id)
    lines = (parse_line(function_name, event) for event in islice(events, MAX_LOG_LINES))
    return [line for line in lines if (line.fields or {}).get("correlation_id") in (None, deployment_id)]


def window(record: DeploymentRecord) -> tuple[datetime, datetime]:
    return record.created_at - WINDOW_MARGIN, (record.finished_at or utcnow()) + WINDOW_MARGIN


def deployment_logs(cloud: Cloud, deployment_id: str, *, stage: str | None = None) -> DeploymentLogs:
    record = operations.ledger(cloud).get(deployment_id)
    if record is None:
        raise CliError(f"deployment {deployment_id} is not in the ledger (check the id with `conveyor history`)")
    events = [e for e in record.events if stage is None or e.stage == stage]
    if stage is not None and not events:
        ran = ", ".join(dict.fromkeys(e.stage for e in record.events)) or "none yet"
        raise CliError(f"deployment {deployment_id} has no {stage!r} stage event (its stages: {ran})")
    start, end = window(record)
    functions = stage_functions(cloud)
    lines: list[LogLine] = []
    unreadable: list[str] = []
    for function in functions:
        try:
            lines += read_lines(cloud, function, deployment_id, start, end)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":  # never invoked: no group
                unreadable.append(f"/aws/lambda/{function}: {exc}")
        except BotoCoreError as exc:
            unreadable.append(f"/aws/lambda/{function}: {exc}")
    if stage is not None:
        lines = [line for line in lines if line.stage == stage]
    lines.sort(key=lambda line: line.timestamp)
    return DeploymentLogs(
        deployment_id=deployment_id,
        stage=stage,
        events=events,
        lines=lines,
        functions=functions,
        unreadable=unreadable,
        created_at=record.created_at,
    )


def render_logs(found: DeploymentLogs) -> str:
    origin = found.created_at.timestamp() if found.created_at else 0.0
    scope = f" (stage {found.stage})" if found.stage else ""
    out = [f"{found.deployment_id}{scope}", "stage events:"]
    out += [render_event(event, origin) for event in found.events] or ["  none"]
    out.append("log lines:")
    for line in found.lines:
        level = f" {line.level}" if line.level else ""
        stage = f" {line.stage}" if line.stage else ""
        out.append(f"  {when(line.timestamp)} {line.function_name}{stage}{level}: {line.message}")
    if not found.lines:
        out.append(f"  none naming {found.deployment_id} in {', '.join(found.functions) or 'no function'}")
    out += [f"  (could not read {problem})" for problem in found.unreadable]
    return "\n".join(out)
