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
    )
    assert aborted.describe() == f"d-1 ABORTED: aborted by alice with `conveyor abort`; {said}"
