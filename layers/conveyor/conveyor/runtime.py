"""The adapters a stage function runs with, built lazily once per execution environment."""

from __future__ import annotations

from functools import cache

from conveyor.artifacts import S3Artifacts
from conveyor.ledger import DynamoLedger
from conveyor.monitoring import CloudWatchAlarms
from conveyor.notifier import SnsNotifier
from conveyor.settings import settings
from conveyor.targets import LambdaTargets


@cache
def ledger() -> DynamoLedger:
    return DynamoLedger(settings().ledger_table)


@cache
def targets() -> LambdaTargets:
    return LambdaTargets()


@cache
def artifacts() -> S3Artifacts:
    return S3Artifacts()


@cache
def alarms() -> CloudWatchAlarms:
    return CloudWatchAlarms()


@cache
def notifier() -> SnsNotifier:
    return SnsNotifier(settings().notification_topic_arn)
