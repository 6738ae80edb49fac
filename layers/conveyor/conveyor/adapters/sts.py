"""STS: who is calling (an approval records the caller's own AWS identity, never a name it was given)."""

from __future__ import annotations

from boto3.session import Session

from conveyor.adapters import aws


def caller_arn(session: Session) -> str:
    """The ARN of the identity ``session`` calls as (raises botocore's errors)."""
    return str(aws.client(session, "sts").get_caller_identity()["Arn"])
