"""Deployment notifications on SNS (email, Slack or PagerDuty subscribe to the topic)."""

from __future__ import annotations

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.adapters import aws
from conveyor.domain.errors import NotificationError

# SNS subjects: at most 100 printable ASCII characters, no line breaks.
_MAX_SUBJECT = 100


class SnsNotifier:
    def __init__(self, session: Session, topic_arn: str) -> None:
        self._topic_arn = topic_arn
        self._sns = aws.client(session, "sns")

    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> str:
        clean_subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:_MAX_SUBJECT]
        try:
            response = self._sns.publish(
                TopicArn=self._topic_arn,
                Subject=clean_subject,
                Message=message,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
            )
        except (ClientError, BotoCoreError) as exc:
            raise NotificationError(f"publishing to {self._topic_arn} failed: {exc}") from exc
        return str(response["MessageId"])
