"""The adapters a stage function runs with, built lazily once per execution environment."""

from __future__ import annotations

from functools import cache

from conveyor.artifacts import S3Artifacts
from conveyor.executions import StepFunctionsExecutions
from conveyor.lambda_metrics import CloudWatchLambdaMetrics
from conveyor.ledger import DynamoLedger, DynamoLocks, DynamoTargetOwners
from conveyor.monitoring import CloudWatchAlarms
from conveyor.notifier import SnsNotifier
from conveyor.probes import UrllibProber
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
    return S3Artifacts(max_bundle_bytes=settings().max_bundle_bytes)


@cache
def alarms() -> CloudWatchAlarms:
    return CloudWatchAlarms()


@cache
def lambda_metrics() -> CloudWatchLambdaMetrics:
    return CloudWatchLambdaMetrics()


@cache
def prober() -> UrllibProber:
    return UrllibProber()


@cache
def notifier() -> SnsNotifier:
    return SnsNotifier(settings().notification_topic_arn)


@cache
def locks() -> DynamoLocks:
    return DynamoLocks(settings().ledger_table)


@cache
def executions() -> StepFunctionsExecutions:
    return StepFunctionsExecutions()


@cache
def target_owners() -> DynamoTargetOwners:
    return DynamoTargetOwners(settings().ledger_table)
