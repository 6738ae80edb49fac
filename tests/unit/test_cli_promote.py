"""``conveyor promote``: a paused rollout goes on now; a rollout in a Wait state is refused honestly, not pretended."""

from __future__ import annotations

from typing import Any

import pytest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord
from conveyor.domain.timing import utcnow

from conveyor_cli import approvals, operations
from conveyor_cli.context import CliError
from tests.fakes import FakeLedger


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> FakeLedger:
    fake = FakeLedger()
    fake.start(
        DeploymentRecord(
            deployment_id="d-1",
            app="hello",
            version="1.0.0",
            status=Outcome.IN_PROGRESS,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
    )
    monkeypatch.setattr(operations, "ledger", lambda cloud: fake)
    return fake


def test_a_rollout_paused_for_a_decision_is_promoted_through_the_approve_path(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given production paused at 10% for a decision
    ledger.update_environment(
        "d-1",
        "production",
        {
            "status": EnvironmentStatus.AWAITING_APPROVAL,
            "weight": 10,
            "approval": {"kind": "decision", "task_token": "t"},
        },
    )
    decided: dict[str, Any] = {}
    monkeypatch.setattr(approvals, "decide", lambda cloud, deployment_id, **kw: decided.update(kw) or {"ok": True})
    # When it is promoted without naming the environment
    approvals.promote(object(), "d-1", environment=None, reason="looks good")  # type: ignore[arg-type]
    # Then the decision is an approval of that environment (by the caller's AWS identity, as every approval)
    assert decided == {"environment": "production", "verdict": "approve", "reason": "looks good"}


def test_a_rollout_waiting_out_its_bake_is_refused_with_what_can_be_done(ledger: FakeLedger) -> None:
    ledger.update_environment("d-1", "staging", {"status": EnvironmentStatus.SHIFTING, "weight": 20})
    with pytest.raises(CliError, match=r"rolling out in staging at 20%.*Wait state.*conveyor abort d-1"):
        approvals.promote(object(), "d-1", environment=None, reason=None)  # type: ignore[arg-type]


def test_an_approval_gate_is_not_a_promotion(ledger: FakeLedger) -> None:
    ledger.update_environment(
        "d-1", "production", {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": {"kind": "approval"}}
    )
    with pytest.raises(CliError, match=r"awaits approval in production.*`conveyor approve d-1 --env production`"):
        approvals.promote(object(), "d-1", environment=None, reason=None)  # type: ignore[arg-type]
