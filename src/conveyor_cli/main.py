"""``conveyor``: the operator CLI. Run ``conveyor --help``.

Global options (``--local``, ``--stack-name``, ``--profile``, ``--region``, ``--output json|table``, and ``--json``
for ``--output json``) go anywhere on the line, before or after the command, as with the AWS CLI. Every read
command prints a table for people and one JSON document under ``--output json``. Exit code 0 on success,
non-zero with a one-line reason (``conveyor status``: one code per outcome, see ``status.ExitCode``); output
cut short by a closed pipe (``| head``) ends quietly.

Each command is a ``cmd_<name>(args) -> int`` function, wired in ``build_parser``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from conveyor.domain.dora import measured
from conveyor.domain.errors import ConveyorError, LedgerError
from conveyor.domain.pipeline import PipelineSpec, pipeline_schema
from conveyor.domain.records import StageEvent
from conveyor.domain.spec_defaults import effective_values, judging_defaults, metric_rule_note
from conveyor.domain.time_scale import TimeScale, seconds_text
from conveyor.domain.validation import describe
from pydantic import ValidationError

from conveyor_cli import ci, operations
from conveyor_cli.beanstalk_sample import BEANSTALK_FRONT_ENV
from conveyor_cli.context import (
    STATE_DIR_ENV,
    CliError,
    Cloud,
    UsageError,
    default_template,
    resolve_state_dir,
    state_dir,
    wants_local,
    warn,
)
from conveyor_cli.output import print_json, print_table, progress
from conveyor_cli.packaging import (
    at_least,
    build_bundle,
    bundle_destination,
    env_variable,
    function_config_of,
    output_path,
    write_bundle,
)
from conveyor_cli.sample import EXAMPLES
from conveyor_cli.status import (
    HISTORY_COLUMNS,
    START_TIMEOUT_SECONDS,
    ExitCode,
    as_json,
    exit_code,
    exit_codes_help,
    history_row,
    not_in_ledger,
    redacted,
    render,
    render_event,
    render_header,
    stopped_note,
)
from conveyor_local.persistence import RestoreSummary
from conveyor_local.server import LocalCloudError, client_env, read_state, start_background, stop

EXIT_BROKEN_PIPE = 141
"""What a command whose output pipe closed exits with: 128 + SIGPIPE, as a shell reports ``cmd | head``."""


def _lambda_version(text: str) -> str:
    """A published Lambda version: a positive number (an alias may not point at ``$LATEST`` here)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a published Lambda version (a number from 1)")
    return str(int(text))


def _print(document: Any) -> None:
    print_json(document)


def _cloud(args: argparse.Namespace) -> Cloud:
    return Cloud(local=wants_local(args.local), stack_name=args.stack_name, profile=args.profile, region=args.region)


# --- local ---------------------------------------------------------------------------------
def cmd_local_up(args: argparse.Namespace) -> int:
    where = resolve_state_dir()
    if where.note():
        warn(str(where.note()))
    state = start_background(
        args.port, _template(args.template), where.path, args.time_scale, fresh=args.fresh, restart=args.restart
    )
    already = " already" if state.get("already_running") else ""
    print(f"local cloud{already} running at {state['endpoint']} (pid {state['pid']}); `eval $(conveyor local env)`")
    scale = TimeScale(factor=float(state.get("time_scale", 1.0)))
    if scale.scaled:
        print(
            f"time scale {scale.factor:g}: the spec's waits pass that much faster (a 300 s bake takes "
            f"{seconds_text(scale.wall_seconds(300))}); times are shown nominal and wall"
        )
    if "restored" in state and not state.get("already_running"):  # what this start restored, not a rerun
        print(RestoreSummary.model_validate(state["restored"]).describe())
    return 0


def _template(given: str | None) -> Path:
    """The template to provision: the one given, else Conveyor's own (``default_template``, from any folder)."""
    if given is None:
        return default_template()
    template = Path(given)
    if not template.exists():
        raise CliError(f"{template}: no such template (--template names Conveyor's template.yaml)")
    return template


def cmd_local_sample(args: argparse.Namespace) -> int:
    from conveyor_cli.sample import set_up_sample

    cloud = Cloud(local=True, stack_name=args.stack_name)
    if args.webapp:
        return _webapp_sample(cloud, Path(args.out), as_json=args.json)
    if args.orders:
        return _orders_sample(cloud, Path(args.out), as_json=args.json)
    setup = set_up_sample(cloud, pipeline=Path(args.pipeline) if args.pipeline else None, bundle_dir=Path(args.out))
    if args.json:
        _print({"created": setup.created, "existed": setup.existed, "bundle": str(setup.bundle)})
        return 0
    _print_resources(setup.created, setup.existed)
    if setup.pipeline is not None:
        _announce_defaults(setup.pipeline)
    print(_sample_next_step(cloud, setup.bundle))
    return 0


def _sample_next_step(cloud: Cloud, bundle: Path) -> str:
    """What to push next: the sample's bundle, or (a release at least as new already live, which would refuse it as
    a downgrade or skip it as live) a newer build of the same code."""
    from conveyor.domain.outcome import Outcome
    from conveyor.domain.versions import SemVer, is_semver

    from conveyor_cli.sample import EXAMPLES, SAMPLE_APP, SAMPLE_BUNDLE_VERSION

    follow = "(it prints the id; conveyor --local status ID --wait follows it)"
    live = next(iter(operations.ledger(cloud).history(SAMPLE_APP, limit=1, status=Outcome.SUCCEEDED)), None)
    if live is None or not is_semver(live.version):
        return f"next: conveyor --local push {bundle}   {follow}"
    newest = SemVer.parse(live.version)
    if newest.precedence < SemVer.parse(SAMPLE_BUNDLE_VERSION).precedence:
        return f"next: conveyor --local push {bundle}   {follow}"
    newer = f"{newest.major}.{newest.minor}.{newest.patch + 1}"
    return (
        f"next: {SAMPLE_APP} {live.version} is live already, so push a newer build: conveyor package "
        f"{EXAMPLES / SAMPLE_APP} --app {SAMPLE_APP} --version {newer} && conveyor --local push "
        f"{SAMPLE_APP}-{newer}.zip   {follow}"
    )


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


def cmd_local_inbox(args: argparse.Namespace) -> int:
    """What Conveyor published on the local cloud: lifecycle events and notifications, oldest first."""
    import time

    from conveyor_local.inbox import InboxEntry, InboxQueues, collect, journal

    directory = state_dir()
    queues = InboxQueues.model_validate(read_state(directory).get("inbox") or {})
    if queues.events is None and queues.notifications is None:
        raise CliError("the local cloud has no inbox: restart it (conveyor local down, then conveyor local up)")
    sqs = Cloud(local=True, stack_name=args.stack_name).client("sqs")

    def show(entries: list[InboxEntry]) -> None:
        for entry in entries:
            if args.app and entry.app != args.app:
                continue
            if args.json:  # --follow: one object a line, as they come
                print(entry.model_dump_json(), flush=True)
                continue
            when = (entry.time or entry.received_at).strftime("%H:%M:%S")
            what = entry.detail_type if entry.kind == "event" else f"notification: {entry.subject}"
            where = " ".join(v for v in (entry.app, entry.environment, entry.deployment_id) if v)
            print(f"{when}  {what:<40} {where}", flush=True)

    collect(sqs, queues, directory)
    if args.json and not args.follow:  # one JSON document, as every other --json
        _print([e.model_dump(mode="json") for e in journal(directory) if not args.app or e.app == args.app])
        return 0
    show(journal(directory))
    try:
        while args.follow:
            time.sleep(1.0)
            show(collect(sqs, queues, directory))
    except KeyboardInterrupt:
        pass
    return 0


def _webapp_sample(cloud: Cloud, out: Path, *, as_json: bool) -> int:
    from conveyor_cli.beanstalk_sample import WEBAPP_BUNDLE_VERSION, set_up_webapp, webapp_bundle

    setup = set_up_webapp(cloud)
    bundle = webapp_bundle(EXAMPLES / "webapp", WEBAPP_BUNDLE_VERSION, out)
    if as_json:
        _print({"created": setup.created, "existed": setup.existed, "bundle": str(bundle), "cname": setup.cname})
        return 0
    _print_resources(setup.created, setup.existed)
    print(f"production: http://{setup.cname}/ (locally: curl -H 'Host: {setup.cname}' {cloud.beanstalk_front}/)")
    print(f"next: conveyor --local push {bundle}   (blue/green: deployed to webapp-green, then the CNAMEs swap)")
    return 0


def _print_resources(created: list[str], existed: list[str]) -> None:
    """What a sample set-up created and what already existed, a line each."""
    for resource in created:
        print(f"created  {resource}")
    for resource in existed:
        print(f"existed  {resource}")


def _orders_sample(cloud: Cloud, out: Path, *, as_json: bool) -> int:
    from conveyor_cli.orders_sample import ORDERS_BUNDLE_VERSION, orders_bundle, set_up_orders

    setup = set_up_orders(cloud)
    bundle = orders_bundle(EXAMPLES / "orders", ORDERS_BUNDLE_VERSION, out)
    if as_json:
        _print({"created": setup.created, "existed": setup.existed, "bundle": str(bundle)})
        return 0
    _print_resources(setup.created, setup.existed)
    print(f"next: conveyor --local push {bundle}   (both functions move together: 25%, then 100%)")
    return 0


def cmd_local_env(_: argparse.Namespace) -> int:
    """The exports that point any AWS client and every later ``conveyor`` (from any folder) at the local cloud."""
    found = resolve_state_dir()
    if found.note():
        warn(str(found.note()))  # stderr: stdout is for `eval`
    where = found.path
    state = read_state(where)
    exports = {**client_env(state), "CONVEYOR_LOCAL": "1", STATE_DIR_ENV: str(where)}
    if state.get("beanstalk_front"):
        # Where Elastic Beanstalk CNAMEs are served: curl -H "Host: <cname>" "$CONVEYOR_BEANSTALK_FRONT/"
        exports[BEANSTALK_FRONT_ENV] = str(state["beanstalk_front"])
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


# --- deployment ----------------------------------------------------------------------------
def cmd_outputs(args: argparse.Namespace) -> int:
    outputs = _cloud(args).outputs.as_dict()
    if args.json:
        _print(outputs)
    else:
        print_table(("output", "value"), outputs.items())
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    config = function_config_of(args.env, args.memory, args.timeout)
    try:
        data, manifest = build_bundle(Path(args.dir), app=args.app, version=args.version, function_config=config)
    except ValidationError as exc:
        raise CliError(describe("manifest", exc)) from exc
    out = bundle_destination(args.out, args.app, args.version)
    write_bundle(out, data)
    result = {"bundle": str(out), "app": manifest.app, "version": manifest.version, "sha256": manifest.package.sha256}
    if args.json:
        _print(result)
    else:
        print(f"{out}  {manifest.app} {manifest.version}  package sha256 {manifest.package.sha256}")
    return 0


def cmd_pipeline_apply(args: argparse.Namespace) -> int:
    read = operations.read_pipeline_file(Path(args.file))  # a bad file fails before the cloud is looked up
    spec = operations.apply_pipeline(_cloud(args), Path(args.file), read=read)
    if args.json:
        _print(
            {
                "app": spec.app,
                "environments": [e.name for e in spec.environments],
                "defaults": {value.path: value.value for value in judging_defaults(spec)},
            }
        )
        return 0
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
        # Not "not in the ledger": the ledger did not answer (a local cloud that died, no network to AWS), or
        # answered with an error (DynamoDB failing: an outage, or a fault injected into the local cloud).
        from botocore.exceptions import ClientError

        if isinstance(exc.__cause__, ClientError):
            where = "DynamoDB answered with an error: try again once it answers"
        elif cloud.local:
            where = "the local cloud is not answering: start it with `conveyor local up`"
        else:
            where = "check AWS"
        raise CliError(f"cannot read the ledger {cloud.outputs.ledger_table} ({exc}); {where}") from exc


def _status(args: argparse.Namespace, cloud: Cloud) -> int:
    ledger = operations.ledger(cloud)
    # The live view goes to stderr under --json, so stdout stays one JSON document.
    out = sys.stderr if args.json else sys.stdout
    if args.id is None:
        # The newest push counts even before an execution recorded it: `aws s3 cp` then `status --wait` follows it.
        latest = operations.latest_deployment(cloud)
        if latest is None:
            raise CliError(
                f"no deployments in the ledger ({cloud.outputs.ledger_table}) and no bundle under "
                f"s3://{cloud.outputs.bucket}/artifacts/ yet: push one with `conveyor push`"
            )
        args.id = latest.deployment_id
        if latest.pushed_object:
            print(f"the latest push: {latest.pushed_object}", file=out, flush=True)
    if args.wait:
        print(f"waiting for {args.id} ...", file=out, flush=True)
        try:
            with progress(out, f"following {args.id}") as show:

                def live(event: StageEvent, origin: float) -> None:
                    show(render_event(event, origin))

                record = operations.wait(
                    cloud, args.id, timeout=args.timeout, on_event=live, appear_within=args.start_timeout
                )
        except TimeoutError as exc:
            print(f"conveyor: {exc}", file=sys.stderr)
            if args.json:  # stdout is still one JSON document: the deployment as it stands, and why the wait ended
                waited = ledger.get(args.id)
                document = {"deployment_id": args.id} if waited is None else as_json(waited, None)
                _print(document | {"wait": {"timed_out": True, "reason": str(exc)}})
            return ExitCode.WAIT_TIMED_OUT
    else:
        found = ledger.get(args.id)
        if found is None:
            running = operations.running_execution_of(cloud, args.id)
            raise CliError(not_in_ledger(args.id, table=cloud.outputs.ledger_table, running_execution=running))
        record = found
    execution = operations.execution_state(cloud, record.execution_arn) if record.execution_arn else None
    execution_state = execution.status if execution else None
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
    elif not records:
        print("no deployments yet")
    else:
        print_table(HISTORY_COLUMNS, (history_row(record) for record in records))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from conveyor_cli.rollback import manual_rollback

    result = manual_rollback(_cloud(args), args.app, args.env, args.lambda_version, to_release=args.to)
    if args.json:
        _print(result)
    else:
        serves = f", serving {result['serves']}" if result.get("serves") else ""
        print(
            f"{result['function_name']}:{result['alias']} restored to version {result['restored_version']} "
            f"(was {result['rolled_back_from']}){serves} in {result['duration_ms']} ms, routing cleared"
        )
        for other in result.get("companions", []):
            print(
                f"{other['function_name']}:{result['alias']} restored to version {other['restored_version']} "
                f"(was {other['rolled_back_from']}), routing cleared"
            )
    for warning in result.get("data_left_migrated", []):
        print(f"conveyor: WARNING: {warning}", file=sys.stderr)
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
        raise UsageError(BY_IS_GONE)
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
    metrics = measured(
        operations.ledger(_cloud(args)), app=args.app, since=until - timedelta(days=args.days), until=until
    )
    if args.json:
        _print(metrics.model_dump(mode="json"))
    else:
        from conveyor_cli.metrics import print_metrics

        print_metrics(metrics)
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    """Stop a rollout; the reconciler restores it (one code path with a stop from the console), then report."""
    from conveyor.domain.outcome import Outcome

    from conveyor_cli.abort import abort
    from conveyor_cli.approvals import caller_identity

    if args.env is None and not args.target.startswith("d-"):
        raise UsageError(
            f"{args.target!r} is not a deployment id (d-...): abort one by its id, or the rollout of an app's "
            f"environment with `conveyor abort {args.target} ENV`"
        )
    deployment_id, app_env = (args.target, None) if args.env is None else (None, (args.target, args.env))
    cloud = _cloud(args)
    result = abort(
        cloud,
        deployment_id=deployment_id,
        app_environment=app_env,
        by=caller_identity(cloud),  # who stops a rollout is who AWS lets call StopExecution, as for approvals
        reason=args.reason,
        timeout=args.timeout,
    )
    if args.json:
        _print(result.model_dump(mode="json"))
    else:
        print(result.describe())
    # The stop worked; a restore that failed is the deployment's own exit code (5: a person must act).
    return ExitCode.ROLLBACK_FAILED if result.outcome == Outcome.ROLLBACK_FAILED else 0


def cmd_promote(args: argparse.Namespace) -> int:
    from conveyor_cli.approvals import promote

    result = promote(_cloud(args), args.id, environment=args.env, reason=args.reason)
    if args.json:
        _print(result)
    else:
        print(f"{result['deployment_id']} promoted in {result['environment']} by {result['approved_by']}")
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    """Freeze one app or every app (``--list``: the freezes in force), as the caller's AWS identity."""
    from conveyor_cli.freezes import ALL_APPS, FREEZE_COLUMNS, active, freeze, freeze_row, scope_of

    cloud = _cloud(args)
    if args.list:
        if args.reason is not None or args.until is not None or args.all:
            raise UsageError(
                "--list shows the freezes in force: it takes an APP to narrow it, not --reason, --until or --all"
            )
        # An app's list: its own freeze and the one of every app, both of which stop its deployments.
        found = [stop for stop in active(cloud) if args.app is None or stop.scope in (args.app, ALL_APPS)]
        if args.json:
            _print([stop.model_dump(mode="json") for stop in found])
        elif not found:
            print("nothing is frozen (freeze windows of a pipeline: `conveyor pipeline show APP`)")
        else:
            print_table(FREEZE_COLUMNS, (freeze_row(stop) for stop in found))
        return 0
    if args.reason is None:
        raise UsageError("--reason is required: it is shown to whoever's deployment the freeze stops")
    stop = freeze(cloud, scope_of(args.app, args.all), reason=args.reason, until=args.until)
    if args.json:
        _print(stop.model_dump(mode="json"))
    else:
        print(f"{stop.describe()}; deployments reaching an environment wait or are refused (on_freeze)")
    return 0


def cmd_unfreeze(args: argparse.Namespace) -> int:
    from conveyor_cli.freezes import scope_of, unfreeze

    lifted = unfreeze(_cloud(args), scope_of(args.app, args.all))
    if args.json:
        _print(lifted.model_dump(mode="json"))
    else:
        print(f"lifted: {lifted.describe()}")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from conveyor_cli.live import LIVE_COLUMNS, live_environments, live_row

    served = live_environments(_cloud(args), args.app)
    if args.json:
        _print([entry.model_dump(mode="json") for entry in served])
    elif not served:
        print("no pipeline registered yet: `conveyor pipeline apply FILE`")
    else:
        print_table(LIVE_COLUMNS, (live_row(entry) for entry in served))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from conveyor_cli.logs import deployment_logs, render_logs

    found = deployment_logs(_cloud(args), args.id, stage=args.stage)
    if args.json:
        _print(found.model_dump(mode="json"))
    else:
        print(render_logs(found))
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
    path = output_path(args.out, default_path(deployment_id).name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from conveyor_cli.demo import run_demo

    return run_demo(keep_running=args.keep_running)


# --- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor",
        description="Serverless deployment orchestrator. Global options go before or after the command.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run the embedded local cloud").add_subparsers(
        dest="action", required=True
    )
    up = local.add_parser("up", help="start it in the background, provisioned from template.yaml")
    up.add_argument("--port", type=int, help="default 4566 (a running cloud keeps its own)")
    up.add_argument("--template", help="the SAM template (default: the template.yaml of this Conveyor)")
    up.add_argument(
        "--time-scale",
        type=at_least(0, float),
        default=None,
        help="multiply Wait/Retry sleeps and approval windows (e.g. 0.01)",
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
    sample.add_argument(
        "--pipeline",
        help="the spec to register (default: examples/pipelines/hello.yaml, unless one of the app is registered)",
    )
    sample.add_argument("--out", default=".", help="where the bundle to push is written (default: here)")
    sample.add_argument(
        "--webapp",
        action="store_true",
        help="the Elastic Beanstalk sample instead: examples/webapp on webapp-blue, its blue/green pipeline",
    )
    sample.add_argument(
        "--orders",
        action="store_true",
        help="the multi-function sample instead: examples/orders on orders-api and orders-worker, released together",
    )
    sample.add_argument("--json", action="store_true")
    sample.set_defaults(func=cmd_local_sample)
    local.add_parser("down", help="stop it").set_defaults(func=cmd_local_down)
    local.add_parser("env", help="print shell exports for any AWS client").set_defaults(func=cmd_local_env)
    inbox = local.add_parser("inbox", help="what Conveyor published: lifecycle events and SNS notifications")
    inbox.add_argument("--app", help="only this app's")
    inbox.add_argument("--follow", action="store_true", help="keep printing as more arrive (Ctrl-C stops)")
    inbox.add_argument(
        "--json", action="store_true", help="one JSON array (with --follow: one JSON object a line, as they come)"
    )
    inbox.set_defaults(func=cmd_local_inbox)
    traffic = local.add_parser("traffic", help="invoke an environment's alias at a steady rate, for canary analysis")
    traffic.add_argument("app")
    traffic.add_argument("env")
    traffic.add_argument("--rps", type=at_least(0, float, exclusive=True), required=True, help="invocations per second")
    traffic.add_argument(
        "--duration",
        type=at_least(0, float, exclusive=True),
        default=None,
        help="seconds to run (default: until stopped, at most 3600, so a rollout's every step has traffic)",
    )
    traffic.add_argument("--json", action="store_true")
    traffic.set_defaults(func=cmd_local_traffic)

    outputs = commands.add_parser("outputs", help="the stack outputs: bucket, state machine, table, topic")
    outputs.set_defaults(func=cmd_outputs)

    package = commands.add_parser("package", help="build a bundle (manifest.json + package.zip) from a directory")
    package.add_argument("dir")
    package.add_argument("--app", required=True)
    package.add_argument("--version", required=True)
    package.add_argument("--out", help="the bundle file, or a folder for <app>-<version>.zip in it (default: here)")
    package.add_argument(
        "--env", action="append", type=env_variable, metavar="KEY=VALUE", help="function environment variable"
    )
    package.add_argument("--memory", type=int, help="function memory (MB)")
    package.add_argument("--timeout", type=int, help="function timeout (s)")
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
        "--timeout",
        type=at_least(0, float),
        default=900,
        help="seconds --wait follows it before giving up (default 900)",
    )
    status.add_argument(
        "--start-timeout",
        type=at_least(0, float),
        default=START_TIMEOUT_SECONDS,
        help="seconds --wait gives a push to be picked up by an execution before saying none did "
        f"(default {START_TIMEOUT_SECONDS:g})",
    )
    # Before outcome codes were the default, `--exit-code` asked for "3 unless SUCCEEDED": still accepted, so
    # scripts that pass it keep failing on every unsuccessful outcome (now with that outcome's own code).
    status.add_argument("--exit-code", action="store_true", help=argparse.SUPPRESS)
    status.set_defaults(func=cmd_status)

    ci.register(commands, cloud_of=_cloud)  # ship (package + push + follow) and summary (Markdown), for CI jobs

    history = commands.add_parser("history", help="past deployments from the ledger")
    history.add_argument("--app")
    history.add_argument("--limit", type=at_least(1, int), default=20)
    history.set_defaults(func=cmd_history)

    rollback = commands.add_parser("rollback", help="restore an environment's alias to the release before")
    rollback.add_argument("app")
    rollback.add_argument("env")
    to = rollback.add_mutually_exclusive_group()
    to.add_argument(
        "--to",
        metavar="APP_VERSION",
        help="the app version to restore, as its manifest names it (default: what served before the live release)",
    )
    to.add_argument(
        "--lambda-version",
        metavar="N",
        type=_lambda_version,
        help="a Lambda version number of the target function instead",
    )
    rollback.set_defaults(func=cmd_rollback)

    abort = commands.add_parser(
        "abort",
        help="stop a running rollout and restore its traffic: `abort ID` or `abort APP ENV`",
        description="Stop a deployment's execution; the reconciler restores every environment it was rolling out, "
        "closes the record ABORTED with who aborted it, releases its locks and notifies once.",
    )
    abort.add_argument("target", metavar="ID|APP", help="a deployment id, or an app (with ENV)")
    abort.add_argument("env", nargs="?", metavar="ENV", help="the environment of APP whose rollout to abort")
    abort.add_argument("--reason", help="why; recorded in the ledger and the notification")
    abort.add_argument(
        "--timeout", type=at_least(0, float), default=300, help="seconds to wait for the restore (default 300)"
    )
    abort.set_defaults(func=cmd_abort)

    promote = commands.add_parser(
        "promote",
        help="finish a rollout paused for a decision now (after its checks): it goes on to the next step or live",
    )
    promote.add_argument("id", help="deployment id")
    promote.add_argument("--env", help="the environment (default: the one paused)")
    promote.add_argument("--reason", help="recorded in the ledger")
    promote.set_defaults(func=cmd_promote)

    live = commands.add_parser("live", help="what each environment serves: release, weights, since when, by whom")
    live.add_argument("app", nargs="?", help="one app (default: every registered pipeline)")
    live.set_defaults(func=cmd_live)

    logs = commands.add_parser("logs", help="a deployment's stage events and its stages' Lambda log lines")
    logs.add_argument("id", help="deployment id")
    logs.add_argument("--stage", help="only this stage (e.g. EvaluateHealth)")
    logs.set_defaults(func=cmd_logs)

    reconcile = commands.add_parser(
        "reconcile",
        help="close executions that ended without finishing: given ARNs, or what the reconcile dead-letter queue holds",
    )
    reconcile.add_argument("execution", nargs="*", help="execution ARNs (default: redrive the dead-letter queue)")
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

    freeze = commands.add_parser(
        "freeze",
        help="emergency stop: no deployment of APP (or --all apps) starts in any environment until unfreeze",
        description="Stored in the ledger as your AWS identity. A deployment reaching an environment's gate waits "
        "or is refused as its pipeline's on_freeze says; a rollout already past its gate finishes (conveyor abort "
        "stops one). --list: the freezes in force.",
    )
    freeze.add_argument("app", nargs="?", help="the app to freeze")
    freeze.add_argument("--all", action="store_true", help="freeze every app")
    freeze.add_argument("--reason", help="why (required): shown to whoever's deployment it stops")
    freeze.add_argument("--until", help="lift by itself: a duration (30m, 2h, 1d) or an ISO 8601 instant")
    freeze.add_argument("--list", action="store_true", help="show the freezes in force")
    freeze.add_argument("--json", action="store_true")
    freeze.set_defaults(func=cmd_freeze)
    unfreeze = commands.add_parser("unfreeze", help="lift the freeze of APP (or --all)")
    unfreeze.add_argument("app", nargs="?", help="the app to unfreeze")
    unfreeze.add_argument("--all", action="store_true", help="lift the freeze of every app (not apps frozen alone)")
    unfreeze.add_argument("--json", action="store_true")
    unfreeze.set_defaults(func=cmd_unfreeze)

    metrics = commands.add_parser(
        "metrics", help="DORA's four keys per app and environment, each with the DORA report's tier"
    )
    metrics.add_argument("--app")
    metrics.add_argument(
        "--days", type=at_least(1 / 24, float), default=30, help="the window, in days (at least an hour: 0.042)"
    )
    metrics.set_defaults(func=cmd_metrics)

    report = commands.add_parser(
        "report",
        help="write one self-contained HTML page of a deployment: timeline, traffic, metrics, verdicts, rollback",
    )
    report.add_argument("id", nargs="?", help="deployment id (default: the latest)")
    report.add_argument(
        "-o",
        "--out",
        help="the HTML file to write, a folder for it, or - for stdout (default: conveyor-report-<id>.html)",
    )
    report.set_defaults(func=cmd_report)

    demo = commands.add_parser("demo", help="the whole story offline: local cloud, good push, bad push, rollback")
    demo.add_argument("--keep-running", action="store_true", help="leave the local cloud up afterwards")
    demo.set_defaults(func=cmd_demo)

    for each in _parsers(parser):  # last, so a command added above (by anyone) takes them too
        add_global_options(each)
    return parser


# --- global options ------------------------------------------------------------------------
GLOBAL_DEFAULTS: dict[str, Any] = {
    "local": False,
    "stack_name": "conveyor",
    "profile": None,
    "region": None,
    "output_format": "table",
}
"""The global options' values when the line names none (they are parsed with no default, see below)."""


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The options every command takes, before or after its name.

    Each parser on the line gets them with no default (``SUPPRESS``), so one given before the command is not
    reset by the command's parser; ``settle_global_options`` fills in what none named. An option a command
    already defines itself is left to it; ``--output`` is stored as ``output_format`` (``args.json`` says
    whether it is JSON), so a command with an ``--output FILE`` of its own keeps its own value.
    """
    options: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (("--local",), {"action": "store_true", "help": "use the embedded local cloud (or CONVEYOR_LOCAL=1)"}),
        (("--stack-name",), {"help": "the deployed stack on AWS (default: conveyor)"}),
        (("--profile",), {"help": "the AWS profile (default: AWS_PROFILE, as the AWS CLI)"}),
        (("--region",), {"help": "the AWS region (default: AWS_REGION / the profile's, as the AWS CLI)"}),
        (("--output",), {"choices": ("json", "table"), "dest": "output_format", "help": "table (default) or json"}),
        (
            ("--json",),
            {"action": "store_const", "const": "json", "dest": "output_format", "help": "same as --output json"},
        ),
    ]
    for flags, settings in options:
        if any(flag in parser._option_string_actions for flag in flags):
            continue
        parser.add_argument(*flags, default=argparse.SUPPRESS, **settings)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser of a command under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias names the same parser again
                yield from _parsers(sub)


def settle_global_options(args: argparse.Namespace) -> argparse.Namespace:
    """Defaults for the global options none named; ``args.json`` says whether the output is JSON."""
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if getattr(args, "json", None) is True:  # a command's own --json flag
        args.output_format = "json"
    args.json = args.output_format == "json"
    return args


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    return settle_global_options(build_parser().parse_args(argv))


def _quiet_broken_pipe() -> int:
    """Output cut short by a closed pipe (``conveyor history | head``): no traceback, and none at exit either
    (the interpreter flushes stdout once more on the way out: it goes to /dev/null instead)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except UsageError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        return 2
    except (CliError, ConveyorError, LocalCloudError, TimeoutError) as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path given on the line that cannot be read or written: one line naming it
        if not exc.filename:
            raise
        print(f"conveyor: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
