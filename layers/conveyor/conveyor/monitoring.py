"""CloudWatch alarms named in a pipeline's health spec."""

from __future__ import annotations

from typing import Protocol

from conveyor import aws


class Alarms(Protocol):
    def states(self, names: list[str]) -> dict[str, str]:
        """``{alarm name: StateValue}`` for the alarms that exist; a missing alarm is absent."""
        ...


class CloudWatchAlarms:
    def __init__(self) -> None:
        self._cloudwatch = aws.client("cloudwatch")

    def states(self, names: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        # DescribeAlarms accepts at most 100 names per call.
        for start in range(0, len(names), 100):
            paginator = self._cloudwatch.get_paginator("describe_alarms")
            for page in paginator.paginate(
                AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            ):
                for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                    found[alarm["AlarmName"]] = alarm["StateValue"]
        return found
