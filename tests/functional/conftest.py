"""Functional tests: each stage handler called in-process against moto, with a fake Lambda context.

Resources mirror template.yaml: a versioned artifact bucket, the ledger table (pk/sk + GSI ``by-app``),
the notification topic (an SQS queue subscribed so tests can read what was published), and a target
function ``hello-staging`` tagged ``conveyor:managed=true`` whose alias ``live`` serves version 1.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from conveyor import runtime, settings
from conveyor.adapters import aws
from conveyor.observability import metrics
from moto import mock_aws

from tests.fakes import make_bundle, pipeline_yaml
from tests.fakes.builders import LEDGER_TABLE_SHAPE

ROOT = Path(__file__).parents[2]
EVENTS = ROOT / "events"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "conveyor-artifacts"
TABLE = "conveyor-ledger"
FUNCTION = "hello-staging"
TAG_KEY = "conveyor:managed"
EXECUTION_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:DeploymentStateMachine:run-1"
STARTED_AT = "2024-05-14T09:21:08.123Z"

_RUNTIME_FACTORIES = (
    "session",
    "ledger",
    "targets",
    "artifacts",
    "alarms",
    "lambda_metrics",
    "prober",
    "notifier",
    "freezes",
    "locks",
    "executions",
    "target_owners",
)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


# Which function serves each stage (template.yaml groups the states by the privileges they need).
STAGE_FUNCTIONS = {
    "claim_deployment": ("intake", "ClaimDeployment"),
    "validate_artifact": ("intake", "ValidateArtifact"),
    "check_gates": ("intake", "CheckGates"),
    "acquire_lock": ("intake", "AcquireLock"),
    "deploy": ("rollout", "Deploy"),
    "shift_traffic": ("rollout", "ShiftTraffic"),
    "evaluate_health": ("rollout", "EvaluateHealth"),
    "roll_back": ("rollout", "RollBack"),
    "request_approval": ("report", "RequestApproval"),
    "finalize": ("report", "Finalize"),
    "notify_failure": ("report", "NotifyFailure"),
}


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` as a module of its own (every handler file is called app.py)."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"conveyor_functions_{name}_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class StageHandler:
    """One stage of a stage function, invoked as its state in the ASL invokes it."""

    function: ModuleType
    stage: str

    def handler(self, event: dict[str, Any], context: Any) -> Any:
        return self.function.handler({"stage": self.stage, "input": event}, context)


def load_handler(stage: str) -> StageHandler:
    function, name = STAGE_FUNCTIONS[stage]
    return StageHandler(load_function(function), name)


@dataclass
class FakeLambdaContext:
    function_name: str = "conveyor-stage"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:conveyor-stage"
    aws_request_id: str = "6f2c1f0e-0000-4000-8000-000000000001"
    log_group_name: str = "/aws/lambda/conveyor-stage"
    log_stream_name: str = "2024/05/14/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _clear_caches() -> None:
    for name in _RUNTIME_FACTORIES:
        factory = getattr(runtime, name)
        if hasattr(factory, "cache_clear"):  # a test may have replaced it with a fake
            factory.cache_clear()
    settings.settings.cache_clear()
    aws.client.cache_clear()
    aws.resource.cache_clear()


def _function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", 'def handler(event, context):\n    return {"status": "ok", "version": "0"}\n')
    return buffer.getvalue()


@dataclass
class Cloud:
    """Handles on the moto resources a test can look at."""

    s3: Any
    dynamodb: Any
    lambda_: Any
    sns: Any
    sqs: Any
    cloudwatch: Any
    topic_arn: str
    queue_url: str
    role_arn: str

    @property
    def table(self) -> Any:
        return self.dynamodb.Table(TABLE)

    def put_bundle(self, bundle: bytes | None = None, app: str = "hello", version: str = "1.0.0") -> dict[str, Any]:
        """Push a bundle to ``artifacts/<app>/<version>.zip``; the put_object response (VersionId, ETag)."""
        body = make_bundle(app, version) if bundle is None else bundle
        return dict(self.s3.put_object(Bucket=BUCKET, Key=f"artifacts/{app}/{version}.zip", Body=body))

    def put_pipeline(self, text: str | None = None, app: str = "hello") -> None:
        self.s3.put_object(Bucket=BUCKET, Key=f"pipelines/{app}.yaml", Body=(text or pipeline_yaml()).encode())

    def event_for(self, put: dict[str, Any], key: str = "artifacts/hello/1.0.0.zip") -> dict[str, Any]:
        """events/s3_object_created.json, pointing at the object moto stored."""
        event = load_event("s3_object_created.json")
        event["detail"]["object"].update({"key": key, "version-id": put["VersionId"], "etag": put["ETag"].strip('"')})
        return event

    def meta(self, deployment_id: str) -> dict[str, Any]:
        return dict(self.table.get_item(Key={"pk": f"DEPLOYMENT#{deployment_id}", "sk": "META"})["Item"])

    def events(self, deployment_id: str) -> list[dict[str, Any]]:
        items = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :e)",
            ExpressionAttributeValues={":pk": f"DEPLOYMENT#{deployment_id}", ":e": "EVENT#"},
        )["Items"]
        return [dict(item) for item in items]

    def alias(self, name: str = "live") -> dict[str, Any]:
        return dict(self.lambda_.get_alias(FunctionName=FUNCTION, Name=name))

    def notifications(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "LEDGER_TABLE": TABLE,
        "ARTIFACT_BUCKET": BUCKET,
        "MANAGED_TAG_KEY": TAG_KEY,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "ConveyorTests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    _clear_caches()
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=TABLE, **LEDGER_TABLE_SHAPE)

        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name="conveyor-notifications")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="on-call")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic_arn)

        iam = boto3.client("iam", region_name=REGION)
        role_arn = iam.create_role(
            RoleName="hello-staging-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]

        lambda_ = boto3.client("lambda", region_name=REGION)
        lambda_.create_function(
            FunctionName=FUNCTION,
            Runtime="python3.11",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": _function_zip()},
            Tags={TAG_KEY: "true"},
        )
        version = lambda_.publish_version(FunctionName=FUNCTION)["Version"]
        lambda_.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=version)

        yield Cloud(
            s3=s3,
            dynamodb=dynamodb,
            lambda_=lambda_,
            sns=sns,
            sqs=sqs,
            cloudwatch=boto3.client("cloudwatch", region_name=REGION),
            topic_arn=topic_arn,
            queue_url=queue_url,
            role_arn=role_arn,
        )
    _clear_caches()
    metrics.clear_metrics()


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="session")
def handlers() -> dict[str, StageHandler]:
    return {stage: load_handler(stage) for stage in STAGE_FUNCTIONS}


@pytest.fixture
def validated(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> Callable[..., dict[str, Any]]:
    """Push a bundle and register a pipeline, run ValidateArtifact; the execution state after it."""

    def run(spec: str | None = None) -> dict[str, Any]:
        cloud.put_pipeline(spec)
        event = cloud.event_for(cloud.put_bundle())
        request = {"event": event, "execution_arn": EXECUTION_ARN, "started_at": STARTED_AT}
        deployment = handlers["validate_artifact"].handler(request, context)
        state = {**copy.deepcopy(event), "deployment": deployment}
        # As the state machine does before Deploy, hold each environment's lock: the mutating stages
        # check its fencing token. Last environment first: taking one releases the earlier ones.
        acquire = load_handler("acquire_lock")
        state["locks"] = {}
        for index in reversed(range(len(deployment["environments"]))):
            grant = acquire.handler(environment_step(state, index), context)
            state["locks"][deployment["environments"][index]["name"]] = grant
        return state

    return run


def environment_step(state: dict[str, Any], index: int = 0, **fields: Any) -> dict[str, Any]:
    """What the Map's ItemSelector builds for one environment, plus results placed by ResultPath."""
    deployment = state["deployment"]
    environment = deployment["environments"][index]
    lock = state.get("locks", {}).get(environment["name"])
    return {"deployment": deployment, "environment": environment, **({"lock": lock} if lock else {}), **fields}
