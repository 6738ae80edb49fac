"""What Lambda records about each invocation: AWS/Lambda metrics, the function's log stream, and the
metrics its log lines embed (CloudWatch embedded metric format, as Powertools' Metrics prints them).

On AWS, CloudWatch Logs turns every EMF line of a Lambda log into metrics of its own namespace and
dimension sets; moto keeps log lines as text. So the local cloud extracts them here, and Conveyor's
own metrics (namespace ``Conveyor``: deployments, outcomes, rollbacks) reach its CloudWatch, where the
template's dashboard and ``conveyor report`` read them.

Written in-process to moto's CloudWatch and CloudWatch Logs backends (the server is this process),
not through HTTP. ``conveyor_local.moto_patches.awslambda`` calls ``record_invocation`` after a
worker answers; telemetry never fails an invocation that ran.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from conveyor_local.moto_patches.registry import relies_on, resolve_dotted
from conveyor_local.workers import InvocationResult

LOG = logging.getLogger(__name__)

_CLOUDWATCH_BACKENDS = "moto.cloudwatch.models.cloudwatch_backends"
_LOGS_BACKENDS = "moto.logs.models.logs_backends"
relies_on(_CLOUDWATCH_BACKENDS)
relies_on(_LOGS_BACKENDS)

_LOG_LOCK = threading.Lock()


@dataclass(frozen=True)
class InvocationTarget:
    """How a caller addressed the function, for metric dimensions (``Resource``)."""

    function_name: str
    qualifier: str | None

    @property
    def resource(self) -> str:
        return f"{self.function_name}:{self.qualifier}" if self.qualifier else self.function_name


def _dimension_sets(target: InvocationTarget, executed_version: str) -> list[list[dict[str, str]]]:
    """The dimension sets AWS/Lambda publishes for one invocation."""
    by_function = [{"Name": "FunctionName", "Value": target.function_name}]
    by_resource = [*by_function, {"Name": "Resource", "Value": target.resource}]
    sets = [by_function, by_resource]
    if target.qualifier:
        sets.append([*by_resource, {"Name": "ExecutedVersion", "Value": executed_version}])
    return sets


def emit_metrics(fn: Any, target: InvocationTarget, result: InvocationResult) -> None:
    cloudwatch = resolve_dotted(_CLOUDWATCH_BACKENDS)[fn.account_id][fn.region]
    data = []
    for dimensions in _dimension_sets(target, str(fn.version)):
        for name, value, unit in (
            ("Invocations", 1.0, "Count"),
            ("Errors", 1.0 if result.errored else 0.0, "Count"),
            ("Duration", round(result.duration_ms, 2), "Milliseconds"),
        ):
            # No Timestamp: moto defaults to its own naive utcnow(), and compares naive and aware datetimes badly.
            data.append({"MetricName": name, "Value": value, "Unit": unit, "Dimensions": dimensions})
    cloudwatch.put_metric_data("AWS/Lambda", data)


def _log_lines(fn: Any, result: InvocationResult) -> list[str]:
    report = [
        f"REPORT RequestId: {result.request_id}",
        f"Duration: {result.duration_ms:.2f} ms",
        f"Billed Duration: {math.ceil(result.duration_ms)} ms",
        f"Memory Size: {fn.memory_size} MB",
    ]
    if result.max_memory_used_mb is not None:
        report.append(f"Max Memory Used: {result.max_memory_used_mb} MB")
    if result.init_duration_ms is not None:
        report.append(f"Init Duration: {result.init_duration_ms:.2f} ms")
    lines = [f"START RequestId: {result.request_id} Version: {fn.version}"]
    lines += [line for line in result.logs.splitlines() if line.strip()]
    if result.timed_out:
        lines.append(json.loads(result.payload)["errorMessage"])
    lines += [f"END RequestId: {result.request_id}", "\t".join(report)]
    return lines


def write_logs(fn: Any, result: InvocationResult) -> None:
    """Append the invocation to its execution environment's stream in ``/aws/lambda/<name>``."""
    logs = resolve_dotted(_LOGS_BACKENDS)[fn.account_id][fn.region]
    group_name = f"/aws/lambda/{fn.function_name}"
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": line} for line in _log_lines(fn, result)]
    with _LOG_LOCK:  # moto's log streams are not thread-safe
        logs.ensure_log_group(group_name)
        if result.log_stream_name not in logs.groups[group_name].streams:
            logs.create_log_stream(group_name, result.log_stream_name)
        logs.put_log_events(group_name, result.log_stream_name, events)


def embedded_metrics(logs: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The metric data each EMF line of ``logs`` carries: (namespace, PutMetricData entries) per directive.

    A line is EMF when it is a JSON object with ``_aws.CloudWatchMetrics``; each directive names a namespace,
    the dimension sets (lists of keys whose values are top-level members) and the metrics (top-level
    members holding a number or a list of numbers). A line that is not EMF, or a malformed one, is only a
    log line, as on AWS.
    """
    found = []
    for line in logs.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            document = json.loads(line)
            directives = document["_aws"]["CloudWatchMetrics"]
        except (ValueError, KeyError, TypeError):
            continue
        for directive in directives if isinstance(directives, list) else []:
            data = _directive_data(document, directive)
            if data:
                found.append((str(directive.get("Namespace")), data))
    return found


def _directive_data(document: dict[str, Any], directive: dict[str, Any]) -> list[dict[str, Any]]:
    data = []
    for keys in directive.get("Dimensions") or [[]]:
        if not all(isinstance(document.get(key), str) for key in keys):
            continue  # CloudWatch drops a dimension set whose values are missing
        dimensions = [{"Name": key, "Value": document[key]} for key in keys]
        for metric in directive.get("Metrics") or []:
            raw = document.get(metric.get("Name"))
            values = raw if isinstance(raw, list) else [raw]
            unit = metric.get("Unit", "None")
            data.extend(
                {"MetricName": metric["Name"], "Value": float(value), "Unit": unit, "Dimensions": dimensions}
                for value in values
                if isinstance(value, int | float) and not isinstance(value, bool)
            )
    return data


def emit_embedded_metrics(fn: Any, result: InvocationResult) -> None:
    cloudwatch = resolve_dotted(_CLOUDWATCH_BACKENDS)[fn.account_id][fn.region]
    for namespace, data in embedded_metrics(result.logs):
        cloudwatch.put_metric_data(namespace, data)


def record_invocation(fn: Any, target: InvocationTarget, result: InvocationResult) -> None:
    try:
        emit_metrics(fn, target, result)
        write_logs(fn, result)
        emit_embedded_metrics(fn, result)
    except Exception:  # telemetry must never fail an invocation that ran
        LOG.exception("could not record telemetry for %s", fn.function_name)
