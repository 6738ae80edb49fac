"""The bench's accounting: API calls by kind, the AWS projection's arithmetic, cold starts, CPU of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from bench import projection
from bench.observe import Calls, Invocations, RequestWindow, tree_cpu_seconds
from conveyor_local.requests_log import RequestCounts

_BURN = "import time\nwhile time.process_time() < {seconds}: pass\n"


def _calls(**by_operation: int) -> Calls:
    """``_calls(lambda__Invoke=2)`` -> 2 calls of lambda Invoke."""
    return Calls(Counter({tuple(key.split("__")): n for key, n in by_operation.items()}))  # type: ignore[misc]


def test_lambda_calls_are_split_into_invocations_control_plane_and_the_shared_quota() -> None:
    # Given a deployment's Lambda calls: invocations, two calls with quotas of their own, the rest
    calls = _calls(
        lambda__Invoke=13, lambda__GetFunction=4, lambda__GetPolicy=1, lambda__PublishVersion=2, lambda__GetAlias=6
    )

    # Then invocations are not control plane, and GetFunction/GetPolicy are not under the shared 15/s quota
    assert calls.lambda_control_plane == 13
    assert calls.lambda_quota_bound == 8
    # And the ceiling is 15 requests/s x 60 s over the quota-bound calls of one deployment
    assert calls.deployments_per_minute_ceiling() == pytest.approx(15 * 60 / 8)


def test_the_state_machines_invocations_are_told_from_the_calls_conveyors_functions_make() -> None:
    # Given a window in which Step Functions invoked the stages, the stages called DynamoDB, and the bench polled
    window = RequestWindow.__new__(RequestWindow)
    window.counts = RequestCounts(
        {
            ("states", "lambda", "Invoke"): 11,
            ("lambda", "dynamodb", "UpdateItem"): 9,
            ("lambda", "lambda", "GetAlias"): 2,
            ("app/conveyor-bench", "s3", "PutObject"): 1,
        }
    )

    # Then Conveyor's calls are both callers', the state machine's its invocations alone, and the bench's apart
    assert window.calls(None).total == 22
    assert window.calls(None, callers={RequestWindow.STATE_MACHINE}).by_operation == Counter({("lambda", "Invoke"): 11})
    assert window.calls("conveyor-bench").total == 1


def test_a_projection_prices_each_kind_of_call_and_shows_its_arithmetic() -> None:
    # Given one deployment's calls, transitions and billed stage time
    calls = _calls(
        dynamodb__UpdateItem=3, dynamodb__GetItem=2, s3__GetObject=1, s3__PutObject=1, lambda__Invoke=4,
        lambda__UpdateAlias=2, stepfunctions__DescribeExecution=1, kinesis__PutRecord=1,
    )  # fmt: skip

    # When it is projected
    result = projection.project(calls, transitions=20, billed_ms=2000)

    # Then every priced item is quantity x unit price, and the total is their sum
    priced = {line.item.split(" (")[0]: line.quantity for line in result.lines}
    assert priced["Step Functions transitions"] == 20
    assert priced["Lambda requests"] == 4
    assert priced["Lambda GB-s"] == pytest.approx(1.0)  # 2 s x 0.5 GB
    assert priced["DynamoDB write units"] == 3
    assert priced["DynamoDB read units"] == 2
    assert priced["S3 GET/HEAD"] == priced["S3 PUT/LIST/other"] == 1
    expected = (
        20 * 0.025 / 1000 + 4 * 0.2 / 1e6 + 1.0 * 0.0000133334 + 3 * 0.625 / 1e6 + 2 * 0.125 / 1e6
        + 0.0004 / 1000 + 0.005 / 1000
    )  # fmt: skip
    assert result.dollars == pytest.approx(expected)
    # And a service without a list price here is named, not silently priced at zero
    assert result.unpriced == ("kinesis",)
    assert result.deployments_per_minute == pytest.approx(15 * 60 / 2)
    assert any("= 450 deployments/min" in line for line in projection.describe(result))


def test_only_a_report_with_an_init_duration_is_a_cold_start() -> None:
    # Given a cold and a warm REPORT line of one function, and one of another
    seen = Invocations()
    seen.add_report("stage", "REPORT RequestId: a\tBilled Duration: 11 ms\tInit Duration: 412.50 ms")
    seen.add_report("stage", "REPORT RequestId: b\tDuration: 3.00 ms\tBilled Duration: 3 ms")
    seen.add_report("target", "REPORT RequestId: c\tDuration: 1.00 ms\tBilled Duration: 1 ms\tInit Duration: 90.00 ms")

    # Then each is counted, billed time adds up, and the target can be set apart
    assert seen.cold == Counter({"stage": 1, "target": 1})
    assert seen.invocations == Counter({"stage": 2, "target": 1})
    assert seen.billed_ms["stage"] == 14
    assert seen.without(["target"]).cold == Counter({"stage": 1})
    assert seen.only(["target"]).invocations == Counter({"target": 1})


def test_tree_cpu_counts_live_descendants_and_reaped_children() -> None:
    # Given this process's tree CPU so far
    before = tree_cpu_seconds(os.getpid())

    # When a child burns 0.3 CPU-seconds, says so, and stays alive until told to exit
    child = subprocess.Popen(
        [sys.executable, "-c", _BURN.format(seconds=0.3) + "print('burnt', flush=True)\ninput()\n"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "burnt\n"
        alive = tree_cpu_seconds(os.getpid())
    finally:
        child.communicate("\n")

    # Then the tree counts it while it runs, and still after it exited and was reaped (the kernel
    # samples CPU by clock tick, so allow for a third of it being missed)
    assert alive - before >= 0.2
    assert tree_cpu_seconds(os.getpid()) - before >= 0.2


def test_tree_cpu_of_a_missing_process_is_an_error() -> None:
    # Given a pid that has exited and been reaped
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()

    # Then measuring it is refused, naming the pid
    with pytest.raises(ProcessLookupError, match=str(child.pid)):
        tree_cpu_seconds(child.pid)


def test_the_stage_functions_are_the_ones_the_state_machine_names() -> None:
    # The bench's cold-start target counts the state machine's functions, not the outbox publisher or the reconciler
    from bench.__main__ import _state_machine_functions

    assert _state_machine_functions() == {"IntakeFunction", "RolloutFunction", "ReportFunction"}
