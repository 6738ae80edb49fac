"""CloudWatch: percentile statistics.

``moto.cloudwatch.models.Statistics.get_statistics_for_type(self, stat)``
    moto computes Sum/Average/Minimum/Maximum/SampleCount only; a percentile (``p95``, ``p99.9``)
    returns None and GetMetricData then fails serializing it. Canary analysis reads Duration p95/p99
    per version, so we compute percentiles (nearest rank, over the period's single values; relied
    on: ``Statistics.metric_single_values_list``) and leave every other statistic to moto.
"""

from __future__ import annotations

import math
from typing import Any

from conveyor_local.moto_patches.registry import original, patches, relies_on

STATISTICS = "moto.cloudwatch.models.Statistics"


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
