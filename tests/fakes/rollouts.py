"""Ledger records of whole rollouts, as the stages write them, for the report's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord, StageEvent

from conveyor_cli.report_sources import EnvironmentMetrics, MetricPoint

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INJECTED = "<script>document.title='pwned'</script>"
"""What a hostile app name or hook answer might carry: the report must show it, never run it."""


def _event(stage: str, env: str | None, at: float, took: float, status: str = "succeeded", **detail: Any) -> StageEvent:
    return StageEvent(
        deployment_id="d-1",
        stage=stage,
        environment=env,
        status=status,
        started_at=START + timedelta(seconds=at),
        finished_at=START + timedelta(seconds=at + took),
        duration_ms=took * 1000,
        detail=detail,
    )


def _metrics_check(status: str, new_rate: float, old_rate: float, new_p95: float) -> dict[str, Any]:
    return {
        "name": "metrics:error_rate",
        "kind": "metrics",
        "status": status,
        "reason": f"errors {new_rate:.1f}% on v3 vs {old_rate:.1f}% on v2 over 60 s, limit 1%",
        "evidence": {
            "window_seconds": 60,
            "new": {
                "version": "3",
                "invocations": 40,
                "errors": round(new_rate * 0.4),
                "error_rate_percent": new_rate,
                "p95_ms": new_p95,
                "p99_ms": None,
            },
            "old": {
                "version": "2",
                "invocations": 90,
                "errors": 0,
                "error_rate_percent": old_rate,
                "p95_ms": 20.0,
                "p99_ms": None,
            },
        },
    }


def _verdict(at: float, status: str, weight: int, step: int, checks: list[dict[str, Any]], reason: str) -> StageEvent:
    return _event(
        "EvaluateHealth",
        "production",
        at,
        0.5,
        status="failed" if status == "fail" else status,
        weight=weight,
        step=step,
        reason=reason,
        checks=checks,
        evaluated_at=(START + timedelta(seconds=at + 0.5)).isoformat(),
    )


def rolled_back_canary(app: str = "hello", hook_detail: str = "5 greetings answered") -> DeploymentRecord:
    """A canary at 30% that passed once, then failed on its error rate and was rolled back to version 2."""
    hook = {
        "name": "hook:pre_traffic",
        "kind": "hook",
        "status": "pass",
        "reason": f"pre_traffic hook smoke:$LATEST passed: {hook_detail}",
        "evidence": {"hook": "smoke:$LATEST", "duration_ms": 12.0, "detail": hook_detail},
    }
    events = [
        _event("ValidateArtifact", None, 0.2, 0.8, package_sha256="ab" * 32, environments=["production"]),
        _event("Deploy", "production", 1.5, 1.0, function_name="hello-production", version_after="3"),
        _event("ShiftTraffic", "production", 3.0, 0.3, weight=30, step=1, of=2),
        _verdict(40.0, "pass", 30, 1, [hook, _metrics_check("pass", 0.0, 0.0, 25.0)], "all checks passed"),
        _verdict(
            70.0,
            "fail",
            30,
            1,
            [_metrics_check("fail", 30.0, 0.0, 31.0)],
            "errors 30.0% on v3 vs 0.0% on v2 over 60 s, limit 1%",
        ),
        _event(
            "RollBack",
            "production",
            71.0,
            0.2,
            environment="production",
            function_name="hello-production",
            alias="live",
            restored_version="2",
            rolled_back_from="3",
            duration_ms=180.5,
            reason="health check failed at 30% traffic: errors 30.0% on v3",
        ),
        _event("NotifyFailure", None, 72.0, 0.4, subject="[Conveyor] hello 2.1.0: ROLLED_BACK in production"),
    ]
    entry = EnvironmentEntry(
        status=EnvironmentStatus.ROLLED_BACK,
        function_name="hello-production",
        alias="live",
        version_before="2",
        version_after="3",
        weight=0,
        rollback={
            "environment": "production",
            "function_name": "hello-production",
            "alias": "live",
            "restored_version": "2",
            "rolled_back_from": "3",
            "duration_ms": 180.5,
            "reason": "health check failed at 30% traffic: errors 30.0% on v3",
        },
    )
    return DeploymentRecord(
        deployment_id="d-1",
        app=app,
        version="2.1.0",
        status=Outcome.ROLLED_BACK,
        created_at=START,
        updated_at=START + timedelta(seconds=72.4),
        finished_at=START + timedelta(seconds=72.4),
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:conveyor:x",
        environments={"production": entry},
        failure={"error": "DeploymentRolledBackError", "reason": "health check failed at 30% traffic"},
        events=events,
    )


def canary_metrics() -> EnvironmentMetrics:
    """One point every 10 s: version 3 healthy until 40 s, then 30% errors; version 2 always healthy."""
    new = [
        MetricPoint(at=START + timedelta(seconds=t), invocations=10, errors=0 if t < 45 else 3, p95_ms=25.0)
        for t in range(10, 71, 10)
    ]
    old = [
        MetricPoint(at=START + timedelta(seconds=t), invocations=25, errors=0, p95_ms=20.0) for t in range(0, 71, 10)
    ]
    return EnvironmentMetrics(period_seconds=10, versions={"3": new, "2": old})
