"""Figure 4: rollback latency, from the failed verdict to the alias serving the old version at 100%.

A broken build of the sample app fails its staging health check and is rolled back. From the
ledger: the failed ``EvaluateHealth`` event's ``finished_at`` to the ``RollBack`` event's
``finished_at`` (what an operator waits for: the Choice, the Lambda invoke, the alias call and
the ledger write), and the rollback's own measured duration (the alias call alone). The alias
is checked afterwards: old version, no additional routing weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.stack import Bench, BenchError, Finished


@dataclass
class RollbackRun:
    verdict_to_restored_ms: float
    alias_call_ms: float
    finished: Finished


def run(bench: Bench, functions: dict[str, str], runs: int, log: callable = print) -> list[RollbackRun]:
    results = []
    for index in range(runs + 1):
        version = f"9.0.{index}"
        before = {env: bench.alias(fn) for env, fn in functions.items()}
        done = bench.follow(bench.push("hello", version, bench.bundle("hello", version, broken=True)))
        if done.record.status.value != "ROLLED_BACK":
            raise BenchError(f"broken build {version} ended {done.record.status.value}, expected ROLLED_BACK")
        events = done.record.events
        rolled = next((e for e in events if e.stage == "RollBack"), None)
        verdicts = [e for e in events if e.stage == "EvaluateHealth" and rolled and e.environment == rolled.environment]
        if rolled is None or not verdicts:
            raise BenchError(f"broken build {version}: no EvaluateHealth -> RollBack in the ledger: {events}")
        verdict = verdicts[-1]  # the failed verdict is the last one judged before the rollback
        after = bench.alias(functions[verdict.environment])
        expected = before[verdict.environment]["version"]
        if after["version"] != expected or after["routing"]:
            raise BenchError(f"after rollback {verdict.environment} serves {after}, expected v{expected} at 100%")
        gap = (rolled.finished_at - verdict.finished_at).total_seconds() * 1000
        own = float(rolled.detail.get("duration_ms", rolled.duration_ms))
        if index == 0:
            log(f"    warm-up: verdict -> restored {gap:.0f} ms (cold RollBack worker)")
            continue
        log(f"    run {index}: verdict -> restored {gap:.0f} ms, alias call {own:.0f} ms")
        results.append(RollbackRun(gap, own, done))
    return results
