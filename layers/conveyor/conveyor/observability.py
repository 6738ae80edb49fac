"""The one Logger, Tracer and Metrics every handler and domain module imports."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

#: What the X-Ray SDK patches: the AWS SDK, which makes every call a stage sends out. Left to itself
#: (``patch_all``) it also imports and patches every other library it knows that happens to be importable
#: (``sqlite3`` on Lambda), which no stage uses and every cold start paid for.
TRACED_MODULES = ("botocore",)

logger = Logger()
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

__all__ = ["TRACED_MODULES", "MetricUnit", "logger", "metrics", "tracer"]
