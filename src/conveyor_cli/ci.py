"""What a CI job runs: ``conveyor ship`` (package, push and follow in one command) and ``conveyor summary``
(a deployment as Markdown, for a job summary such as ``$GITHUB_STEP_SUMMARY``).

``ship`` exits like ``conveyor status ID --wait`` (``ExitCode``: 0 only when the deployment went live, one
code per other end), prints the deployment id as soon as the push is done (so a job killed while following
still logs it) and ends with one line that says how the deployment ended. ``--summary FILE`` appends the same
Markdown that ``conveyor summary`` writes.

The commands hang off the parser through ``register``, with the function that builds a ``Cloud`` from the
parsed arguments, so the CLI's global options (``--local``, the stack, a profile) stay main's business.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.ports import ExecutionState
from conveyor.domain.records import DeploymentRecord, StageEvent
from conveyor.domain.validation import describe
from pydantic import ValidationError

from conveyor_cli import operations
from conveyor_cli.context import CliError, Cloud
from conveyor_cli.packaging import (
    at_least,
    build_bundle,
    bundle_destination,
    env_variable,
    function_config_of,
    write_bundle,
)
from conveyor_cli.status import (
    EXIT_CODE_MEANINGS,
    ExitCode,
    as_json,
    describe_event,
    exit_code,
    not_in_ledger,
    render_event,
    rolled_back_by_hand,
    target_of,
)

CloudOf = Callable[[argparse.Namespace], Cloud]
DEFAULT_WAIT_SECONDS = 900.0
"""How long ``ship`` follows a deployment by default, as ``conveyor status --wait`` does."""


@dataclass(frozen=True)
class Shipped:
    """What ``ship`` did: the bundle it built, the push, and the deployment as it ended (or as far as it got)."""

    bundle: Path
    pushed: dict[str, Any]
    record: DeploymentRecord | None
    code: ExitCode
    execution: ExecutionState | None
    waited_seconds: float

    @property
    def deployment_id(self) -> str:
        return str(self.pushed["deployment_id"])

    def outcome_line(self) -> str:
        """One line for a CI log: the release, how it ended, why, and the exit code."""
        return outcome_line(
            self.record, self.code, app=self.pushed["app"], version=self.pushed["version"], waited=self.waited_seconds
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.pushed,
            "bundle": str(self.bundle),
            "outcome": self.record.status.value if self.record else None,
            "exit_code": int(self.code),
            "exit_name": self.code.name,
            "summary": self.outcome_line(),
            "deployment": as_json(self.record, self.execution) if self.record else None,
        }


def package(
    source: Path, *, app: str, version: str, bundle_path: Path, function_config: FunctionConfig | None = None
) -> Path:
    """Build ``source``'s bundle at ``bundle_path``: a ``BundleSourceError`` names a missing or empty directory,
    a ``CliError`` a manifest field that is refused. Needs no cloud, so a bad build fails before any AWS call."""
    try:
        data, _ = build_bundle(source, app=app, version=version, function_config=function_config)
    except ValidationError as exc:
        raise CliError(describe("manifest", exc)) from exc
    write_bundle(bundle_path, data)
    return bundle_path


def push_and_follow(
    cloud: Cloud,
    bundle_path: Path,
    *,
    timeout: float = DEFAULT_WAIT_SECONDS,
    on_pushed: Callable[[dict[str, Any]], None] | None = None,
    on_event: Callable[[StageEvent, float], None] | None = None,
) -> Shipped:
    """Push a bundle and follow its deployment until it ends (or ``timeout`` passes, ``WAIT_TIMED_OUT``).

    ``on_pushed`` hears the push before the follow starts, ``on_event`` each stage as the ledger records it.
    """
    pushed = operations.push(cloud, bundle_path)
    if on_pushed:
        on_pushed(pushed)
    try:
        record = operations.wait(cloud, pushed["deployment_id"], timeout=timeout, on_event=on_event)
    except TimeoutError:
        found = operations.ledger(cloud).get(pushed["deployment_id"])
        return Shipped(bundle_path, pushed, found, ExitCode.WAIT_TIMED_OUT, None, timeout)
    execution = operations.execution_state(cloud, record.execution_arn) if record.execution_arn else None
    code = exit_code(record, execution.status if execution else None)
    return Shipped(bundle_path, pushed, record, code, execution, timeout)


def outcome_line(
    record: DeploymentRecord | None, code: ExitCode, *, app: str, version: str, waited: float | None = None
) -> str:
    """``hello 1.4.2 ROLLED_BACK in 12.3 s: <why> (exit 4)``: how a deployment ended, on one line."""
    if code is ExitCode.WAIT_TIMED_OUT:
        where = f"still {record.status.value}" if record else "not in the ledger yet"
        return (
            f"{app} {version} {where} after {waited or 0:.0f} s of waiting; it may still end either way (exit {code})"
        )
    assert record is not None  # every other code is read from a record
    took = f" in {record.duration_seconds:.1f} s" if record.duration_seconds is not None else ""
    reason = failure_reason(record)
    why = f": {reason}" if reason else ""
    return f"{record.app} {record.version} {record.status.value}{took}{why} (exit {code})"


def failure_reason(record: DeploymentRecord) -> str | None:
    """Why a deployment did not go live, in a line (None when it did, or when nothing says why)."""
    if not record.failure:
        return None
    where = record.failure.get("environment")
    error, reason = record.failure.get("error"), record.failure.get("reason")
    text = ": ".join(str(part) for part in (error, reason) if part)
    return f"{where}: {text}" if where and text else text or None


# --- Markdown ------------------------------------------------------------------------------------------
_MARKS = {ExitCode.SUCCEEDED: "✅", ExitCode.SKIPPED: "⏭️", ExitCode.WAIT_TIMED_OUT: "⏳", ExitCode.NOT_FINISHED: "⏳"}


def _cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    return " ".join(str(value if value is not None else "-").split()).replace("|", "\\|")


def summary_markdown(record: DeploymentRecord, code: ExitCode) -> str:
    """A deployment as a Markdown job summary: outcome and exit code, each environment, then the stage timeline."""
    mark = _MARKS.get(code, "❌")
    lines = [
        f"### {mark} {record.app} {record.version}: {record.status.value}",
        "",
        "| | |",
        "|---|---|",
        f"| deployment | `{_cell(record.deployment_id)}` |",
        f"| outcome | **{record.status.value}** |",
        # the meaning without its leading name ("ROLLED_BACK: a check failed, ..."), which the line above gives
        f"| exit code | {int(code)}: {_cell(EXIT_CODE_MEANINGS[code].split(': ', 1)[-1])} |",
    ]
    if record.duration_seconds is not None:
        lines.append(f"| took | {record.duration_seconds:.1f} s |")
    reason = failure_reason(record)
    if reason:
        lines.append(f"| why | {_cell(reason)} |")
    if record.package_sha256:
        lines.append(f"| package sha256 | `{record.package_sha256}` |")
    if record.environments:
        lines += ["", "| environment | target | before | after | status |", "|---|---|---|---|---|"]
        for name, env in record.environments.items():
            restored = (env.rollback or {}).get("restored_version")
            by_hand = rolled_back_by_hand(env)
            after = (
                f"{env.version_after}, {by_hand}"
                if by_hand
                else restored
                if restored is not None
                else env.version_after
            )
            target = target_of(env)[0] if env.function_name else None
            lines.append(
                f"| {_cell(name)} | `{_cell(target)}` | {_cell(env.version_before)} | {_cell(after)} "
                f"| {_cell(env.status.value if env.status else None)} |"
            )
    if record.events:
        origin = record.created_at.timestamp()
        lines += [
            "",
            f"<details><summary>Stage timeline ({len(record.events)} events)</summary>",
            "",
            "| at | environment | stage | status | ms | detail |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| +{event.started_at.timestamp() - origin:.2f} s | {_cell(event.environment)} | {_cell(event.stage)} "
            f"| {_cell(event.status)} | {event.duration_ms:.0f} | {_cell(describe_event(event))} |"
            for event in record.events
        ]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n\n"


def timed_out_markdown(shipped: Shipped) -> str:
    """The job summary of a deployment ``ship`` stopped following before it ended."""
    if shipped.record is not None:
        return summary_markdown(shipped.record, ExitCode.WAIT_TIMED_OUT)
    return (
        f"### ⏳ {shipped.pushed['app']} {shipped.pushed['version']}: not in the ledger yet\n\n"
        f"Pushed to `{shipped.pushed['s3_uri']}` as deployment `{shipped.deployment_id}`; no execution recorded it "
        f"within {shipped.waited_seconds:.0f} s (exit {int(ExitCode.WAIT_TIMED_OUT)}).\n\n"
    )


def append_to(path: Path, markdown: str) -> None:
    """Append to ``path``, as job summaries expect (``$GITHUB_STEP_SUMMARY`` may already hold other steps' text)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(markdown)
    except OSError as exc:
        raise CliError(f"cannot write the summary to {path}: {exc}") from exc


# --- commands ------------------------------------------------------------------------------------------
def cmd_ship(args: argparse.Namespace, cloud_of: CloudOf) -> int:
    """``conveyor ship DIR --app A --version V``: the exit code of how the deployment ended (``ExitCode``)."""
    config = function_config_of(args.env, args.memory, args.timeout)
    # Under --json stdout is one document, so the progress goes to stderr.
    progress: TextIO = sys.stderr if args.json else sys.stdout

    def pushed(result: dict[str, Any]) -> None:
        print(f"pushed {result['s3_uri']}", file=progress)
        print(f"deployment {result['deployment_id']}", file=progress, flush=True)

    def live(event: StageEvent, origin: float) -> None:
        print(render_event(event, origin), file=progress, flush=True)

    bundle = package(
        Path(args.dir),
        app=args.app,
        version=args.version,
        bundle_path=bundle_destination(args.out, args.app, args.version),
        function_config=config,
    )
    shipped = push_and_follow(cloud_of(args), bundle, timeout=args.wait_timeout, on_pushed=pushed, on_event=live)
    if args.summary:
        markdown = (
            timed_out_markdown(shipped) if shipped.record is None else summary_markdown(shipped.record, shipped.code)
        )
        append_to(Path(args.summary), markdown)
    if args.json:
        print(json.dumps(shipped.as_dict(), indent=2, default=str))
    else:
        print(shipped.outcome_line(), flush=True)
    return int(shipped.code)


def cmd_summary(args: argparse.Namespace, cloud_of: CloudOf) -> int:
    """``conveyor summary ID``: a deployment as Markdown (``--output json``: as ``status --json`` gives it); 0 once
    written, whatever the deployment's outcome."""
    cloud = cloud_of(args)
    record = operations.ledger(cloud).get(args.id)
    if record is None:
        running = operations.running_execution_of(cloud, args.id)
        raise CliError(not_in_ledger(args.id, table=cloud.outputs.ledger_table, running_execution=running))
    execution = operations.execution_state(cloud, record.execution_arn) if record.execution_arn else None
    if getattr(args, "json", False):
        text = json.dumps(as_json(record, execution), indent=2, default=str) + "\n"
    else:
        text = summary_markdown(record, exit_code(record, execution.status if execution else None))
    if args.out:
        append_to(Path(args.out), text)
    else:
        print(text, end="")
    return 0


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    cloud_of: CloudOf,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add ``ship`` and ``summary`` to the CLI; ``cloud_of`` builds the ``Cloud`` the global options name, and
    ``parents`` (if any) are the parsers of the options every command accepts."""
    from conveyor_cli.status import exit_codes_help

    ship_parser = commands.add_parser(
        "ship",
        parents=list(parents),
        help="package DIR, push it and follow the deployment: one command for CI (exit 0 only if it went live)",
        description="Package a build directory, push the bundle, and follow the deployment until it ends.\n"
        "Prints the deployment id once pushed, the stages as they run, and one line with the outcome.\n"
        "The exit code is conveyor status's: 0 only when the deployment went live.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ship_parser.add_argument("dir", help="the build output to deploy (packaged as package.zip)")
    ship_parser.add_argument("--app", required=True)
    ship_parser.add_argument("--version", required=True)
    ship_parser.add_argument("--out", help="where the bundle is written (default: <app>-<version>.zip)")
    ship_parser.add_argument(
        "--env", action="append", type=env_variable, metavar="KEY=VALUE", help="function environment variable"
    )
    ship_parser.add_argument("--memory", type=int, help="function memory (MB)")
    ship_parser.add_argument("--timeout", type=int, help="function timeout (s), as for `conveyor package`")
    ship_parser.add_argument(
        "--wait-timeout",
        type=at_least(0, float),
        default=DEFAULT_WAIT_SECONDS,
        help=f"seconds to follow the deployment before giving up with exit 10 (default {DEFAULT_WAIT_SECONDS:.0f})",
    )
    ship_parser.add_argument(
        "--summary", metavar="FILE", help="append the outcome as Markdown to FILE (e.g. $GITHUB_STEP_SUMMARY)"
    )
    ship_parser.add_argument("--json", action="store_true", help="one JSON document on stdout (progress on stderr)")
    ship_parser.set_defaults(func=lambda args: cmd_ship(args, cloud_of))

    summary = commands.add_parser(
        "summary",
        parents=list(parents),
        help="a deployment as Markdown, for a CI job summary (appended to --out FILE, or printed)",
    )
    summary.add_argument("id", help="deployment id")
    summary.add_argument("-o", "--out", metavar="FILE", help="append to FILE (e.g. $GITHUB_STEP_SUMMARY)")
    summary.set_defaults(func=lambda args: cmd_summary(args, cloud_of))
