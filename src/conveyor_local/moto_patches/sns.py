"""SNS: the notification topic can be taken down.

``moto.sns.responses.SNSResponse.publish(self)``
    fault injection (``conveyor_local.moto_patches.service_faults``): a rule naming a ``topic`` (its
    ARN) fails ``Publish`` with its error code, as an SNS outage would. No rule: moto's original.
"""

from __future__ import annotations

from typing import Any

from conveyor_local.moto_patches.registry import patches
from conveyor_local.moto_patches.service_faults import service_faulty

SNS_RESPONSE = "moto.sns.responses.SNSResponse"


def topic_of(response: Any) -> str:
    return str(response._get_param("TopicArn") or "")


patches(f"{SNS_RESPONSE}.publish", ("self",), service_faulty(SNS_RESPONSE, "publish", "topic", topic_of))
