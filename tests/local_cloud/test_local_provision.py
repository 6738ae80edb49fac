"""Provisioning SAM templates onto the local cloud."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_cloud_support import FIXTURES, REPO_ROOT, wait_for

from conveyor_local.provision import (
    ProvisioningError,
    StackContext,
    creation_order,
    load_template,
    provision,
    resolve,
)


def test_the_real_template_provisions_every_resource(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given the repository's template.yaml (read as it is now)
    template = load_template(REPO_ROOT / "template.yaml")

    # When it is provisioned as its own stack on the running local cloud
    result = provision(REPO_ROOT / "template.yaml", local_cloud["endpoint"], stack_name="realstack")

    # Then every resource exists, and the outputs point at them
    assert set(result.resources) == set(template["Resources"])
    outputs = result.outputs
    assert set(outputs) >= {"ArtifactBucketName", "StateMachineArn", "LedgerTableName", "NotificationTopicArn"}
    aws("s3").head_bucket(Bucket=outputs["ArtifactBucketName"])
    versioning = aws("s3").get_bucket_versioning(Bucket=outputs["ArtifactBucketName"])
    assert versioning["Status"] == "Enabled"
    table = aws("dynamodb").describe_table(TableName=outputs["LedgerTableName"])["Table"]
    assert {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    aws("sns").get_topic_attributes(TopicArn=outputs["NotificationTopicArn"])
    machine = aws("stepfunctions").describe_state_machine(stateMachineArn=outputs["StateMachineArn"])
    assert "${" not in machine["definition"], "every DefinitionSubstitution is applied"
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            name = result.resources[logical_id].ref
            config = aws("lambda").get_function_configuration(FunctionName=name)
            assert config["Environment"]["Variables"]["LEDGER_TABLE"] == outputs["LedgerTableName"]
            assert config["Layers"], f"{logical_id} gets the Globals layer"
    rules = {
        json.loads(rule["EventPattern"])["source"][0]: rule["Name"]
        for rule in aws("events").list_rules(NamePrefix="realstack-")["Rules"]
    }
    pushed = aws("events").list_targets_by_rule(Rule=rules["aws.s3"])["Targets"]
    assert pushed[0]["Arn"] == outputs["StateMachineArn"]
    # Every execution that ends without finishing reaches the reconciler
    ended = aws("events").list_targets_by_rule(Rule=rules["aws.states"])["Targets"]
    assert ended[0]["Arn"].endswith(f":function:{result.resources['ReconcileFunction'].ref}")
    # and an event the reconciler keeps failing on is not lost: Lambda sends it to the dead-letter queue
    retries = aws("lambda").get_function_event_invoke_config(FunctionName=result.resources["ReconcileFunction"].ref)
    assert retries["MaximumRetryAttempts"] == 2
    assert "ReconcileDeadLetterQueue" in retries["DestinationConfig"]["OnFailure"]["Destination"]
    # moto's GetBucketNotificationConfiguration omits EventBridgeConfiguration, so prove the wiring instead:
    # an upload under artifacts/ starts the real state machine.
    aws("s3").put_object(Bucket=outputs["ArtifactBucketName"], Key="artifacts/provision-check/1.zip", Body=b"x")
    executions = wait_for(
        lambda: aws("stepfunctions").list_executions(stateMachineArn=outputs["StateMachineArn"])["executions"]
    )
    assert len(executions) == 1


def test_an_unknown_resource_type_fails_naming_it(tmp_path: Path) -> None:
    # Given a template with a resource type the local cloud does not know
    (tmp_path / "template.yaml").write_text(
        "Resources:\n"
        "  Queue:\n    Type: AWS::SQS::Queue\n"
        "  Network:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: 10.0.0.0/16\n"
    )

    # When it is provisioned, Then it fails before creating anything, naming the resource and type
    with pytest.raises(ProvisioningError, match=r"Network: resource type AWS::EC2::VPC"):
        provision(tmp_path / "template.yaml", "http://127.0.0.1:9")


def test_short_form_intrinsics_resolve(tmp_path: Path) -> None:
    # Given short-form intrinsics in YAML
    (tmp_path / "t.yaml").write_text(
        "Resources: {}\n"
        "Outputs:\n"
        "  A: {Value: !Sub '${AWS::Region}-${Name}-${!Literal}'}\n"
        "  B: {Value: !Join ['/', [a, !Ref Name]]}\n"
        "  C: {Value: !Select [1, !Split [',', 'x,y,z']]}\n"
        "  D: {Value: !GetAtt Thing.Arn}\n"
    )
    template = load_template(tmp_path / "t.yaml")
    context = StackContext("s", "eu-west-1", {"Name": "n"})
    from conveyor_local.provision import Provisioned

    context.resources["Thing"] = Provisioned("Thing", "AWS::SNS::Topic", "ref", {"Arn": "arn:thing"})

    # When they are resolved
    values = {name: resolve(output["Value"], context, name) for name, output in template["Outputs"].items()}

    # Then they evaluate as CloudFormation does
    assert values == {"A": "eu-west-1-n-${Literal}", "B": "a/n", "C": "y", "D": "arn:thing"}


def test_resources_are_created_after_what_they_reference() -> None:
    # Given the real template
    template = load_template(REPO_ROOT / "template.yaml")

    # When ordered
    order = creation_order(template)

    # Then every referenced resource (Globals included) comes first
    assert order.index("ConveyorLayer") < order.index("RolloutFunction")
    assert order.index("LedgerTable") < order.index("RolloutFunction")
    assert order.index("RolloutFunction") < order.index("DeploymentStateMachine")


def test_a_missing_code_dir_names_the_function(tmp_path: Path) -> None:
    # Given a function whose CodeUri does not exist
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: nowhere/, Handler: app.handler, Runtime: python3.11}\n"
    )

    # When provisioned, Then the error names the resource and the path (no endpoint is reached first)
    with pytest.raises(ProvisioningError, match=r"Fn: CodeUri 'nowhere/' is not a directory"):
        provision(tmp_path / "template.yaml", "http://127.0.0.1:9")


def test_a_functions_eventbridge_rule_event_targets_it_as_sam_does(
    local_cloud: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    # Given the fixture's reconciler: a function with an EventBridgeRule event (pattern, RetryPolicy, DLQ)
    name = local_cloud["outputs"]["ReconcileProbeFunctionName"]
    function_arn = aws("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]

    # When its rule and target are read back
    (rule_name,) = aws("events").list_rule_names_by_target(TargetArn=function_arn)["RuleNames"]
    rule = aws("events").describe_rule(Name=rule_name)
    (target,) = aws("events").list_targets_by_rule(Rule=rule_name)["Targets"]

    # Then the rule carries the pattern, the target the retry policy and dead-letter queue (no role, as SAM
    # gives a Lambda target none), and the function lets EventBridge invoke it for that rule only
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["stateMachineArn"] == [local_cloud["outputs"]["StoppablePipelineArn"]]
    assert target["Id"] == "ReconcileProbeFunctionExecutionEndedLambdaTarget"
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    assert target["DeadLetterConfig"]["Arn"].endswith(":conveyor-ReconcileDeadLetters")
    assert "RoleArn" not in target
    (statement,) = json.loads(aws("lambda").get_policy(FunctionName=name)["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]


def _inventory(aws: Callable[[str], Any], stack: str, outputs: dict[str, str]) -> dict[str, Any]:
    """What a stack's provisioning made, in the terms a duplicate would show up in."""
    lambda_ = aws("lambda")
    functions = [f for f in lambda_.list_functions()["Functions"] if f["FunctionName"].startswith(f"{stack}-")]
    kms = aws("kms")
    keys = [
        key["KeyId"]
        for key in kms.list_keys()["Keys"]
        if {"TagKey": "aws:cloudformation:stack-name", "TagValue": stack}
        in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
    ]
    return {
        "outputs": outputs,
        "functions": {
            f["FunctionName"]: (
                f["CodeSha256"],
                [layer["Arn"] for layer in f.get("Layers", [])],
                [v["Version"] for v in lambda_.list_versions_by_function(FunctionName=f["FunctionName"])["Versions"]],
            )
            for f in functions
        },
        "keys": keys,
        "roles": sorted(r["RoleName"] for r in aws("iam").list_roles()["Roles"] if r["RoleName"].startswith(stack)),
        "machines": [
            m["name"]
            for m in aws("stepfunctions").list_state_machines()["stateMachines"]
            if m["name"].startswith(stack)
        ],
        "rules": [r["Name"] for r in aws("events").list_rules(NamePrefix=f"{stack}-")["Rules"]],
        "queues": aws("sqs").list_queues(QueueNamePrefix=stack).get("QueueUrls", []),
    }


def test_provisioning_again_creates_nothing_twice(local_cloud: dict[str, Any], aws: Callable[[str], Any]) -> None:
    # Given the real template provisioned once (as over a restored snapshot)
    first = provision(REPO_ROOT / "template.yaml", local_cloud["endpoint"], stack_name="twice")
    before = _inventory(aws, "twice", first.outputs)
    aws("s3").put_object(Bucket=first.outputs["ArtifactBucketName"], Key="pipelines/app.yaml", Body=b"kept")

    # When it is provisioned again, unchanged
    second = provision(REPO_ROOT / "template.yaml", local_cloud["endpoint"], stack_name="twice")

    # Then every resource was found rather than made again, and what it held is kept
    assert _inventory(aws, "twice", second.outputs) == before
    assert len(before["keys"]) == 1
    body = aws("s3").get_object(Bucket=first.outputs["ArtifactBucketName"], Key="pipelines/app.yaml")["Body"]
    assert body.read() == b"kept"


def test_provisioning_again_updates_changed_code_and_moves_the_alias(
    tmp_path: Path, local_cloud: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    # Given a function with an AutoPublishAlias, provisioned once
    shutil.copytree(FIXTURES / "probe", tmp_path / "probe")
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: probe/, Handler: app.handler, Runtime: python3.11, AutoPublishAlias: live}\n"
        "  Machine:\n    Type: AWS::Serverless::StateMachine\n"
        "    Properties:\n      Definition: {StartAt: A, States: {A: {Type: Pass, End: true}}}\n"
    )
    provision(template, local_cloud["endpoint"], stack_name="redeploy")
    lambda_ = aws("lambda")
    assert lambda_.get_alias(FunctionName="redeploy-Fn", Name="live")["FunctionVersion"] == "1"

    # When its code and the state machine's definition change and the template is provisioned again
    (tmp_path / "probe" / "app.py").write_text((tmp_path / "probe" / "app.py").read_text() + "\n# changed\n")
    template.write_text(template.read_text().replace("A: {Type: Pass, End: true}", "A: {Type: Succeed}"))
    result = provision(template, local_cloud["endpoint"], stack_name="redeploy")

    # Then the code is updated, a version published and the alias moved to it; the machine is updated in place
    assert lambda_.get_alias(FunctionName="redeploy-Fn", Name="live")["FunctionVersion"] == "2"
    machine = aws("stepfunctions").describe_state_machine(stateMachineArn=result.resources["Machine"].ref)
    assert json.loads(machine["definition"])["States"]["A"] == {"Type": "Succeed"}

    # And a third, unchanged run publishes nothing
    provision(template, local_cloud["endpoint"], stack_name="redeploy")
    versions = lambda_.list_versions_by_function(FunctionName="redeploy-Fn")["Versions"]
    assert [version["Version"] for version in versions] == ["$LATEST", "1", "2"]
    assert lambda_.get_alias(FunctionName="redeploy-Fn", Name="live")["FunctionVersion"] == "2"


def test_the_dashboard_is_put_with_the_stage_functions_names_substituted(
    local_cloud: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    # Given the real template provisioned as a stack
    result = provision(REPO_ROOT / "template.yaml", local_cloud["endpoint"], stack_name="dashboards")

    # When its dashboard is read back from CloudWatch
    name = result.resources["OperationsDashboard"].ref
    body = json.loads(aws("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"])

    # Then it is the stack's, and its Lambda widgets name the stack's stage functions
    assert name == "dashboards-deployments"
    named = {row[3] for w in body["widgets"] for row in w["properties"].get("metrics", []) if row[0] == "AWS/Lambda"}
    functions = {result.resources[f"{stage}Function"].ref for stage in ("Intake", "Rollout", "Report", "Reconcile")}
    assert named == functions
    assert "${" not in json.dumps(body)


def test_a_dashboard_body_without_widgets_is_refused_naming_it(tmp_path: Path) -> None:
    # Given a template whose dashboard body CloudWatch would refuse
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  Board:\n    Type: AWS::CloudWatch::Dashboard\n    Properties:\n"
        "      DashboardBody: '{\"widget\": []}'\n"
    )

    # When it is provisioned, Then it fails naming the resource and the property
    with pytest.raises(ProvisioningError, match=r"Board.DashboardBody has no 'widgets' list"):
        provision(tmp_path / "template.yaml", "http://127.0.0.1:9")
