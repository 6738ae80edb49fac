"""The sample app's targets on the local cloud: what a team's own IaC would have created.

Two functions, ``hello-staging`` and ``hello-production``, tagged ``conveyor:managed=true``
(Conveyor may change only such functions), each with alias ``live`` on version 1 of the
first release; a CloudWatch alarm the production health check reads; an SQS queue
subscribed to the notifications topic, standing in for the on-call's email or Slack; the
sample pipeline registered; and a bundle of ``examples/hello`` ready to push.

``conveyor local sample`` runs ``set_up_sample`` (so do ``conveyor demo`` and the end-to-end
tests): idempotent, it creates what is missing and says what already existed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from conveyor.domain.errors import PipelineInvalidError, PipelineNotFoundError
from conveyor.domain.layout import pipeline_key
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.pipeline import PipelineSpec

from conveyor_cli import operations
from conveyor_cli.context import Cloud
from conveyor_cli.packaging import build_bundle, write_bundle, zip_directory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SAMPLE_APP = "hello"
SAMPLE_PIPELINE = EXAMPLES / "pipelines" / "hello.yaml"
SAMPLE_BUNDLE_VERSION = "1.1.0"
ENVIRONMENTS = {"staging": "hello-staging", "production": "hello-production"}
ALARM = "hello-production-errors"
ALIAS = "live"
INBOX_QUEUE = "conveyor-demo-inbox"
EXECUTION_ROLE = "hello-sample-execution"


@dataclass(frozen=True)
class SampleTargets:
    functions: dict[str, str]
    inbox_url: str


@dataclass
class SampleSetup:
    """What ``set_up_sample`` found and did: each resource is in ``created`` or ``existed``."""

    targets: SampleTargets
    pipeline: PipelineSpec | None = None
    bundle: Path | None = None
    created: list[str] = field(default_factory=list)
    existed: list[str] = field(default_factory=list)

    def note(self, resource: str, *, created: bool) -> None:
        (self.created if created else self.existed).append(resource)


def execution_role_arn(iam: Any, name: str = EXECUTION_ROLE) -> str:
    """The target functions' execution role (moto requires one to exist)."""
    return _execution_role(iam, name)[0]


def _execution_role(iam: Any, name: str) -> tuple[str, bool]:
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"]), False
    except ClientError:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]), True


def create_target_function(
    lam: Any, *, name: str, app: str, role: str, code: bytes, release: str, handler: str = "app.handler"
) -> str:
    """A managed target function with alias ``live`` on its first version; returns that version."""
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Architectures=["arm64"],
        Role=role,
        Handler=handler,
        Code={"ZipFile": code},
        Timeout=10,
        Environment={"Variables": {"RELEASE": release}},
        Tags={"conveyor:managed": "true", "app": app},
    )
    version = str(lam.publish_version(FunctionName=name, Description=f"{app} {release} (bootstrap)")["Version"])
    lam.create_alias(FunctionName=name, Name=ALIAS, FunctionVersion=version)
    return version


#: A task-token hook may run as long as a Lambda function may: 15 minutes.
HOOK_TIMEOUT_SECONDS = 900


def create_hook_function(lam: Any, *, name: str, app: str, role: str, sample: str, environment: dict[str, str]) -> str:
    """A task-token hook from ``examples/hooks/<sample>``, set up as Conveyor needs one: tagged managed (the
    state machine may invoke only managed functions), 15 minutes, and never retried by Lambda after a crash
    (``MaximumRetryAttempts: 0``: a hook reports its own failures; a second run would migrate twice)."""
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Architectures=["arm64"],
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_directory(EXAMPLES / "hooks" / sample)},
        Timeout=HOOK_TIMEOUT_SECONDS,
        Environment={"Variables": environment},
        Tags={"conveyor:managed": "true", "app": app},
    )
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    return name


def _functions(cloud: Cloud, setup: SampleSetup, release: str) -> None:
    lam, iam = cloud.client("lambda"), cloud.client("iam")
    role, created = _execution_role(iam, EXECUTION_ROLE)
    setup.note(f"IAM role {EXECUTION_ROLE}", created=created)
    code = zip_directory(EXAMPLES / SAMPLE_APP)
    for function in ENVIRONMENTS.values():
        try:
            lam.get_function(FunctionName=function)
            setup.note(f"function {function}", created=False)
        except ClientError:
            version = create_target_function(lam, name=function, app=SAMPLE_APP, role=role, code=code, release=release)
            setup.note(f"function {function} (tagged conveyor:managed=true, alias {ALIAS} on v{version})", created=True)


def _alarm(cloud: Cloud, setup: SampleSetup) -> None:
    cloudwatch = cloud.client("cloudwatch")
    if cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]:
        setup.note(f"alarm {ALARM}", created=False)
        return
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": ENVIRONMENTS["production"]}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="no errors in the last period")
    setup.note(f"alarm {ALARM}", created=True)


def _inbox(cloud: Cloud, setup: SampleSetup) -> str:
    sqs, sns = cloud.client("sqs"), cloud.client("sns")
    try:
        inbox = sqs.get_queue_url(QueueName=INBOX_QUEUE)["QueueUrl"]
        setup.note(f"queue {INBOX_QUEUE}", created=False)
    except ClientError:
        inbox = sqs.create_queue(QueueName=INBOX_QUEUE)["QueueUrl"]
        setup.note(f"queue {INBOX_QUEUE}", created=True)
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = cloud.outputs.topic_arn
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
    subscribed = any(sub["Endpoint"] == inbox_arn for page in pages for sub in page["Subscriptions"])
    if not subscribed:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    setup.note(f"subscription of {INBOX_QUEUE} to the notification topic", created=not subscribed)
    return str(inbox)


def create_sample_targets(cloud: Cloud, release: str = "1.0.0") -> SampleTargets:
    """Create (or find) the sample app's functions, alarm and notification inbox."""
    return _sample_targets(cloud, SampleSetup(targets=SampleTargets({}, "")), release)


def _sample_targets(cloud: Cloud, setup: SampleSetup, release: str) -> SampleTargets:
    _functions(cloud, setup, release)
    _alarm(cloud, setup)
    setup.targets = SampleTargets(functions=dict(ENVIRONMENTS), inbox_url=_inbox(cloud, setup))
    return setup.targets


def registered_pipeline(cloud: Cloud, app: str) -> bytes | None:
    """The spec registered for ``app``; None when there is none yet, or one that no longer reads (applying one
    decides then, and says why if it refuses)."""
    try:
        return operations.artifacts(cloud).read_pipeline(cloud.outputs.bucket, app)
    except (PipelineNotFoundError, PipelineInvalidError, ClientError):
        return None


def register_unless_registered(cloud: Cloud, app: str, pipeline: Path) -> bool:
    """Register a sample's ``pipeline`` for ``app`` unless a spec of the app is registered (an operator's own is
    never replaced by a re-run); whether it registered it."""
    if registered_pipeline(cloud, app) is not None:
        return False
    operations.apply_pipeline(cloud, pipeline)
    return True


def _pipeline(cloud: Cloud, setup: SampleSetup, pipeline: Path | None) -> None:
    """Register ``pipeline`` unless the same spec is registered already; without one, the sample pipeline unless
    a spec of the app is registered (an operator's own is never replaced by a re-run)."""
    registered = registered_pipeline(cloud, SAMPLE_APP)
    if pipeline is None and registered is not None:
        setup.pipeline = PipelineSpec.from_yaml(registered, f"s3://{cloud.outputs.bucket}/{pipeline_key(SAMPLE_APP)}")
        setup.note(f"pipeline {SAMPLE_APP} (the one registered; --pipeline FILE registers another)", created=False)
        return
    pipeline = pipeline or SAMPLE_PIPELINE
    setup.pipeline = operations.apply_pipeline(cloud, pipeline) if registered != pipeline.read_bytes() else None
    if setup.pipeline is None:
        setup.pipeline = PipelineSpec.from_yaml(pipeline.read_bytes(), str(pipeline))
        setup.note(f"pipeline {SAMPLE_APP} ({pipeline.name})", created=False)
    else:
        setup.note(f"pipeline {SAMPLE_APP} ({pipeline.name}) registered", created=True)


def _bundle(setup: SampleSetup, bundle_dir: Path) -> None:
    """A bundle of ``examples/hello`` to push, unless one is there already (a second push of it would be
    the same release: SKIPPED_DUPLICATE)."""
    path = bundle_dir / f"{SAMPLE_APP}-{SAMPLE_BUNDLE_VERSION}.zip"
    setup.bundle = path
    if path.exists():
        setup.note(f"bundle {path}", created=False)
        return
    config = FunctionConfig(environment={"RELEASE": SAMPLE_BUNDLE_VERSION})
    data, _ = build_bundle(EXAMPLES / SAMPLE_APP, app=SAMPLE_APP, version=SAMPLE_BUNDLE_VERSION, function_config=config)
    write_bundle(path, data)  # its folder made if missing, as the orders and webapp samples' are
    setup.note(f"bundle {path} (examples/hello as {SAMPLE_APP} {SAMPLE_BUNDLE_VERSION})", created=True)


def set_up_sample(
    cloud: Cloud,
    *,
    pipeline: Path | None = None,
    bundle_dir: Path | None = None,
    release: str = "1.0.0",
) -> SampleSetup:
    """The sample app, ready for a first push: its targets, alarm and inbox, its pipeline registered and
    (given ``bundle_dir``) a bundle to push. Idempotent: what exists is left as it is and reported."""
    setup = SampleSetup(targets=SampleTargets({}, ""))
    _sample_targets(cloud, setup, release)
    _pipeline(cloud, setup, pipeline)
    if bundle_dir is not None:
        _bundle(setup, bundle_dir)
    return setup


def alias_versions(cloud: Cloud, functions: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per environment: the version the alias serves and its routing weights."""
    lam = cloud.client("lambda")
    result = {}
    for env, function in functions.items():
        alias = lam.get_alias(FunctionName=function, Name=ALIAS)
        result[env] = {
            "version": alias["FunctionVersion"],
            "routing": alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}),
        }
    return result


def drain_inbox(cloud: Cloud, inbox_url: str) -> list[dict[str, str]]:
    """Notifications received so far (subject and message), removed from the inbox."""
    sqs = cloud.client("sqs")
    received = []
    while True:
        messages = sqs.receive_message(QueueUrl=inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return received
        for message in messages:
            envelope = json.loads(message["Body"])
            received.append({"subject": envelope.get("Subject", ""), "message": envelope.get("Message", "")})
            sqs.delete_message(QueueUrl=inbox_url, ReceiptHandle=message["ReceiptHandle"])
