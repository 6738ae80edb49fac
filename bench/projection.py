"""What one deployment would cost on AWS, and how many a minute one account can run, with the arithmetic.

Inputs are what the local cloud observed for one warm deployment: API calls by operation (its
request log), state transitions (execution history), billed milliseconds per function (REPORT
lines). Prices are AWS's on-demand list prices in us-east-1 (December 2026):

- Step Functions Standard: $0.025 per 1,000 state transitions.
- Lambda arm64: $0.20 per 1M requests; $0.0000133334 per GB-second (the stage functions have
  512 MB). Billed milliseconds are the local workers' (moto answers slower than AWS, so this is a
  ceiling, not an estimate).
- DynamoDB on-demand: $0.625 per 1M write request units, $0.125 per 1M read request units; one
  unit per call is assumed (items up to 1 KB written, 4 KB read, strongly consistent); a larger
  item costs one unit per KB written.
- S3 Standard: $0.0004 per 1,000 GET/HEAD, $0.005 per 1,000 PUT/COPY/POST/LIST.
- CloudWatch API: $0.01 per 1,000 requests. SNS: $0.50 per 1M publishes. EventBridge: $1 per 1M
  custom events. Lambda control-plane calls, Step Functions API calls, CloudWatch Logs API reads:
  no request charge.

The throughput ceiling is Lambda's control-plane quota: 15 requests/s per account and Region for
every control-plane call but GetFunction and GetPolicy (own quotas), not raisable.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.observe import LAMBDA_CONTROL_PLANE_PER_SECOND, LAMBDA_DATA_PLANE, Calls
from bench.transitions import SFN_PER_TRANSITION

LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_ARM_PER_GB_SECOND = 0.0000133334
STAGE_MEMORY_GB = 512 / 1024
DYNAMODB_PER_WRITE = 0.625 / 1e6
DYNAMODB_PER_READ = 0.125 / 1e6
S3_PER_GET = 0.0004 / 1000
S3_PER_PUT = 0.005 / 1000
CLOUDWATCH_PER_REQUEST = 0.01 / 1000
SNS_PER_PUBLISH = 0.50 / 1e6
EVENTS_PER_EVENT = 1.0 / 1e6

_DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_DYNAMODB_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
_S3_GETS = frozenset({"GetObject", "HeadObject"})
_FREE_SERVICES = frozenset({"stepfunctions", "logs", "iam", "sts"})


@dataclass(frozen=True)
class Line:
    """One priced item: what, how many, at what unit price."""

    item: str
    quantity: float
    unit_price: float

    @property
    def dollars(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Projection:
    lines: tuple[Line, ...]
    unpriced: tuple[str, ...]
    quota_bound_calls: int

    @property
    def dollars(self) -> float:
        return sum(line.dollars for line in self.lines)

    @property
    def deployments_per_minute(self) -> float:
        if not self.quota_bound_calls:
            return float("inf")
        return LAMBDA_CONTROL_PLANE_PER_SECOND * 60 / self.quota_bound_calls


def project(calls: Calls, transitions: int, billed_ms: int, memory_gb: float = STAGE_MEMORY_GB) -> Projection:
    """Price one deployment's calls, transitions and billed Lambda time."""
    lines = [Line("Step Functions transitions", transitions, SFN_PER_TRANSITION)]
    lines.append(Line("Lambda requests (Invoke)", calls.count("lambda", LAMBDA_DATA_PLANE), LAMBDA_PER_REQUEST))
    gb_seconds = billed_ms / 1000 * memory_gb
    lines.append(Line(f"Lambda GB-s ({billed_ms} ms x {memory_gb:g} GB)", gb_seconds, LAMBDA_ARM_PER_GB_SECOND))
    lines.append(
        Line("DynamoDB write units (1 per call)", calls.count("dynamodb", _DYNAMODB_WRITES), DYNAMODB_PER_WRITE)
    )
    lines.append(Line("DynamoDB read units (1 per call)", calls.count("dynamodb", _DYNAMODB_READS), DYNAMODB_PER_READ))
    lines.append(Line("S3 GET/HEAD", calls.count("s3", _S3_GETS), S3_PER_GET))
    lines.append(Line("S3 PUT/LIST/other", calls.count("s3") - calls.count("s3", _S3_GETS), S3_PER_PUT))
    lines.append(Line("CloudWatch API", calls.count("cloudwatch"), CLOUDWATCH_PER_REQUEST))
    lines.append(Line("SNS publishes", calls.count("sns", {"Publish"}), SNS_PER_PUBLISH))
    lines.append(Line("EventBridge events", calls.count("events", {"PutEvents"}), EVENTS_PER_EVENT))
    priced = {"lambda", "dynamodb", "s3", "cloudwatch", "sns", "events", *_FREE_SERVICES}
    unpriced = tuple(sorted(service for service in calls.by_service() if service not in priced))
    return Projection(tuple(line for line in lines if line.quantity), unpriced, calls.lambda_quota_bound)


def describe(projection: Projection, indent: str = "      ") -> list[str]:
    """The arithmetic, one line per priced item, then the total and the throughput ceiling."""
    out = [
        f"{indent}{line.item:<34} {line.quantity:>10.4g} x ${line.unit_price:.10f} = ${line.dollars:.8f}"
        for line in projection.lines
    ]
    total = f"${projection.dollars:.8f}  (${projection.dollars * 1000:.4f} per 1,000 deployments)"
    out.append(f"{indent}{'total per deployment':<34} {total}")
    if projection.unpriced:
        out.append(f"{indent}not priced (no list price applied): {', '.join(projection.unpriced)}")
    out.append(
        f"{indent}ceiling: {LAMBDA_CONTROL_PLANE_PER_SECOND} control-plane requests/s x 60 s"
        f" / {projection.quota_bound_calls} quota-bound calls per deployment"
        f" = {projection.deployments_per_minute:.0f} deployments/min per account and Region"
    )
    return out
