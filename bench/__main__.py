"""``make bench``: every figure of docs/benchmarks.md, measured side by side in one run.

    python -m bench [--only coldstart,overhead,transitions,rollback,scale] [--runs 5] [--scale 10,25,50]

Prints figures and ratios; never asserts a timing. Exits non-zero only if a benchmark could not
produce its figure (a deployment hung or ended wrongly).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import coldstart, observe, overhead, projection, rollback, scale, transitions
from bench.stack import ROOT, BenchError, local_cloud

SECTIONS = ("coldstart", "overhead", "transitions", "rollback", "scale")
TIME_SCALE = 0.01


def say(text: str = "") -> None:
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def money(dollars: float) -> str:
    return f"${dollars:.6f}"


def section_coldstart(args: argparse.Namespace) -> None:
    say("\n## 3. Cold start: handler import time (fresh interpreter, Lambda sys.path) and package sizes")
    build = Path(tempfile.mkdtemp(prefix="conveyor-bench-build-")) / "build"
    started = time.perf_counter()
    coldstart.sam_build(build)
    say(f"  sam build: {time.perf_counter() - started:.1f}s into {build}")
    for package in coldstart.packages(build):
        largest = ", ".join(f"{name} {size / 1e6:.1f}" for name, size in package.largest[:4])
        say(f"  {package.name:<26} {package.bytes / 1e6:7.2f} MB unzipped   largest: {largest}")
        if package.name.endswith("Layer"):
            say(f"    layer vs 15 MB target: {package.bytes / 15e6:.2f}x ({verdict(package.bytes <= 15e6)})")
    imports, baseline, replaced, tracer_runs = coldstart.handler_imports(build, args.import_runs)
    if replaced:
        say(f"  (native arm64 packages imported as this host's build of the same version: {', '.join(replaced)})")
    say(
        f"  baseline `import boto3` (same interpreter layout, same round-robin): median {baseline.median_ms:.0f} ms"
        f" wall, {baseline.cpu_median_ms:.0f} ms CPU over {len(baseline.runs_ms)} runs (the verdict reads the CPU"
        " ratio: on a shared machine wall time swings with the other processes' load)"
    )
    for item in imports:
        slow = ", ".join(f"{module} {ms:.0f}" for module, ms in item.top[:4])
        ratio = item.cpu_ratio(baseline)
        say(
            f"  {item.function:<26} import: {ratio:.2f}x import boto3 in CPU (target <= 1.5x, {verdict(ratio <= 1.5)}),"
            f" {item.ratio(baseline):.2f}x in wall time (median {item.median_ms:.0f} ms)"
            f"  Tracer {item.tracer_ms:4.0f} ms   slowest self (ms): {slow}"
        )
        say(
            f"  {'':<26} import + first routed call (to its first stage, refused before AWS):"
            f" {item.first_call_cpu_ms / baseline.cpu_median_ms:.2f}x in CPU,"
            f" {item.first_call_ms / baseline.median_ms:.2f}x in wall time"
        )
    tracer = statistics.median(item.tracer_ms for item in imports)
    median = statistics.median(item.median_ms for item in imports)
    alone = statistics.median(tracer_runs)
    say(
        f"  Tracer: its modules' self time inside a handler's import ({', '.join(coldstart.TRACER_MODULES)}):"
        f" median {tracer:.0f} ms = {tracer / median:.0%} of a handler's median import;"
        f" Tracer() in an interpreter that imported only Powertools: median {alone:.0f} ms ="
        f" {alone / baseline.median_ms:.2f}x import boto3 (the X-Ray SDK plus the botocore it patches,"
        " which a handler imports anyway)"
    )


def section_overhead(bench, args: argparse.Namespace) -> None:
    say("\n## 1. Orchestration overhead: sample app, staging + production, all at once, no bake, warm")
    result = overhead.run(bench, args.runs, log=say)
    c, safe, bare = result.conveyor, result.safe, result.bare
    say(f"  medians of {len(c.runs)} runs after one warm-up; CPU = the local cloud's process tree (moto, Step")
    say("  Functions, every Lambda worker) over the run, plus the script's own thread for the two scripts")
    say(f"  {'':<44} {'wall':>8} {'CPU':>8} {'API calls':>10}")
    for contender, label in (
        (c, "Conveyor"),
        (safe, "minimum safe sequence"),
        (bare, "bare 7-call sequence (would fail on AWS)"),
    ):
        say(f"  {label:<44} {contender.wall:7.3f}s {contender.cpu:7.3f}s {contender.calls.total:10d}")
    wall, cpu = result.ratio(safe, lambda x: x.wall), result.ratio(safe, lambda x: x.cpu)
    say(
        f"  HEADLINE Conveyor / minimum safe sequence: wall {wall:.1f}x, CPU {cpu:.1f}x"
        f"  (target <= 3x each: wall {verdict(wall <= 3)}, CPU {verdict(cpu <= 3)})"
    )
    say(
        f"  beside it, Conveyor / bare 7-call sequence: wall {result.ratio(bare, lambda x: x.wall):.1f}x,"
        f" CPU {result.ratio(bare, lambda x: x.cpu):.1f}x  (not a baseline: on AWS its PublishVersion right"
        " after UpdateFunctionCode is refused while the update is in progress)"
    )
    say("  API calls per deployment, from the local cloud's request log (the bench's own calls left out by app id):")
    for contender in (c, safe):
        calls = contender.calls
        say(f"    {contender.name}: {calls.total} calls")
        for service, count in sorted(calls.by_service().items(), key=lambda item: -item[1]):
            say(f"      {service:<14} {count:3d}  {calls.describe(service)}")
        say(
            f"      Lambda control plane: {calls.lambda_control_plane} calls"
            f" ({calls.lambda_quota_bound} under the shared 15/s quota), besides"
            f" {calls.count('lambda', observe.LAMBDA_DATA_PLANE)} invocations"
        )
    ceiling = safe.calls.lambda_control_plane + 4
    median = c.median_by_calls
    invoked = median.by_state_machine.total if isinstance(median, overhead.ConveyorRun) else 0
    own = c.calls.total - invoked
    say(
        f"    targets: Conveyor's own calls {own} (its functions', the outbox publisher's included; target <= 60,"
        f" {verdict(own <= 60)}), besides Step Functions' {invoked} invocations of the stage functions (the issue"
        f" counts those apart: 101 calls of its own, 11 stage invocations); Lambda control plane"
        f" {c.calls.lambda_control_plane} (target <= the safe sequence's {safe.calls.lambda_control_plane} + 4 ="
        f" {ceiling}, {verdict(c.calls.lambda_control_plane <= ceiling)})"
    )
    polling = statistics.median(run.bench_requests for run in c.runs)
    say(f"    (the bench's polling while Conveyor ran: median {polling:.0f} requests, inside Conveyor's CPU window)")
    _cold_starts(result)
    stages: dict[str, list[float]] = {}
    for run in c.runs:
        for event in run.finished.record.events:
            stages.setdefault(event.stage, []).append(event.duration_ms)
    detail = ", ".join(f"{stage} {statistics.median(ms):.0f}" for stage, ms in stages.items())
    say(f"  median stage body (ms, from the ledger): {detail}")
    history = bench.history(c.runs[-1].finished.execution["executionArn"])
    lambdas = _lambda_seconds(history)
    say(
        f"  of one execution: {lambdas:.2f}s inside stage functions, "
        f"{_execution_seconds(history) - lambdas:.2f}s in the state machine between them"
    )
    _aws_projection(result, transitions.cost_of(history, TIME_SCALE).transitions)


def _state_machine_functions() -> set[str]:
    """The logical ids of the functions the state machine invokes (its ``DefinitionSubstitutions``' ``GetAtt``s):
    the stage functions, told apart from the others (the outbox publisher, the reconciler)."""
    from conveyor_local.provision import load_template

    resources = load_template(ROOT / "template.yaml")["Resources"].values()
    return {
        value["Fn::GetAtt"][0]
        for resource in resources
        if resource["Type"] == "AWS::Serverless::StateMachine"
        for value in resource["Properties"].get("DefinitionSubstitutions", {}).values()
        if isinstance(value, dict) and "Fn::GetAtt" in value
    }


def _cold_starts(result: overhead.OverheadResult) -> None:
    targets = set(result.targets.values())
    everything = result.conveyor.warmup.invocations
    first = everything.without(targets)
    logical = _state_machine_functions()
    stage_names = {name for name in first.invocations if name.rsplit("-", 1)[-1] in logical}
    stages, others = first.only(stage_names), first.without(stage_names)
    say("  cold functions per deployment (worker starts: REPORT lines with an Init Duration):")
    say(
        f"    first deployment on a fresh cloud (as on AWS once idle environments are reclaimed):"
        f" {len(stages.cold)} distinct stage functions cold-started (target <= 3, {verdict(len(stages.cold) <= 3)};"
        f" {sum(stages.cold.values())} worker starts, {sum(stages.invocations.values())} stage invocations):"
        f" {', '.join(sorted(stages.cold))}"
    )
    if others.cold:
        say(f"      beside them, not invoked by the state machine: {', '.join(sorted(others.cold))}")
    say(f"      target versions cold-started by their health invoke: {sum(everything.only(targets).cold.values())}")
    warm = [run.invocations.only(stage_names) for run in result.conveyor.runs]
    say(
        f"    warm runs: median {statistics.median(len(w.cold) for w in warm):.0f} stage functions cold-started,"
        f" {statistics.median(sum(w.invocations.values()) for w in warm):.0f} stage invocations"
    )


def _aws_projection(result: overhead.OverheadResult, transitions_per_deployment: int) -> None:
    targets = set(result.targets.values())
    billed = int(
        statistics.median(sum(run.invocations.without(targets).billed_ms.values()) for run in result.conveyor.runs)
    )
    say("  AWS projection of one warm deployment (list prices, us-east-1; see bench/projection.py):")
    say(f"    Conveyor ({transitions_per_deployment} transitions, stage functions' billed time as measured here):")
    for line in projection.describe(projection.project(result.conveyor.calls, transitions_per_deployment, billed)):
        say(line)
    say("    minimum safe sequence (run from a machine of your own; no orchestrator billed):")
    for line in projection.describe(projection.project(result.safe.calls, 0, 0)):
        say(line)


def _execution_seconds(history: list[dict]) -> float:
    return (history[-1]["timestamp"] - history[0]["timestamp"]).total_seconds()


def _lambda_seconds(history: list[dict]) -> float:
    total, started = 0.0, None
    for event in history:
        if event["type"] == "LambdaFunctionStarted":
            started = event["timestamp"]
        elif event["type"] in ("LambdaFunctionSucceeded", "LambdaFunctionFailed") and started is not None:
            total += (event["timestamp"] - started).total_seconds()
            started = None
    return total


def section_transitions(bench, args: argparse.Namespace) -> None:
    say("\n## 2. State transitions per deployment (from get_execution_history) and cost")
    say(
        "  Step Functions Standard $0.025/1000 transitions;"
        " CodePipeline V2 $0.002/action-minute (rounded up per action)"
    )
    known = transitions.schema_strategies()
    for name in known:
        if name not in transitions.STRATEGIES:
            say(f"  {name:<12} (no benchmark configuration for this strategy yet)")
            continue
        strategy = transitions.STRATEGIES[name]
        app = f"bench-{name.replace('_', '-')}"
        try:
            bench.create_app(app, strategy)
        except Exception as exc:  # the schema's fields for this strategy differ from ours
            say(f"  {name:<12} skipped: {strategy} is not valid for this pipeline schema ({exc})")
            continue
        done = bench.follow(bench.push(app, "1.0.1", bench.bundle(app, "1.0.1")), timeout=180)
        _cost_line(f"{name}", bench, done, strategy)
    # The failure path: a rollback in staging (the sample app, set up here too when this section runs alone).
    bench.create_sample()
    done = bench.follow(bench.push("hello", "8.0.0", bench.bundle("hello", "8.0.0", broken=True)))
    _cost_line("rollback", bench, done, {"type": "all_at_once", "note": "hello, fails health in staging"})


def _cost_line(label: str, bench, done, strategy: dict) -> None:
    cost = transitions.cost_of(bench.history(done.execution["executionArn"]), TIME_SCALE)
    ratio = cost.codepipeline_dollars / cost.sfn_dollars if cost.sfn_dollars else float("nan")
    target = ""
    if label == "all_at_once":
        target = f"  (target <= 30, {verdict(cost.transitions <= 30)})"
    say(
        f"  {label:<12} {done.execution['status']:<9} {cost.transitions:3d} transitions{target}"
        f"  SFN {money(cost.sfn_dollars)}  CodePipeline {cost.action_minutes} action-min = "
        f"{money(cost.codepipeline_dollars)}  (CodePipeline / SFN {ratio:.1f}x)   {strategy}"
    )
    say(f"  {'':<12} states entered: {dict(cost.states)}")


def section_rollback(bench, args: argparse.Namespace) -> None:
    say("\n## 4. Rollback latency: failed verdict -> alias on the old version at 100% (ledger timestamps)")
    functions = bench.create_sample()
    runs = rollback.run(bench, functions, args.runs, log=say)
    gap = statistics.median(r.verdict_to_restored_ms for r in runs)
    own = statistics.median(r.alias_call_ms for r in runs)
    say(
        f"  verdict -> restored: median {gap:.0f} ms over {len(runs)} runs ({gap / 1000:.2f}x the 1 s target,"
        f" {verdict(gap <= 1000)})"
    )
    say(f"  of which the alias call itself: median {own:.0f} ms ({own / gap:.0%} of it)")


def section_scale(bench, args: argparse.Namespace) -> None:
    say("\n## 5. Scale: N apps pushed at once (two environments each, all at once)")
    results = []
    for n in args.scale:
        results.append(scale.run(bench, n, TIME_SCALE, log=say))
    base = results[0]
    for r in results:
        transitions_total = sum(c.transitions for c in r.costs)
        sfn = sum(c.sfn_dollars for c in r.costs)
        cp = sum(c.codepipeline_dollars for c in r.costs)
        say(
            f"  N={r.apps:<3} {'all deployed exactly once' if r.exactly_once else 'NOT exactly once'}"
            f"  wall {r.wall_seconds:6.1f}s  {r.per_minute:6.1f} deployments/min"
            f" ({r.per_minute / base.per_minute:.2f}x N={base.apps})"
            f"  transitions {transitions_total} ({transitions_total / r.apps:.1f}/deployment)"
            f"  SFN {money(sfn)}  CodePipeline {money(cp)}"
        )
        for problem in r.problems[:10]:
            say(f"      problem: {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, default=5, help="measured runs for overhead and rollback")
    parser.add_argument("--import-runs", type=int, default=5, help="fresh interpreters per handler")
    parser.add_argument("--scale", default="10,25,50", help="app counts pushed at once")
    args = parser.parse_args(argv)
    args.scale = [int(n) for n in args.scale.split(",") if n]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    started = time.perf_counter()
    say("# Conveyor benchmarks (figures, not assertions; ratios are measured side by side in this run)")
    try:
        if "coldstart" in only:
            section_coldstart(args)
        cloud_sections = [s for s in ("overhead", "transitions", "rollback", "scale") if s in only]
        if cloud_sections:
            with local_cloud(TIME_SCALE) as bench:
                say(f"\n(local cloud up; time scale {TIME_SCALE}: Wait states and retry sleeps run 100x faster)")
                for name in cloud_sections:
                    globals()[f"section_{name}"](bench, args)
    except BenchError as exc:
        say(f"\nbenchmark failed: {exc}")
        return 1
    say(f"\n(total {time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
