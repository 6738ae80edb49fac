"""The verdict rules of per-version metric analysis: pure functions of the numbers, no AWS.

The new version is judged on the alias's real traffic to it over a window: against absolute limits
(error rate, p95/p99 latency) and against the old version over the same window (error-rate ratio,
latency ratio). Too few invocations of the new version is *inconclusive*, never a pass: the caller's
``on_inconclusive`` policy decides what that means.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from conveyor.domain.contracts import CheckResult, TrafficState, Verdict
from conveyor.domain.pipeline import MAX_WAIT_SECONDS, MetricsCheck
from conveyor.domain.ports import VersionStats
from conveyor.domain.time_scale import UNSCALED, TimeScale

DEFAULT_WINDOW_SECONDS = 60


def metric_window(
    spec: MetricsCheck, traffic: TrafficState | None, now: datetime, scale: TimeScale = UNSCALED
) -> tuple[datetime, int]:
    """The window's start and its nominal length in seconds: the spec's, else the step's wait or the time
    since the step started, whichever is longer.

    ``max(wait, since the step started)`` covers the whole step on AWS (where the wait really elapses).
    Under a time scale (the local cloud) the window is scaled like the waits: nominally as long as on
    AWS, it starts ``nominal x scale`` wall seconds ago, so a local verdict counts the traffic of the step
    being judged, as AWS would, and not all the traffic since the version was born (metrics are stamped
    in wall time). At scale 0 (no waits at all) it spans the step.
    """
    since = (now - traffic.started_at).total_seconds() if traffic is not None and traffic.started_at else 0.0
    if spec.window_seconds is not None:
        seconds = spec.window_seconds
    elif traffic is None:
        seconds = DEFAULT_WINDOW_SECONDS
    else:
        elapsed = min(scale.nominal_seconds(since), float(MAX_WAIT_SECONDS))
        seconds = max(traffic.wait_seconds, math.ceil(elapsed), 1)
    wall = scale.wall_seconds(seconds) if scale.factor > 0 else max(since, 1.0)
    return now - timedelta(seconds=wall), seconds


def window_text(seconds: int, scale: TimeScale = UNSCALED) -> str:
    """``over 300 s``, or ``over 300 s (3 s at time scale 0.01)`` under a time scale."""
    return "over " + scale.annotate(f"{seconds} s", seconds)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _limit(value: float) -> str:
    return f"{value:g}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _evidence(new: VersionStats, old: VersionStats | None, window_seconds: int) -> dict[str, Any]:
    def stats(s: VersionStats) -> dict[str, Any]:
        rate = s.error_rate_percent
        return {
            "version": s.version,
            "invocations": s.invocations,
            "errors": s.errors,
            "error_rate_percent": None if rate is None else round(rate, 2),
            "p95_ms": s.p95_ms,
            "p99_ms": s.p99_ms,
        }

    evidence: dict[str, Any] = {"window_seconds": window_seconds, "new": stats(new)}
    if old is not None:
        evidence["old"] = stats(old)
    return evidence


def _check(name: str, status: Verdict, reason: str, evidence: dict[str, Any]) -> CheckResult:
    return CheckResult(name=f"metrics:{name}", kind="metrics", status=status, reason=reason, evidence=evidence)


def judge_metrics(
    spec: MetricsCheck,
    new: VersionStats,
    old: VersionStats | None,
    window_seconds: int,
    scale: TimeScale = UNSCALED,
) -> list[CheckResult]:
    """One check per rule; a single inconclusive check when the new version has too few invocations.

    ``window_seconds`` is nominal (as the spec's waits are written); under a time scale each reason
    says the wall time beside it.
    """
    evidence = _evidence(new, old, window_seconds)
    if scale.scaled:
        evidence |= {"window_wall_seconds": round(scale.wall_seconds(window_seconds), 3), "time_scale": scale.factor}
    over = window_text(window_seconds, scale)
    if new.invocations < spec.min_invocations:
        return [
            _check(
                "data",
                "inconclusive",
                f"not enough data: {new.invocations} invocations of v{new.version} {over} "
                f"(at least {spec.min_invocations} needed)",
                evidence,
            )
        ]
    has_baseline = old is not None and old.invocations >= spec.min_invocations
    baseline = f" vs {_pct(old.error_rate_percent)} on v{old.version}" if old is not None and has_baseline else ""
    checks: list[CheckResult] = []
    rate = new.error_rate_percent or 0.0
    if spec.max_error_rate_percent is not None:
        failed = rate > spec.max_error_rate_percent
        checks.append(
            _check(
                "error_rate",
                "fail" if failed else "pass",
                f"errors {_pct(rate)} on v{new.version}{baseline} {over}, limit {_limit(spec.max_error_rate_percent)}% "
                f"({new.errors} of {new.invocations})",
                evidence,
            )
        )
    for name, value, limit in (("p95", new.p95_ms, spec.max_p95_ms), ("p99", new.p99_ms, spec.max_p99_ms)):
        if limit is None:
            continue
        if value is None:
            checks.append(_check(name, "inconclusive", f"no {name} latency for v{new.version} {over}", evidence))
            continue
        checks.append(
            _check(
                name,
                "fail" if value > limit else "pass",
                f"{name} {_ms(value)} on v{new.version} {over}, limit {_limit(limit)} ms",
                evidence,
            )
        )
    checks.extend(_compare(spec, new, old, has_baseline=has_baseline, over=over, evidence=evidence))
    return checks


def _compare(
    spec: MetricsCheck,
    new: VersionStats,
    old: VersionStats | None,
    *,
    has_baseline: bool,
    over: str,
    evidence: dict[str, Any],
) -> list[CheckResult]:
    """New vs old over the same window; skipped (and said so) when the old version served too little."""
    wanted = spec.max_error_rate_ratio is not None or spec.max_latency_ratio is not None
    if not wanted:
        return []
    if old is None or not has_baseline:
        served = "no old version" if old is None else f"v{old.version} served {old.invocations} invocations"
        # Without an absolute limit nothing else judges the new version: this check cannot pass it.
        absolute = any(limit is not None for limit in (spec.max_error_rate_percent, spec.max_p95_ms, spec.max_p99_ms))
        status: Verdict = "pass" if absolute else "inconclusive"
        then = (
            "absolute limits apply"
            if absolute
            else "the spec sets no absolute limit to judge the new version by "
            "(max_error_rate_percent, max_p95_ms or max_p99_ms)"
        )
        return [
            _check(
                "baseline",
                status,
                f"no baseline comparison: {served} {over} (at least {spec.min_invocations} needed); {then}",
                evidence,
            )
        ]
    checks = []
    if spec.max_error_rate_ratio is not None:
        new_rate, old_rate = new.error_rate_percent or 0.0, old.error_rate_percent or 0.0
        regressed = (
            new_rate > old_rate * spec.max_error_rate_ratio and new_rate - old_rate > spec.error_rate_tolerance_percent
        )
        ratio = f" ({new_rate / old_rate:.1f}x)" if old_rate else ""  # no ratio to a baseline without errors
        checks.append(
            _check(
                "error_rate_vs_baseline",
                "fail" if regressed else "pass",
                f"errors {_pct(new_rate)} on v{new.version} vs {_pct(old_rate)} on v{old.version} {over}"
                f"{ratio}, limit {_limit(spec.max_error_rate_ratio)}x "
                f"(+{_limit(spec.error_rate_tolerance_percent)} points tolerated)",
                evidence,
            )
        )
    if spec.max_latency_ratio is not None:
        if new.p95_ms is None or old.p95_ms is None:
            checks.append(_check("latency_vs_baseline", "inconclusive", f"no p95 latency to compare {over}", evidence))
        else:
            regressed = (
                new.p95_ms > old.p95_ms * spec.max_latency_ratio and new.p95_ms - old.p95_ms > spec.latency_tolerance_ms
            )
            checks.append(
                _check(
                    "latency_vs_baseline",
                    "fail" if regressed else "pass",
                    f"p95 {_ms(new.p95_ms)} on v{new.version} vs {_ms(old.p95_ms)} on v{old.version} {over}, "
                    f"limit {_limit(spec.max_latency_ratio)}x (+{_limit(spec.latency_tolerance_ms)} ms tolerated)",
                    evidence,
                )
            )
    return checks
