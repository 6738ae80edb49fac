"""``conveyor abort`` says what the abort left where: restored, kept live, or nothing moved."""

from __future__ import annotations

import pytest

from conveyor_cli.abort import Aborted


@pytest.mark.parametrize(
    ("restored", "kept", "said"),
    [
        ([], [], "no traffic had moved"),
        (["production"], [], "traffic restored in production"),
        ([], ["staging"], "staging kept the release (live before the abort)"),
        (
            ["production"],
            ["staging"],
            "traffic restored in production; staging kept the release (live before the abort)",
        ),
        (
            ["staging"],
            [],
            "traffic restored in staging; the migration 'schema' ran in staging and no down-migration did",
        ),
    ],
)
def test_the_summary_names_each_environment_the_abort_touched_or_left(
    restored: list[str], kept: list[str], said: str
) -> None:
    aborted = Aborted(
        deployment_id="d-1",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:deployments:e-1",
        by="alice",
        cause="aborted by alice with `conveyor abort`",
        outcome="ABORTED",
        restored=restored,
        kept=kept,
        data_left_migrated=["the migration 'schema' ran in staging and no down-migration did"]
        if "migration" in said
        else [],
    )
    assert aborted.describe() == f"d-1 ABORTED: aborted by alice with `conveyor abort`; {said}"


def test_an_abort_while_the_ledger_is_down_says_how_to_stop_the_execution_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from conveyor.domain.errors import LedgerError

    from conveyor_cli import operations
    from conveyor_cli.abort import open_record
    from conveyor_cli.context import CliError

    class DownLedger:
        def get(self, deployment_id: str) -> None:
            raise LedgerError("ledger get failed: InternalServerError")

    monkeypatch.setattr(operations, "ledger", lambda cloud: DownLedger())
    cloud = SimpleNamespace(outputs=SimpleNamespace(state_machine_arn="arn:aws:states:us-east-1:1:stateMachine:sm"))

    with pytest.raises(CliError) as refused:
        open_record(cloud, "d-1")  # type: ignore[arg-type]
    said = str(refused.value)
    assert "cannot read the ledger (ledger get failed: InternalServerError)" in said
    assert "aws stepfunctions list-executions --state-machine-arn arn:aws:states:us-east-1:1:stateMachine:sm" in said
    assert "aws stepfunctions stop-execution --execution-arn ARN" in said
