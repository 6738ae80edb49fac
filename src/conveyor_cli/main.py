"""``conveyor``: the operator CLI. Run ``conveyor --help``.

Every read command has ``--json``. Exit code 0 on success, non-zero with a one-line reason.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from conveyor.domain.dora import dora_metrics
from conveyor.domain.errors import ConveyorError, LedgerError
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.pipeline import PipelineSpec, pipeline_schema
from conveyor.domain.records import StageEvent
from conveyor.domain.spec_defaults import effective_values, judging_defaults, metric_rule_note
from conveyor.domain.time_scale import TimeScale, seconds_text
from conveyor.domain.validation import describe
from pydantic import ValidationError

from conveyor_cli import ci, operations
from conveyor_cli.context import CliError, Cloud, state_dir, wants_local
from conveyor_cli.packaging import build_bundle
from conveyor_cli.sample import ROOT, SAMPLE_PIPELINE
from conveyor_cli.status import (
    ExitCode,
    as_json,
    exit_code,
    exit_codes_help,
    not_in_ledger,
    redacted,
    render,
    render_event,
    render_header,
    stopped_note,
)
from conveyor_local.persistence import RestoreSummary
from conveyor_local.server import LocalCloudError, client_env, read_state, start_background, stop


def _print(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str))


def _cloud(args: argparse.Namespace) -> Cloud:
    return Cloud(local=wants_local(args.local), stack_name=args.stack_name)


# --- local ---------------------------------------------------------------------------------
def cmd_local_up(args: argparse.Namespace) -> int:
    state = start_background(
        args.port, _template(args.template), state_dir(), args.time_scale, fresh=args.fresh, restart=args.restart
    )
    already = " already" if state.get("already_running") else ""
    print(f"local cloud{already} running at {state['endpoint']} (pid {state['pid']}); `eval $(conveyor local env)`")
    scale = TimeScale(factor=float(state.get("time_scale", 1.0)))
    if scale.scaled:
        print(
            f"time scale {scale.factor:g}: the spec's waits pass that much faster (a 300 s bake takes "
            f"{seconds_text(scale.wall_seconds(300))}); times are shown nominal and wall"
        )
    if "restored" in state:
        print(RestoreSummary.model_validate(state["restored"]).describe())
    return 0


def _template(given: str | None) -> Path:
    """The template to provision: the one given, else ./template.yaml, else Conveyor's own (from any folder)."""
    template = Path(given) if given else Path("template.yaml")
    if given is None and not template.exists():
        template = ROOT / "template.yaml"
    if not template.exists():
        raise CliError(f"{template}: no such template (--template names Conveyor's template.yaml)")
    return template


def cmd_local_sample(args: argparse.Namespace) -> int:
    from conveyor_cli.sample import set_up_sample

    cloud = Cloud(local=True, stack_name=args.stack_name)
    setup = set_up_sample(cloud, pipeline=Path(args.pipeline), bundle_dir=Path(args.out))
    if args.json:
        _print({"created": setup.created, "existed": setup.existed, "bundle": str(setup.bundle)})
        return 0
    for resource in setup.created:
        print(f"created  {resource}")
    for resource in setup.existed:
        print(f"existed  {resource}")
    if setup.pipeline is not None:
        _announce_defaults(setup.pipeline)
    print(
        f"next: conveyor --local push {setup.bundle}   (it prints the id; conveyor --local status ID --wait follows it)"
    )
    return 0


def cmd_local_down(_: argparse.Namespace) -> int:
    print("local cloud stopped, its state saved" if stop(state_dir()) else "local cloud was not running")
    return 0


def cmd_local_traffic(args: argparse.Namespace) -> int:
    from conveyor_cli.traffic import MAX_DURATION_SECONDS, for_environment

    cloud = Cloud(local=True, stack_name=args.stack_name)
    duration = MAX_DURATION_SECONDS if args.duration is None else args.duration
    generator = for_environment(cloud, args.app, args.env, rps=args.rps, duration_seconds=duration)
    target = f"{generator.summary.function_name}:{generator.summary.alias}"
    if not args.json:
        until = (
            "until stopped (Ctrl-C, or `kill %1` in the background; at most 1 h)"
            if args.duration is None
            else (f"for {duration:g} s (Ctrl-C stops)")
        )
        print(f"sending {args.rps:g} invocations/s to {target} {until}", flush=True)
    generator.start()
    try:
        summary = generator.wait()
    except KeyboardInterrupt:
        summary = generator.stop()
    if args.json:
        _print(summary.as_dict())
    else:
        for version, counts in summary.as_dict()["versions"].items():
            print(f"  v{version}: {counts['invocations']} invocations, {counts['errors']} errors")
        print(f"  sent {summary.sent}, dropped {summary.dropped} (threads busy), failed calls {summary.failed_calls}")
    return 0


def cmd_local_env(_: argparse.Namespace) -> int:
    for name, value in {**client_env(read_state(state_dir())), "CONVEYOR_LOCAL": "1"}.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


# --- deployment ----------------------------------------------------------------------------
def cmd_outputs(args: argparse.Namespace) -> int:
    outputs = _cloud(args).outputs.as_dict()
    if args.json:
        _print(outputs)
    else:
        for name, value in outputs.items():
            print(f"{name:<22} {value}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    try:
        config = FunctionConfig.model_validate(
            {
                "environment": dict(pair.split("=", 1) for pair in args.env) if args.env else None,
                "memory_mb": args.memory,
                "timeout_seconds": args.timeout,
            }
        )
        data, manifest = build_bundle(
            Path(args.dir),
            app=args.app,
            version=args.version,
            function_config=config if config.model_dump(exclude_none=True) else None,
        )
    except ValidationError as exc:
        raise CliError(describe("manifest", exc)) from exc
    out = Path(args.out or f"{args.app}-{args.version}.zip")
    out.write_bytes(data)
    result = {"bundle": str(out), "app": manifest.app, "version": manifest.version, "sha256": manifest.package.sha256}
    if args.json:
        _print(result)
    else:
        print(f"{out}  {manifest.app} {manifest.version}  package sha256 {manifest.package.sha256}")
    return 0


def cmd_pipeline_apply(args: argparse.Namespace) -> int:
    spec = operations.apply_pipeline(_cloud(args), Path(args.file))
    print(f"pipeline for {spec.app} registered: {' -> '.join(e.name for e in spec.environments)}")
    _announce_defaults(spec)
    return 0


def _announce_defaults(spec: PipelineSpec) -> None:
    """Every default that judges a release, so none fails one unannounced."""
    defaults = judging_defaults(spec)
    if not defaults:
        return
    print(f"defaults that apply (not written in the spec; `conveyor pipeline show {spec.app}` shows every value):")
    for value in defaults:
        print(f"  {value.describe().removesuffix('  (default)')}")
    if any(env.health.metrics is not None and env.health.metrics.defaulted_rules for env in spec.environments):
        print(f"  ({metric_rule_note()})")
    print("  (write a value to change it; null turns a limit off)")


def cmd_pipeline_show(args: argparse.Namespace) -> int:
    spec = operations.show_pipeline(_cloud(args), args.app)
    if args.json:
        _print(spec.model_dump(mode="json"))
        return 0
    print(f"pipeline {spec.app}: every value in effect; (default) marks one the spec does not write, null (off) a")
    print(f"limit or check that is off; {metric_rule_note()}")
    for value in effective_values(spec):
        print(f"  {value.describe()}")
    return 0


def cmd_pipeline_schema(args: argparse.Namespace) -> int:
    print(json.dumps(pipeline_schema(), indent=2))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    result = operations.push(_cloud(args), Path(args.bundle))
    if args.json:
        _print(result)
    else:
        print(result["deployment_id"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show a deployment; the exit code says how it ended (``ExitCode``: 0 only when it SUCCEEDED)."""
    cloud = _cloud(args)
    try:
        return _status(args, cloud)
    except LedgerError as exc:
        # Not "not in the ledger": the ledger did not answer (a local cloud that died, no network to AWS).
        where = "the local cloud is not answering: start it with `conveyor local up`" if cloud.local else "check AWS"
        raise CliError(f"cannot read the ledger {cloud.outputs.ledger_table} ({exc}); {where}") from exc


def _status(args: argparse.Namespace, cloud: Cloud) -> int:
    ledger = operations.ledger(cloud)
    if args.id is None:
        records = ledger.history(limit=1)
        if not records:
            raise CliError(f"no deployments in the ledger ({cloud.outputs.ledger_table}) yet")
        args.id = records[0].deployment_id
    if args.wait:
        # The live view goes to stderr under --json, so stdout stays one JSON document.
        out = sys.stderr if args.json else sys.stdout
        print(f"waiting for {args.id} ...", file=out, flush=True)

        def live(event: StageEvent, origin: float) -> None:
            print(render_event(event, origin), file=out, flush=True)

        try:
            record = operations.wait(cloud, args.id, timeout=args.timeout, on_event=live)
        except TimeoutError as exc:
            print(f"conveyor: {exc}", file=sys.stderr)
            return ExitCode.WAIT_TIMED_OUT
    else:
        found = ledger.get(args.id)
        if found is None:
            running = operations.running_execution_of(cloud, args.id)
            raise CliError(not_in_ledger(args.id, table=cloud.outputs.ledger_table, running_execution=running))
        record = found
    execution = operations.execution_status(cloud, record.execution_arn) if record.execution_arn else None
    execution_state = str(execution["status"]) if execution else None
    if args.json:
        _print(as_json(record, execution))
    else:
        print(render_header(record) if args.wait else render(record))
        note = stopped_note(record, execution_state)
        if note:
            print(note)
    return exit_code(record, execution_state)


def cmd_history(args: argparse.Namespace) -> int:
    records = operations.ledger(_cloud(args)).history(app=args.app, limit=args.limit)
    if args.json:
        _print([redacted(r.model_dump(mode="json", exclude={"events"})) for r in records])
    else:
        for record in records:
            print(render_header(record))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from conveyor_cli.rollback import manual_rollback

    result = manual_rollback(_cloud(args), args.app, args.env, args.to)
    if args.json:
        _print(result)
    else:
        print(
            f"{result['function_name']}:{result['alias']} restored to version {result['restored_version']} "
            f"(was {result['rolled_back_from']}) in {result['duration_ms']} ms, routing cleared"
        )
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from conveyor_cli.reconcile import reconcile_executions, redrive_dead_letters

    cloud = _cloud(args)
    if args.execution:
        results = reconcile_executions(cloud, args.execution)
        failed: list[str] = []
    else:
        redriven = redrive_dead_letters(cloud)
        results, failed = redriven["reconciled"], redriven["failed"]
    if args.json:
        _print({"reconciled": results, "failed": failed})
    else:
        for result in results:
            restored = f", traffic restored in {', '.join(result['restored'])}" if result.get("restored") else ""
            subject = result.get("deployment_id") or result["execution_arn"]
            print(f"{subject}: {result.get('outcome') or result['action']}{restored}")
        for problem in failed:
            print(f"not reconciled: {problem}", file=sys.stderr)
        if not results and not failed:
            print("nothing to reconcile")
    return 1 if failed else 0


def _cmd_decide(args: argparse.Namespace, verdict: Literal["approve", "reject"]) -> int:
    from conveyor_cli.approvals import BY_IS_GONE, decide

    if args.by is not None:
        raise CliError(BY_IS_GONE)
    result = decide(_cloud(args), args.id, environment=args.env, verdict=verdict, reason=args.reason, note=args.note)
    if args.json:
        _print(result)
        return 0
    who = result.get("approved_by") or result.get("rejected_by")
    why = f": {result['reason']}" if result.get("reason") else ""
    if result.get("pending"):
        print(
            f"{result['deployment_id']}: approval by {who} recorded in {result['environment']}{why}; "
            f"{result['pending']} more from other approvers needed"
        )
        return 0
    what = {"approve": "approved", "promote": "promoted", "reject": "rejected"}[result["decision"]]
    print(f"{result['deployment_id']} {what} in {result['environment']} by {who}{why}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _cmd_decide(args, "approve")


def cmd_reject(args: argparse.Namespace) -> int:
    return _cmd_decide(args, "reject")


def cmd_metrics(args: argparse.Namespace) -> int:
    until = datetime.now(UTC)
    records = operations.ledger(_cloud(args)).history(app=args.app, limit=10_000)
    metrics = dora_metrics(records, since=until - timedelta(days=args.days), until=until)
    if args.json:
        _print(metrics.model_dump(mode="json"))
    else:
        from conveyor_cli.metrics import print_metrics

        print_metrics(metrics)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write one self-contained HTML page showing a deployment (``conveyor_cli.report``)."""
    from conveyor_cli.report import default_path, report_html

    cloud = _cloud(args)
    deployment_id = args.id
    if deployment_id is None:
        latest = operations.ledger(cloud).history(limit=1)
        if not latest:
            raise CliError(f"no deployments in the ledger ({cloud.outputs.ledger_table}) yet")
        deployment_id = latest[0].deployment_id
    html = report_html(cloud, deployment_id)
    if args.out == "-":
        sys.stdout.write(html)
        return 0
    path = Path(args.out) if args.out else default_path(deployment_id)
    path.write_text(html, encoding="utf-8")
    print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from conveyor_cli.demo import run_demo

    return run_demo(keep_running=args.keep_running)


# --- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor", description="Serverless deployment orchestrator.")
    parser.add_argument("--local", action="store_true", help="use the embedded local cloud (or CONVEYOR_LOCAL=1)")
    parser.add_argument("--stack-name", default="conveyor", help="the deployed stack on AWS (default: conveyor)")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run the embedded local cloud").add_subparsers(
        dest="action", required=True
    )
    up = local.add_parser("up", help="start it in the background, provisioned from template.yaml")
    up.add_argument("--port", type=int, default=4566)
    up.add_argument("--template", default=None, help="default: ./template.yaml, else Conveyor's own")
    up.add_argument(
        "--time-scale", type=float, default=None, help="multiply Wait/Retry sleeps and approval windows (e.g. 0.01)"
    )
    up.add_argument("--fresh", action="store_true", help="discard the saved state and start empty")
    up.add_argument(
        "--restart", action="store_true", help="stop a running cloud first (its state kept), to change its settings"
    )
    up.set_defaults(func=cmd_local_up)
    sample = local.add_parser(
        "sample",
        help="create the sample app (functions, alarm, inbox), register its pipeline, write a bundle to push",
    )
    sample.add_argument("--pipeline", default=str(SAMPLE_PIPELINE), help="default: examples/pipelines/hello.yaml")
    sample.add_argument("--out", default=".", help="where the bundle to push is written (default: here)")
    sample.add_argument("--json", action="store_true")
    sample.set_defaults(func=cmd_local_sample)
    local.add_parser("down", help="stop it").set_defaults(func=cmd_local_down)
    local.add_parser("env", help="print shell exports for any AWS client").set_defaults(func=cmd_local_env)
    traffic = local.add_parser("traffic", help="invoke an environment's alias at a steady rate, for canary analysis")
    traffic.add_argument("app")
    traffic.add_argument("env")
    traffic.add_argument("--rps", type=float, required=True, help="invocations per second")
    traffic.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds to run (default: until stopped, at most 3600, so a rollout's every step has traffic)",
    )
    traffic.add_argument("--json", action="store_true")
    traffic.set_defaults(func=cmd_local_traffic)

    outputs = commands.add_parser("outputs", help="the stack outputs: bucket, state machine, table, topic")
    outputs.add_argument("--json", action="store_true")
    outputs.set_defaults(func=cmd_outputs)

    package = commands.add_parser("package", help="build a bundle (manifest.json + package.zip) from a directory")
    package.add_argument("dir")
    package.add_argument("--app", required=True)
    package.add_argument("--version", required=True)
    package.add_argument("--out", help="default: <app>-<version>.zip")
    package.add_argument("--env", action="append", metavar="KEY=VALUE", help="function environment variable")
    package.add_argument("--memory", type=int, help="function memory (MB)")
    package.add_argument("--timeout", type=int, help="function timeout (s)")
    package.add_argument("--json", action="store_true")
    package.set_defaults(func=cmd_package)

    pipeline = commands.add_parser("pipeline", help="register and read pipeline specs")
    pipeline_actions = pipeline.add_subparsers(dest="action", required=True)
    apply = pipeline_actions.add_parser("apply", help="validate and register pipelines/<app>.yaml")
    apply.add_argument("file")
    apply.set_defaults(func=cmd_pipeline_apply)
    show = pipeline_actions.add_parser("show", help="the registered spec of an app")
    show.add_argument("app")
    show.add_argument("--json", action="store_true", help="the effective spec (defaults filled in) as JSON")
    show.set_defaults(func=cmd_pipeline_show)
    pipeline_actions.add_parser(
        "schema", help="the spec's JSON Schema (defaults, descriptions), for editor completion"
    ).set_defaults(func=cmd_pipeline_schema)

    push = commands.add_parser("push", help="upload a bundle; prints the deployment id")
    push.add_argument("bundle")
    push.add_argument("--json", action="store_true")
    push.set_defaults(func=cmd_push)

    status = commands.add_parser(
        "status",
        help="a deployment's stage timeline, verdicts and outcome (exit 0 only if it SUCCEEDED)",
        description="A deployment's stage timeline, verdicts and outcome.\n"
        "The exit code says how it ended, with or without --wait: 0 only when it SUCCEEDED.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("id", nargs="?", help="deployment id (default: the latest)")
    status.add_argument("--wait", action="store_true", help="follow it live until it ends")
    status.add_argument(
        "--timeout", type=float, default=900, help="seconds --wait follows it before giving up (default 900)"
    )
    # Before outcome codes were the default, `--exit-code` asked for "3 unless SUCCEEDED": still accepted, so
    # scripts that pass it keep failing on every unsuccessful outcome (now with that outcome's own code).
    status.add_argument("--exit-code", action="store_true", help=argparse.SUPPRESS)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    ci.register(commands, cloud_of=_cloud)  # ship (package + push + follow) and summary (Markdown), for CI jobs

    history = commands.add_parser("history", help="past deployments from the ledger")
    history.add_argument("--app")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)

    rollback = commands.add_parser("rollback", help="restore an environment's alias to the version before")
    rollback.add_argument("app")
    rollback.add_argument("env")
    rollback.add_argument("--to", help="a Lambda version number (default: what served before the live deployment)")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(func=cmd_rollback)

    reconcile = commands.add_parser(
        "reconcile",
        help="close executions that ended without finishing: given ARNs, or what the reconcile dead-letter queue holds",
    )
    reconcile.add_argument("execution", nargs="*", help="execution ARNs (default: redrive the dead-letter queue)")
    reconcile.add_argument("--json", action="store_true")
    reconcile.set_defaults(func=cmd_reconcile)

    for name, func, what, reason in (
        (
            "approve",
            cmd_approve,
            "approve an environment awaiting approval, or promote a rollout paused for a person",
            {"help": "recorded in the ledger"},
        ),
        (
            "reject",
            cmd_reject,
            "reject an environment awaiting approval (fails), or roll back a rollout paused for a person",
            {"required": True, "help": "why; recorded in the ledger and the notification"},
        ),
    ):
        decide = commands.add_parser(name, help=what)
        decide.add_argument("id", help="deployment id")
        decide.add_argument("--env", help="the environment (default: the one awaiting approval)")
        decide.add_argument("--reason", **reason)
        decide.add_argument("--note", help="a display name or note recorded beside your AWS identity")
        decide.add_argument("--by", help=argparse.SUPPRESS)  # refused with why: the approver is the AWS identity
        decide.add_argument("--json", action="store_true")
        decide.set_defaults(func=func)

    metrics = commands.add_parser(
        "metrics", help="DORA's four keys per app and environment, each with the DORA report's tier"
    )
    metrics.add_argument("--app")
    metrics.add_argument("--days", type=float, default=30)
    metrics.add_argument("--json", action="store_true")
    metrics.set_defaults(func=cmd_metrics)

    report = commands.add_parser(
        "report",
        help="write one self-contained HTML page of a deployment: timeline, traffic, metrics, verdicts, rollback",
    )
    report.add_argument("id", nargs="?", help="deployment id (default: the latest)")
    report.add_argument("-o", "--out", help="the HTML file to write, - for stdout (default: conveyor-report-<id>.html)")
    report.set_defaults(func=cmd_report)

    demo = commands.add_parser("demo", help="the whole story offline: local cloud, good push, bad push, rollback")
    demo.add_argument("--keep-running", action="store_true", help="leave the local cloud up afterwards")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, ConveyorError, LocalCloudError, TimeoutError, FileNotFoundError) as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
