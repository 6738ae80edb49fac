"""CloudWatch: percentile statistics, and ListMetrics listing each metric once.

``moto.cloudwatch.models.Statistics.get_statistics_for_type(self, stat)``
    moto computes Sum/Average/Minimum/Maximum/SampleCount only; a percentile (``p95``, ``p99.9``)
    returns None and GetMetricData then fails serializing it. Canary analysis reads Duration p95/p99
    per version, so we compute percentiles (nearest rank, over the period's single values; relied
    on: ``Statistics.metric_single_values_list``) and leave every other statistic to moto.
``moto.cloudwatch.models.CloudWatchBackend.get_filtered_metrics(self, metric_name, namespace, dimensions)``
    ListMetrics lists a metric (namespace, name, dimension set) once, however many data points it has.
    moto's de-duplication compares every dimension with every other (``are_dimensions_same``), so a
    metric with two dimensions or more is listed once per data point, found by a scan of every data
    point against every metric listed so far: quadratic. AWS/Lambda's per-alias metrics have two and
    three dimensions, so after a few thousand invocations one ListMetrics kept the server busy for
    minutes (the client timed out; the abandoned request went on starving every other one). We keep
    moto's filter for each data point and de-duplicate on the whole key, in one pass.
"""

from __future__ import annotations

import math
from typing import Any

from conveyor_local.moto_patches.registry import original, patches, relies_on

STATISTICS = "moto.cloudwatch.models.Statistics"
BACKEND = "moto.cloudwatch.models.CloudWatchBackend"


def percentile(values: list[float], rank: float) -> float | None:
    """The nearest-rank ``rank``-th percentile of ``values`` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(rank / 100 * len(ordered)) - 1)
    return ordered[min(index, len(ordered) - 1)]


def _statistics_for_type(self: Any, stat: str) -> Any:
    """Replacement for ``Statistics.get_statistics_for_type``: percentiles (``pNN``) too."""
    if stat.startswith("p"):
        try:
            rank = float(stat[1:])
        except ValueError:
            rank = -1.0
        if 0 < rank <= 100:
            return percentile([float(v) for v in self.metric_single_values_list], rank)
    return original(f"{STATISTICS}.get_statistics_for_type")(self, stat)


patches(f"{STATISTICS}.get_statistics_for_type", ("self", "stat"), _statistics_for_type)
relies_on(f"{STATISTICS}.metric_single_values_list")


def _filtered_metrics(self: Any, metric_name: str, namespace: str, dimensions: list[dict[str, str]]) -> list[Any]:
    """Replacement for ``CloudWatchBackend.get_filtered_metrics``: each matching metric once, in the order its
    first data point arrived."""
    seen: set[tuple[str, str, frozenset[tuple[str, str]]]] = set()
    found: list[Any] = []
    for datum in self.get_all_metrics():
        if not datum.filter(namespace=namespace, name=metric_name, dimensions=dimensions):
            continue
        key = (datum.namespace, datum.name, frozenset((d.name, d.value) for d in datum.dimensions))
        if key not in seen:
            seen.add(key)
            found.append(datum)
    return found


patches(f"{BACKEND}.get_filtered_metrics", ("self", "metric_name", "namespace", "dimensions"), _filtered_metrics)
relies_on(f"{BACKEND}.get_all_metrics", ("self",))
relies_on(
    "moto.cloudwatch.models.MetricDatumBase.filter",
    ("self", "namespace", "name", "dimensions", "already_present_metrics"),
)
