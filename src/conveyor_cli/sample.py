"""The sample app's targets on the local cloud: what a team's own IaC would have created.

Two functions, ``hello-staging`` and ``hello-production``, tagged ``conveyor:managed=true``
(Conveyor may change only such functions), each with alias ``live`` on version 1 of the
first release; a CloudWatch alarm the production health check reads; and an SQS queue
subscribed to the notifications topic, standing in for the on-call's email or Slack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from conveyor_cli.context import Cloud
from conveyor_cli.packaging import zip_directory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SAMPLE_APP = "hello"
ENVIRONMENTS = {"staging": "hello-staging", "production": "hello-production"}
ALARM = "hello-production-errors"
ALIAS = "live"
INBOX_QUEUE = "conveyor-demo-inbox"


@dataclass(frozen=True)
class SampleTargets:
    functions: dict[str, str]
    inbox_url: str


def execution_role_arn(iam: Any, name: str = "hello-sample-execution") -> str:
    """The target functions' execution role (moto requires one to exist)."""
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except ClientError:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def create_target_function(lam: Any, *, name: str, app: str, role: str, code: bytes, release: str) -> str:
    """A managed target function with alias ``live`` on its first version; returns that version."""
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Architectures=["arm64"],
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code},
        Timeout=10,
        Environment={"Variables": {"RELEASE": release}},
        Tags={"conveyor:managed": "true", "app": app},
    )
    version = str(lam.publish_version(FunctionName=name, Description=f"{app} {release} (bootstrap)")["Version"])
    lam.create_alias(FunctionName=name, Name=ALIAS, FunctionVersion=version)
    return version


def create_sample_targets(cloud: Cloud, release: str = "1.0.0") -> SampleTargets:
    """Create (or find) the sample app's functions, alarm and notification inbox."""
    lam, iam = cloud.client("lambda"), cloud.client("iam")
    role = execution_role_arn(iam)
    code = zip_directory(EXAMPLES / SAMPLE_APP)
    for function in ENVIRONMENTS.values():
        try:
            lam.get_function(FunctionName=function)
        except ClientError:
            create_target_function(lam, name=function, app=SAMPLE_APP, role=role, code=code, release=release)

    cloudwatch = cloud.client("cloudwatch")
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

    sqs = cloud.client("sqs")
    inbox = sqs.create_queue(QueueName=INBOX_QUEUE)["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    cloud.client("sns").subscribe(TopicArn=cloud.outputs.topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    return SampleTargets(functions=dict(ENVIRONMENTS), inbox_url=inbox)


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
