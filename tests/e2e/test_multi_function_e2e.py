"""A release of several functions, end to end on the local cloud: the real template, ASL and handlers, started by
an upload of one package that the orders app's API and worker functions both run (each with its own handler).

Both aliases move together at every traffic step; a release whose worker fails its check is rolled back on
both, and the on-call is told what failed and that both were restored.
"""

from __future__ import annotations

import pytest
import yaml
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.outcome import Outcome

from conveyor_cli import operations
from conveyor_cli.context import CliError
from conveyor_cli.live import live_environments
from conveyor_cli.orders_sample import orders_bundle, set_up_orders
from conveyor_cli.report import report_html
from conveyor_cli.sample import EXAMPLES, alias_versions

from .conftest import Stage

pytestmark = pytest.mark.e2e

FUNCTIONS = {"api": "orders-api", "worker": "orders-worker"}


@pytest.fixture(scope="module")
def orders(stage: Stage) -> None:
    """``orders-api`` and ``orders-worker`` on release 1.0.0, their pipeline registered."""
    set_up_orders(stage.cloud)


def push(stage: Stage, source: str, version: str) -> str:
    return str(operations.push(stage.cloud, orders_bundle(EXAMPLES / source, version, stage.workdir))["deployment_id"])


def test_both_functions_move_together_and_a_broken_worker_rolls_both_back(stage: Stage, orders: None) -> None:
    # When a good release is pushed
    before = alias_versions(stage.cloud, FUNCTIONS)
    good = push(stage, "orders", "1.1.0")
    record = operations.wait(stage.cloud, good, timeout=120)

    # Then each function published its version, and both aliases took each step together: 25%, then 100%
    assert record.status is Outcome.SUCCEEDED, record.failure
    live = alias_versions(stage.cloud, FUNCTIONS)
    for name in FUNCTIONS:
        assert live[name]["version"] != before[name]["version"], name
        assert not live[name]["routing"], name
    shifts = [e for e in record.events if e.stage == "ShiftTraffic" and not e.failed]
    assert [e.detail["weight"] for e in shifts] == [25, 100]
    assert all(e.detail["functions"] == ["orders-api", "orders-worker"] for e in shifts)
    entry = record.environments["production"]
    assert entry.status is EnvironmentStatus.LIVE
    assert [c["version_after"] for c in entry.companions or []] == [live["worker"]["version"]]
    answer = stage.cloud.client("lambda").invoke(
        FunctionName="orders-worker", Qualifier="live", Payload=b'{"probe": "health"}'
    )
    assert b'"release": "1.1.0"' in answer["Payload"].read()  # the worker runs the release's package, its handler
    stage.notifications_naming(good)  # (none expected; cleared)
    # And `conveyor live` shows what each function serves
    serving = [(e.function_name, e.release, e.lambda_version) for e in live_environments(stage.cloud, "orders")]
    assert serving == [
        ("orders-api", "1.1.0", live["api"]["version"]),
        ("orders-worker", "1.1.0", live["worker"]["version"]),
    ]

    # When a release whose worker cannot start is pushed
    broken = push(stage, "orders-broken", "1.2.0")
    record = operations.wait(stage.cloud, broken, timeout=120)

    # Then the worker's check failed at 25%, and both aliases serve 1.1.0's versions alone again
    assert record.status is Outcome.ROLLED_BACK, record.failure
    entry = record.environments["production"]
    verdict = entry.verdict or {}
    assert verdict["weight"] == 25
    assert "orders-worker" in verdict["reason"]
    assert "FULFILMENT_QUEUE_URL" in verdict["reason"]
    assert alias_versions(stage.cloud, FUNCTIONS) == live
    rollback = entry.rollback or {}
    assert rollback["restored_version"] == live["api"]["version"]
    assert [(c["function_name"], c["restored_version"]) for c in rollback["companions"]] == [
        ("orders-worker", live["worker"]["version"])
    ]

    # And the rollout's report names both functions and each one restored
    page = report_html(stage.cloud, broken)
    assert "orders-api+orders-worker:live" in page
    assert f"orders-worker: version {live['worker']['version']} (was version" in page

    # And the on-call is told what failed and that both were restored
    [note] = stage.await_notifications(broken, "the rollback notification")
    assert "ROLLED_BACK" in note["subject"]
    assert f"orders-api:live restored to version {live['api']['version']}" in note["message"]
    assert f"and orders-worker:live restored to version {live['worker']['version']}" in note["message"]


def test_another_app_naming_one_of_the_functions_is_refused_at_its_field(stage: Stage, orders: None) -> None:
    spec = stage.workdir / "billing.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "app": "billing",
                "environments": [
                    {
                        "name": "production",
                        "target": {"functions": ["billing-api", "orders-worker"]},
                        "health": {"synthetic": {"expect": {"status": "ok"}}},
                    }
                ],
            }
        )
    )
    with pytest.raises(CliError) as refused:
        operations.apply_pipeline(stage.cloud, spec)
    message = str(refused.value)
    assert message.startswith(f"{spec}: environments[0] (production).target.functions[1]: function ")
    assert "orders-worker belongs to app 'orders' (environment 'production'" in message


def test_the_sample_set_up_again_keeps_the_pipeline_registered(stage: Stage, orders: None) -> None:
    # Given the orders sample set up (the fixture), When it is set up again (`conveyor local sample --orders`)
    again = set_up_orders(stage.cloud)
    # Then nothing is registered anew: a spec registered since (an operator's own) would have been replaced
    assert any(line.startswith("pipeline orders (the one registered") for line in again.existed)
    assert not any(line.startswith("pipeline") for line in again.created)
