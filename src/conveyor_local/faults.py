"""Fault injection for the local cloud, in the spirit of AWS Fault Injection Service.

A test (or a person trying Conveyor's failure paths) writes ``<state-dir>/faults.json``; the
local cloud reads it on every matching Lambda API call, so faults can be switched on and off
while it runs. Nothing in Conveyor's own code knows about this file: the fault is the cloud's
answer, exactly as a throttle, an outage or a conflicting update would look on AWS.

```json
{"rules": [
  {"id": "publish-conflict", "operation": "PublishVersion", "function": "hello-staging",
   "error": "ResourceConflictException", "status": 409, "skip": 0, "times": 1,
   "message": "The operation cannot be performed at this time."}
]}
```

A rule matches a Lambda API ``operation`` on ``function`` (the function's name: ``Invoke``, ``PublishVersion``,
``UpdateAlias``, ``CreateAlias``, ``DeleteAlias``, ``UpdateFunctionCode``, ``UpdateFunctionConfiguration``; an
``Invoke`` fault hits every caller, Step Functions' tasks included), a DynamoDB
operation on ``table`` (an outage of the ledger: ``{"operation": "*", "table": "<table>",
"error": "InternalServerError", "times": 1000000}``), or an SNS operation on ``topic`` (the topic's
ARN); ``"*"`` matches any operation. The first ``skip`` matching calls pass, the next ``times`` fail
with ``error`` (HTTP ``status`` for Lambda; DynamoDB and SNS answer with their own status for the
error code), later ones pass again. Counters are kept per rule ``id`` for as long as the local cloud
runs; writing the plan again with no rules ends every fault.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAULTS_FILE = "faults.json"


@dataclass(frozen=True)
class Fault:
    error: str
    status: int
    message: str


class FaultPlan:
    """The rules of one ``faults.json`` and how often each has matched."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._matches: dict[str, int] = {}

    def _rules(self) -> list[dict[str, Any]]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        rules = document.get("rules", []) if isinstance(document, dict) else []
        return [rule for rule in rules if isinstance(rule, dict)]

    def check(self, operation: str, resource: str, *, kind: str = "function") -> Fault | None:
        """The fault this call must fail with, or None (counts the call against matching rules).

        ``kind`` names the rule field the ``resource`` is matched against: function, table or topic.
        """
        with self._lock:
            for rule in self._rules():
                if rule.get("operation") not in (operation, "*") or rule.get(kind) != resource:
                    continue
                rule_id = str(rule.get("id", f"{operation}:{resource}"))
                seen = self._matches.get(rule_id, 0)
                self._matches[rule_id] = seen + 1
                skip, times = int(rule.get("skip", 0)), int(rule.get("times", 1))
                if skip <= seen < skip + times:
                    return Fault(
                        error=str(rule.get("error", "ServiceException")),
                        status=int(rule.get("status", 500)),
                        message=str(rule.get("message", f"injected fault {rule_id}")),
                    )
        return None


def write_plan(state_dir: Path, rules: list[dict[str, Any]]) -> None:
    """Replace the plan atomically (an empty list switches every fault off)."""
    staging = state_dir / f"{FAULTS_FILE}.tmp"
    staging.write_text(json.dumps({"rules": rules}, indent=2), encoding="utf-8")
    staging.replace(state_dir / FAULTS_FILE)
