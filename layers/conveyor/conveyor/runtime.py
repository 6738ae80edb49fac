"""The adapters a stage function runs with, built lazily once per execution environment."""

from __future__ import annotations

from functools import cache

from conveyor.adapters.cloudwatch import CloudWatchAlarms, CloudWatchLambdaMetrics
from conveyor.adapters.dynamodb_ledger import DynamoLedger
from conveyor.adapters.dynamodb_locks import DynamoLocks, DynamoTargetOwners
from conveyor.adapters.http import UrllibProber
from conveyor.adapters.lambda_functions import LambdaTargets
from conveyor.adapters.s3 import S3Artifacts
from conveyor.adapters.sns import SnsNotifier
from conveyor.adapters.stepfunctions import StepFunctionsExecutions
from conveyor.settings import settings


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
