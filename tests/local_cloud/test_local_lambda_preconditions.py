"""What Lambda refuses before anything changes, and how it retries an asynchronous invocation: as on AWS."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from local_cloud_support import wait_for

Aws = Callable[[str], Any]


def _package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def role_arn(aws: Aws) -> str:
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:*"}]}
    role = aws("iam").create_role(
        RoleName=f"preconditions-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(policy)
    )
    return str(role["Role"]["Arn"])


def _create(aws: Aws, role_arn: str, code: bytes, **extra: Any) -> str:
    name = f"fn-{uuid.uuid4().hex[:12]}"
    aws("lambda").create_function(
        FunctionName=name, Runtime="python3.11", Role=role_arn, Handler="app.handler", Code={"ZipFile": code}, **extra
    )
    return name


def _error(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_code_sha256_is_base64_of_the_packages_sha256(aws: Aws, role_arn: str) -> None:
    # Given a function created from a package
    code = _package("def handler(event, context):\n    return 1\n")

    # When its configuration is read
    name = _create(aws, role_arn, code)

    # Then CodeSha256 is AWS's: base64 of the SHA-256 digest of the zip
    expected = base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert aws("lambda").get_function_configuration(FunctionName=name)["CodeSha256"] == expected


def test_publish_version_with_another_code_sha256_is_refused(aws: Aws, role_arn: str) -> None:
    # Given a function whose $LATEST code has since changed from what a deployment validated
    validated = _package("def handler(event, context):\n    return 'validated'\n")
    name = _create(aws, role_arn, validated)
    validated_sha = aws("lambda").get_function_configuration(FunctionName=name)["CodeSha256"]
    aws("lambda").update_function_code(FunctionName=name, ZipFile=_package("def handler(e, c):\n    return 'other'\n"))
    current_sha = aws("lambda").get_function_configuration(FunctionName=name)["CodeSha256"]

    # When a version is published for the validated code
    with pytest.raises(ClientError) as refused:
        aws("lambda").publish_version(FunctionName=name, CodeSha256=validated_sha)

    # Then Lambda refuses it, naming both hashes, and publishes nothing
    code, message = _error(refused)
    assert code == "InvalidParameterValueException"
    assert message == (
        f"CodeSHA256 ({validated_sha}) is different from current CodeSHA256 in $LATEST ({current_sha}). "
        "Please try again with the CodeSHA256 in $LATEST."
    )
    versions = aws("lambda").list_versions_by_function(FunctionName=name)["Versions"]
    assert [version["Version"] for version in versions] == ["$LATEST"]


def test_publish_version_with_the_current_code_sha256_publishes(aws: Aws, role_arn: str) -> None:
    # Given a function and the CodeSha256 of its $LATEST
    name = _create(aws, role_arn, _package("def handler(event, context):\n    return 2\n"))
    current_sha = aws("lambda").get_function_configuration(FunctionName=name)["CodeSha256"]

    # When a version is published with it
    published = aws("lambda").publish_version(FunctionName=name, CodeSha256=current_sha)

    # Then the version is published with that code
    assert published["Version"] == "1"
    assert published["CodeSha256"] == current_sha


@pytest.mark.parametrize("reserved", ["AWS_REGION", "_HANDLER", "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT"])
def test_create_function_with_a_reserved_variable_is_refused(aws: Aws, role_arn: str, reserved: str) -> None:
    # Given an environment naming a variable Lambda sets itself
    environment = {"Variables": {"APP": "x", reserved: "mine"}}

    # When a function is created with it
    name = f"fn-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as refused:
        aws("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": _package("def handler(e, c):\n    return 0\n")},
            Environment=environment,
        )

    # Then Lambda refuses it with AWS's message naming the key, and no function exists
    code, message = _error(refused)
    assert code == "InvalidParameterValueException"
    assert message.endswith(
        f"contains reserved keys that are currently not supported for modification. "
        f"Reserved keys used in this request: {reserved}"
    )
    with pytest.raises(ClientError):
        aws("lambda").get_function(FunctionName=name)


def test_update_configuration_with_a_reserved_variable_changes_nothing(aws: Aws, role_arn: str) -> None:
    # Given a function with an environment
    name = _create(aws, role_arn, _package("def handler(e, c):\n    return 0\n"), Environment={"Variables": {"A": "1"}})

    # When its configuration is updated with reserved names among the variables
    with pytest.raises(ClientError) as refused:
        aws("lambda").update_function_configuration(
            FunctionName=name, Environment={"Variables": {"A": "2", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "r"}}
        )

    # Then Lambda refuses it, naming every reserved key, and the environment is unchanged
    code, message = _error(refused)
    assert code == "InvalidParameterValueException"
    assert message.endswith("Reserved keys used in this request: AWS_REGION, AWS_SECRET_ACCESS_KEY")
    assert aws("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"] == {"A": "1"}


def test_update_configuration_over_4_kb_of_variables_changes_nothing(aws: Aws, role_arn: str) -> None:
    # Given a function with an environment
    name = _create(aws, role_arn, _package("def handler(e, c):\n    return 0\n"), Environment={"Variables": {"A": "1"}})

    # When its configuration is updated with 24 KB of variables
    variables = {f"VAR_{n}": "x" * 1000 for n in range(24)}
    with pytest.raises(ClientError) as refused:
        aws("lambda").update_function_configuration(FunctionName=name, Environment={"Variables": variables})

    # Then Lambda refuses it with AWS's message, and the environment is unchanged
    code, message = _error(refused)
    assert code == "InvalidParameterValueException"
    assert "you have provided exceeded the 4KB limit. String measured: {" in message
    assert aws("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"] == {"A": "1"}


def test_a_failed_asynchronous_invocation_is_retried_until_it_succeeds(local_cloud: dict[str, Any], aws: Aws) -> None:
    # Given a function that fails its first two attempts at an event (a transient outage)
    outputs = local_cloud["outputs"]
    table, marker = outputs["TableName"], uuid.uuid4().hex
    event = {"action": "flaky", "marker": marker, "fail_times": 2}

    # When it is invoked asynchronously, as EventBridge invokes a Lambda target
    response = aws("lambda").invoke(
        FunctionName=outputs["GatedProbeFunctionName"], InvocationType="Event", Payload=json.dumps(event)
    )
    assert response["StatusCode"] == 202

    # Then Lambda retries it (twice, as its default), and the third attempt succeeds
    def item(pk: str) -> dict[str, Any] | None:
        return aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")

    wait_for(lambda: item(f"{marker}#succeeded"), timeout=30)
    attempts = item(f"{marker}#attempts")
    assert attempts is not None
    assert attempts["attempts"] == {"N": "3"}


def test_every_alias_change_gets_a_new_revision_and_a_stale_revision_is_refused(aws: Aws, role_arn: str) -> None:
    # Given an alias on version 1 of a function with two versions
    name = _create(aws, role_arn, _package("def handler(event, context):\n    return 1\n"))
    lam = aws("lambda")
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=_package("def handler(event, context):\n    return 2\n"))
    lam.publish_version(FunctionName=name)
    read = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")["RevisionId"]

    # When one writer moves it with the revision it read
    moved = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId=read)

    # Then the alias has a new revision, and a second writer holding the old one is refused, changing nothing
    assert moved["RevisionId"] != read
    with pytest.raises(ClientError) as refused:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="1", RevisionId=read)
    assert _error(refused)[0] == "PreconditionFailedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"
    # And an update without a revision still applies (the revision is optional, as on AWS)
    assert lam.update_alias(FunctionName=name, Name="live", FunctionVersion="1")["FunctionVersion"] == "1"
