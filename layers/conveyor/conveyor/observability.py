"""The one Logger, Tracer and Metrics every handler and domain module imports."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

#: What the X-Ray SDK patches: the AWS SDK, which makes every call a stage sends out. Left to itself
#: (``patch_all``) it also imports and patches every other library it knows that happens to be importable
#: (``sqlite3`` on Lambda), which no stage uses and every cold start paid for.
TRACED_MODULES = ("botocore",)

logger = Logger()
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()


def outcome_metric(name: str, unit: MetricUnit, value: float, outcome: str) -> None:
    """Emit one metric with an ``outcome`` dimension beside ``service``, flushed at once as its own record.

    The invocation's ``metrics`` share one dimension set; this keeps ``outcome`` off the others.
    """
    with single_metric(name=name, unit=unit, value=value, default_dimensions=metrics.default_dimensions) as metric:
        metric.add_dimension(name="outcome", value=outcome)


__all__ = ["TRACED_MODULES", "MetricUnit", "logger", "metrics", "outcome_metric", "tracer"]
