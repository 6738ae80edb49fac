"""Injected faults for services whose handlers raise moto's ``ServiceException`` (DynamoDB, SNS).

A ``faults.json`` rule (``conveyor_local.faults``) naming a ``table`` or a ``topic`` makes the
service's response method fail with the rule's error code, serialized by the service's own protocol,
as a DynamoDB or SNS outage would. No rule: moto's original.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from conveyor_local.moto_patches.registry import faults, original, relies_on, resolve_dotted

LOG = logging.getLogger(__name__)

SERVICE_EXCEPTION = "moto.core.exceptions.ServiceException"
relies_on(SERVICE_EXCEPTION)


@functools.cache
def _fault_class(owner: str) -> type[Exception]:
    """A ServiceException that moto serializes as ``owner``'s service: moto looks for the error's shape in the
    model of the service its exception's module names too, and ``moto.core`` names none (UnknownServiceError:
    a 500 with an HTML body, not the service's error)."""
    package = ".".join(owner.split(".")[:2])  # moto.sns.responses.SNSResponse -> moto.sns
    return type("InjectedFault", (resolve_dotted(SERVICE_EXCEPTION),), {"__module__": f"{package}.exceptions"})


def service_faulty(owner: str, method: str, kind: str, resource_of: Callable[[Any], str]) -> Callable[..., Any]:
    """A response method that fails as the fault plan says (a ServiceException, serialized as the service does)."""
    operation = "".join(part.title() for part in method.split("_"))

    def respond(self: Any) -> Any:
        plan = faults()
        fault = plan.check(operation, resource_of(self), kind=kind) if plan is not None else None
        if fault is not None:
            LOG.warning("injected fault: %s on %s -> %s", operation, resource_of(self), fault.error)
            raise _fault_class(owner)(fault.error, fault.message)
        return original(f"{owner}.{method}")(self)

    respond.__name__ = method
    return respond
