"""The adapters a stage function runs with, built lazily once per execution environment.

One boto3 session serves them all (credentials and region from Lambda's environment); nothing is built at
import time, and a handler builds only the adapters it asks for. Nor is anything imported for them: an
adapter's module (and the models it reads and writes) is imported when the adapter is first built, so a
cold start loads only what the stage it serves uses. The CLI builds its own adapters from its own session
(``conveyor_cli.context.Cloud``).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from boto3.session import Session

from conveyor.settings import settings

if TYPE_CHECKING:
    from conveyor.adapters.cloudwatch import CloudWatchAlarms, CloudWatchLambdaMetrics
    from conveyor.adapters.dynamodb_freezes import DynamoFreezes
    from conveyor.adapters.dynamodb_ledger import DynamoLedger
    from conveyor.adapters.dynamodb_locks import DynamoLocks, DynamoTargetOwners
    from conveyor.adapters.elasticbeanstalk import BeanstalkTargets
    from conveyor.adapters.eventbridge import EventBridgeBus
    from conveyor.adapters.http import UrllibProber
    from conveyor.adapters.lambda_functions import LambdaTargets
    from conveyor.adapters.s3 import S3Artifacts
    from conveyor.adapters.sns import SnsNotifier
    from conveyor.adapters.stepfunctions import StepFunctionsExecutions


@cache
def session() -> Session:
    return Session()


@cache
def ledger() -> DynamoLedger:
    from conveyor.adapters.dynamodb_ledger import DynamoLedger

    return DynamoLedger(session(), settings().ledger_table)


@cache
def targets() -> LambdaTargets:
    from conveyor.adapters.lambda_functions import LambdaTargets

    return LambdaTargets(session())


@cache
def beanstalk() -> BeanstalkTargets:
    from conveyor.adapters.elasticbeanstalk import BeanstalkTargets

    return BeanstalkTargets(session())


@cache
def artifacts() -> S3Artifacts:
    from conveyor.adapters.s3 import S3Artifacts

    return S3Artifacts(session(), max_bundle_bytes=settings().max_bundle_bytes)


@cache
def alarms() -> CloudWatchAlarms:
    from conveyor.adapters.cloudwatch import CloudWatchAlarms

    return CloudWatchAlarms(session())


@cache
def lambda_metrics() -> CloudWatchLambdaMetrics:
    from conveyor.adapters.cloudwatch import CloudWatchLambdaMetrics

    return CloudWatchLambdaMetrics(session())


@cache
def prober() -> UrllibProber:
    from conveyor.adapters.http import UrllibProber

    return UrllibProber()


@cache
def notifier() -> SnsNotifier:
    from conveyor.adapters.sns import SnsNotifier

    return SnsNotifier(session(), settings().notification_topic_arn)


@cache
def locks() -> DynamoLocks:
    from conveyor.adapters.dynamodb_locks import DynamoLocks

    return DynamoLocks(session(), settings().ledger_table)


@cache
def executions() -> StepFunctionsExecutions:
    from conveyor.adapters.stepfunctions import StepFunctionsExecutions

    return StepFunctionsExecutions(session())


@cache
def target_owners() -> DynamoTargetOwners:
    from conveyor.adapters.dynamodb_locks import DynamoTargetOwners

    return DynamoTargetOwners(session(), settings().ledger_table)


@cache
def freezes() -> DynamoFreezes:
    from conveyor.adapters.dynamodb_freezes import DynamoFreezes

    return DynamoFreezes(session(), settings().ledger_table)


@cache
def event_bus() -> EventBridgeBus:
    from conveyor.adapters.eventbridge import EventBridgeBus
    from conveyor.domain.errors import ConfigurationError

    name = settings().event_bus_name
    if not name:
        raise ConfigurationError("invalid stage function environment: EVENT_BUS_NAME is not set")
    return EventBridgeBus(session(), name)
