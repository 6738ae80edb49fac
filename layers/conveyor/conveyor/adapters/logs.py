"""CloudWatch Logs: what the stage functions logged about a deployment (read by ``conveyor logs``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from boto3.session import Session

from conveyor.adapters import aws


class CloudWatchLogs:
    def __init__(self, session: Session) -> None:
        self._logs = aws.client(session, "logs")

    def function_events(
        self, function_name: str, *, start: datetime, end: datetime, text: str
    ) -> Iterator[dict[str, Any]]:
        """The events of the Lambda function's log group between ``start`` and ``end`` that contain ``text``,
        oldest first, page by page (raises botocore's errors; a group not created yet is ResourceNotFound)."""
        request: dict[str, Any] = {
            "logGroupName": f"/aws/lambda/{function_name}",
            "startTime": int(start.timestamp() * 1000),
            "endTime": int(end.timestamp() * 1000),
            "filterPattern": f'"{text}"',
        }
        while True:
            response = self._logs.filter_log_events(**request)
            yield from response.get("events", [])
            token = response.get("nextToken")
            if not token:
                return
            request["nextToken"] = token
