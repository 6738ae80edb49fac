"""UpdateFunctionCode honours ``S3ObjectVersion`` on the local cloud, as on AWS (moto takes the latest)."""

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
from local_cloud_support import invoke


def handler_zip(answer: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", f"def handler(event, context):\n    return {{'answer': {answer!r}}}\n")
    return buffer.getvalue()


@pytest.fixture
def function_and_bucket(aws: Callable[[str], Any]) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    bucket, name = f"releases-{suffix}", f"code-version-{suffix}"
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    role = aws("iam").create_role(
        RoleName=f"role-{suffix}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    aws("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": handler_zip("initial")},
        Timeout=10,
    )
    return name, bucket


def test_update_function_code_reads_the_named_object_version(
    aws: Callable[[str], Any], function_and_bucket: tuple[str, str]
) -> None:
    # Given a release key whose object was replaced after the version we validated
    name, bucket = function_and_bucket
    validated, later = handler_zip("validated"), handler_zip("later")
    first = aws("s3").put_object(Bucket=bucket, Key="package.zip", Body=validated)["VersionId"]
    aws("s3").put_object(Bucket=bucket, Key="package.zip", Body=later)

    # When the function is updated from the validated object version
    configuration = aws("lambda").update_function_code(
        FunctionName=name, S3Bucket=bucket, S3Key="package.zip", S3ObjectVersion=first
    )

    # Then its code is exactly that version, and so is what runs
    expected = hashlib.sha256(validated).digest()
    assert configuration["CodeSha256"] == base64.b64encode(expected).decode()
    payload, response = invoke(aws("lambda"), name, {})
    assert "FunctionError" not in response
    assert payload == {"answer": "validated"}


def test_update_function_code_refuses_an_object_version_that_does_not_exist(
    aws: Callable[[str], Any], function_and_bucket: tuple[str, str]
) -> None:
    name, bucket = function_and_bucket
    aws("s3").put_object(Bucket=bucket, Key="package.zip", Body=handler_zip("x"))
    with pytest.raises(ClientError, match="InvalidParameterValueException"):
        aws("lambda").update_function_code(
            FunctionName=name, S3Bucket=bucket, S3Key="package.zip", S3ObjectVersion="no-such-version"
        )
