"""``conveyor status``: a deployment's stage timeline, verdicts and outcome, live while it runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus, traffic_may_have_moved
from conveyor.domain.notices import found_restored, never_served
from conveyor.domain.outcome import ENDED, Outcome
from conveyor.domain.ports import ENDED as EXECUTION_ENDED
from conveyor.domain.ports import ExecutionState, Ledger
from conveyor.domain.records import DeploymentRecord, StageEvent

from conveyor_cli.context import CliError
from conveyor_cli.output import human_duration, when

HIDDEN = "(hidden)"
START_TIMEOUT_SECONDS = 120.0
"""How long ``status --wait`` gives a pushed object to be recorded by an execution before it says none picked it up
(EventBridge starts one within seconds; a cold ClaimDeployment adds a few more)."""
EXECUTION_POLL_SECONDS = 5.0
"""How often a follower asks whether a deployment's execution stopped before the ledger says it ended."""


class ExitCode(IntEnum):
    """What ``conveyor status`` exits with: 0 only when the deployment went live, one code per other end.

    A CI job that runs ``conveyor status ID --wait`` fails unless the deployment SUCCEEDED, and can tell
    why from the code alone. Plain ``conveyor status ID`` exits with the same codes (``NOT_FINISHED``
    while it runs). The table in README.md ("Exit codes of conveyor status") lists the same values.
    """

    SUCCEEDED = 0
    ERROR = 1
    """The CLI could not answer: unknown deployment, no cloud, unreadable ledger, bad input."""
    USAGE = 2
    """Bad arguments (argparse's own code)."""
    FAILED = 3
    ROLLED_BACK = 4
    ROLLBACK_FAILED = 5
    SUPERSEDED = 6
    SKIPPED = 7
    """The deployment changed nothing: a duplicate of one already done."""
    STOPPED = 8
    """Its execution was stopped or timed out: ABORTED or TIMED_OUT (closed by the reconciler), or still open in
    the ledger while its execution has ended."""
    NOT_FINISHED = 9
    """Without ``--wait``: the deployment is still running or queued."""
    WAIT_TIMED_OUT = 10
    """``--wait`` gave up after ``--timeout`` seconds; the deployment may still end either way."""


OUTCOME_EXIT_CODES: dict[Outcome, ExitCode] = {
    Outcome.SUCCEEDED: ExitCode.SUCCEEDED,
    Outcome.FAILED: ExitCode.FAILED,
    Outcome.ROLLED_BACK: ExitCode.ROLLED_BACK,
    Outcome.ROLLBACK_FAILED: ExitCode.ROLLBACK_FAILED,
    Outcome.SUPERSEDED: ExitCode.SUPERSEDED,
    Outcome.SKIPPED_DUPLICATE: ExitCode.SKIPPED,
    Outcome.ABORTED: ExitCode.STOPPED,
    Outcome.TIMED_OUT: ExitCode.STOPPED,
    Outcome.IN_PROGRESS: ExitCode.NOT_FINISHED,
    Outcome.QUEUED: ExitCode.NOT_FINISHED,
}
"""Every outcome the ledger can hold, and its code (a new ``Outcome`` without one fails a unit test)."""


def exit_code(record: DeploymentRecord, execution_status: str | None) -> ExitCode:
    """The exit code for a deployment as the ledger and Step Functions see it now."""
    if record.status not in ENDED and execution_status in EXECUTION_ENDED:
        return ExitCode.STOPPED
    # An outcome without a code (a unit test forbids it) still never reads as success.
    return OUTCOME_EXIT_CODES.get(record.status, ExitCode.FAILED)


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.SUCCEEDED: "the deployment SUCCEEDED: live in every environment",
    ExitCode.ERROR: "no answer: unknown deployment, no cloud, unreadable ledger",
    ExitCode.USAGE: "bad arguments",
    ExitCode.FAILED: "FAILED before traffic moved where it failed: nothing deployed there (an earlier environment it "
    "took live stays live)",
    ExitCode.ROLLED_BACK: "ROLLED_BACK: a check failed, the target serves the release before again",
    ExitCode.ROLLBACK_FAILED: "ROLLBACK_FAILED: a person must act (see the notification)",
    ExitCode.SUPERSEDED: "SUPERSEDED: a newer release took its place, nothing deployed",
    ExitCode.SKIPPED: "SKIPPED_DUPLICATE: the same release as another deployment, it changed nothing",
    ExitCode.STOPPED: "ABORTED or TIMED_OUT: its execution was stopped or timed out",
    ExitCode.NOT_FINISHED: "still IN_PROGRESS or QUEUED (without --wait)",
    ExitCode.WAIT_TIMED_OUT: "--wait gave up after --timeout seconds",
}


def exit_codes_help() -> str:
    """The exit code table as ``conveyor status --help`` prints it."""
    return "exit codes:\n" + "\n".join(
        f"  {code.value:>2}  {code.name:<16} {EXIT_CODE_MEANINGS[code]}" for code in ExitCode
    )


def plain(value: Any) -> str:
    """A detail value as a person reads it: lists joined, mappings as ``key value``, nothing Python-shaped."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{key} {plain(item)}" for key, item in value.items()) or "-"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(plain(item) for item in value) or "-"
    return str(value)


def _versions(versions: Any) -> str:
    """Finalize's ``{env: {before, after}}`` as ``staging v3 -> v4, production v3 -> v4``."""
    if not isinstance(versions, dict):
        return plain(versions)
    moves = []
    for env, move in versions.items():
        if isinstance(move, dict):
            before = f"v{move['before']}" if move.get("before") else "none"
            moves.append(f"{env} {before} -> v{move.get('after')}")
        else:
            moves.append(f"{env} {plain(move)}")
    return ", ".join(moves)


def _describe_decision(stage: str, detail: dict[str, Any]) -> str:
    """A person's part in a deployment: asked, approved (n of N), rejected, or refused as an approver."""
    by = plain(detail.get("by"))
    said = (f": {plain(detail['reason'])}" if detail.get("reason") else "") + (
        f" (note: {plain(detail['note'])})" if detail.get("note") else ""
    )
    if stage == "RequestApproval":
        return f"awaiting a person ({plain(detail.get('kind'))}) until {when(detail.get('expires_at'))}"
    if stage == "Approve":
        count = f" ({detail['approvals']}/{detail['required']})" if detail.get("required") else ""
        return f"approved by {by}{count}{said}"
    if stage == "Reject":
        return f"rejected by {by}{said}"
    return f"{plain(detail.get('verdict'))} by {by} refused: {plain(detail.get('reason'))}"


def _restored_from(detail: dict[str, Any]) -> str:
    """A RollBack's restored version and the one it moved off ("5 (from 7)"), or that traffic had not moved."""
    restored = plain(detail.get("restored_version"))
    if never_served(detail):
        return f"{restored} kept (traffic had not moved)"
    if found_restored(detail):
        return f"{restored} (found already restored)"
    return f"{restored} (from {plain(detail.get('rolled_back_from'))})"


def describe_event(event: StageEvent) -> str:
    """One line of evidence for a stage: what it did or why it failed."""
    detail = event.detail
    if "reason" in detail and event.failed:
        return plain(detail["reason"])
    match event.stage:
        case "ValidateArtifact":
            digest = str(detail.get("package_sha256") or "")[:12]
            return f"sha256 {digest}..., environments {plain(detail.get('environments'))}"
        case "Deploy":
            return ", ".join(
                f"{plain(one.get('function_name'))} version {plain(one.get('version_after'))}"
                + (" (reused)" if one.get("reused") else "")
                for one in [detail, *detail.get("companions", [])]
            )
        case "ShiftTraffic":
            return f"weight {plain(detail.get('weight'))}% (step {plain(detail.get('step'))}/{plain(detail.get('of'))})"
        case "EvaluateHealth":
            return f"{event.status.upper()}: {plain(detail.get('reason'))}"
        case "RequestApproval" | "Approve" | "Reject" | "DecisionRefused":
            return _describe_decision(event.stage, detail)
        case "RollBack":
            if not detail.get("companions"):
                return f"restored version {_restored_from(detail)}"
            # A target of several functions: each named, the first as its companions are.
            return "restored " + ", ".join(
                f"{plain(one.get('function_name'))} {_restored_from(one)}" for one in [detail, *detail["companions"]]
            )
        case "ManualRollback" | "ManualRestore":
            return (
                f"by {plain(detail.get('operator'))}: restored version {plain(detail.get('restored_version'))} "
                f"(from {plain(detail.get('rolled_back_from'))})"
            )
        case "NotifyFailure":
            return f"notified: {plain(detail.get('subject'))}"
        case "Finalize":
            return f"versions {_versions(detail.get('versions'))}"
    return plain(detail["reason"]) if "reason" in detail else ""


def render_event(event: StageEvent, origin: float) -> str:
    offset = event.started_at.timestamp() - origin
    env = event.environment or "-"
    return (
        f"  +{offset:6.2f}s  {env:<11} {event.stage:<17} {event.status:<12} {event.duration_ms:>8.1f} ms  "
        f"{describe_event(event)}"
    )


def render_header(record: DeploymentRecord) -> str:
    took = f" in {human_duration(record.duration_seconds)}" if record.duration_seconds is not None else ""
    return (
        f"{record.deployment_id}  {record.app} {record.version}  {record.status.value}{took}"
        f"  (started {when(record.created_at)})"
    )


HISTORY_COLUMNS = ("deployment", "app", "version", "outcome", "started", "took", "afterwards")
"""The columns of ``conveyor history``; ``afterwards`` says what happened to a release after it ended (rolled back)."""


def manual_rollbacks(record: DeploymentRecord) -> list[str]:
    """Each environment this deployment made live that was rolled back by hand later: where, by whom, when."""
    notes = []
    for name, env in record.environments.items():
        rollback = env.rollback or {}
        if env.status is not EnvironmentStatus.ROLLED_BACK or not str(rollback.get("reason", "")).startswith("manual"):
            continue
        at = f" at {when(rollback['rolled_back_at'])}" if rollback.get("rolled_back_at") else ""
        notes.append(
            f"{name} rolled back by hand by {rollback.get('operator', '?')}{at} "
            f"(to version {rollback.get('restored_version')})"
        )
    return notes


def history_row(record: DeploymentRecord) -> tuple[str, ...]:
    return (
        record.deployment_id,
        record.app,
        record.version,
        record.status.value,
        when(record.created_at),
        human_duration(record.duration_seconds) if record.duration_seconds is not None else "running",
        "; ".join(manual_rollbacks(record)) or "",
    )


def not_in_ledger(deployment_id: str, *, table: str, running_execution: str | None) -> str:
    """Why ``conveyor status`` has nothing to show, and what (if anything) will change that.

    Following (``--wait``) is suggested only when an execution deploying it is running: anything else
    (a mistyped id, a deployment whose records were lost with a wiped local cloud) never shows up.
    """
    if running_execution is not None:
        return (
            f"deployment {deployment_id} is not in the ledger yet: its execution {running_execution} has just "
            f"started; follow it with `conveyor status {deployment_id} --wait`"
        )
    return (
        f"deployment {deployment_id} is not in the ledger ({table}) and no running execution is deploying it: "
        "check the id with `conveyor history` (a local cloud started with --fresh has forgotten earlier deployments)"
    )


def stopped_note(record: DeploymentRecord, execution_status: str | None) -> str | None:
    """What to tell about a deployment whose execution stopped before it ended (None otherwise)."""
    if record.status in ENDED or execution_status not in EXECUTION_ENDED:
        return None
    ended = (
        f"  its execution ended {execution_status} before the deployment finished, and the reconciler has not closed it"
    )
    moving = [name for name, env in record.environments.items() if traffic_may_have_moved(env)]
    if moving:
        # A re-run would deploy again over a split alias: first put the traffic back.
        return (
            f"{ended}: traffic in {', '.join(moving)} may still be split. Run `conveyor reconcile "
            f"{record.execution_arn}` (it restores the traffic, closes the deployment and notifies), or `conveyor "
            f"rollback {record.app} ENV`"
        )
    return (
        f"{ended}: no environment was left mid-rollout. Run `conveyor reconcile {record.execution_arn}` to close "
        "it; re-run it from the Step Functions console (or push again) to deploy it"
    )


def _companion_lines(env: EnvironmentEntry) -> list[str]:
    """The other functions of a target of several, each with what its alias served before and serves now."""
    restored = {c.get("function_name"): c.get("restored_version") for c in (env.rollback or {}).get("companions", [])}
    lines = []
    for companion in env.companions or []:
        function, before = companion.get("function_name"), companion.get("version_before")
        serving = _serving(env, before, companion.get("version_after"), restored.get(function))
        lines.append(f"  {'':<11} {function}:{env.alias}  alias before: {before or 'none'}  after: {serving}")
    return lines


def rolled_back_by_hand(env: EnvironmentEntry) -> str | None:
    """``rolled back by hand to N by WHO``: an environment the release went live in, which a person then rolled
    back (``conveyor rollback``): something that happened after the deployment, not what it deployed."""
    rollback = env.rollback or {}
    if not rollback.get("operator"):
        return None
    return f"rolled back by hand to {rollback.get('restored_version') or 'none'} by {rollback['operator']}"


def _serving(env: EnvironmentEntry, before: str | None, after: str | None, restored: str | None) -> str:
    """What an alias serves as the entry says: the version restored, the new one (with its share while traffic
    moves), or the one before."""
    if (env.restore or {}).get("set_anew"):  # a later deployment or a manual rollback set it since
        return f"{after or 'none'} no longer: set anew since"
    restored_first = ((env.restore or {}).get("restored") or {}).get(env.function_name, "")
    if env.not_restored and restored_first != "":  # a restore that failed for another function of the target
        return f"{restored_first or 'none'} (restored)"
    if env.status is EnvironmentStatus.ROLLED_BACK:
        by_hand = rolled_back_by_hand(env)
        return f"{after} ({by_hand})" if by_hand and after else restored or before or "none"
    if env.status is EnvironmentStatus.LIVE and after:
        return after
    # Paused for a person's decision (AWAITING_APPROVAL with a version published), the split stands meanwhile.
    shifting = env.status in (EnvironmentStatus.SHIFTING, EnvironmentStatus.AWAITING_APPROVAL)
    if shifting and after and env.weight is not None:
        return (
            f"{after} at {env.weight:g}% ({before or 'none'} at {100 - env.weight:g}%)" if env.weight < 100 else after
        )
    return before or "none"


def target_of(env: EnvironmentEntry) -> tuple[str, str]:
    """Where an environment's release runs, and what moves there: ``function:alias`` and its ``alias``; for an
    Elastic Beanstalk target, ``application/environment`` (the one serving production now: after a blue/green
    swap, the one deployed to) and its application ``version``."""
    extra = env.model_extra or {}
    if extra.get("target_kind") != "elasticbeanstalk":
        return f"{env.function_name or '-'}:{env.alias or '-'}", "alias"
    release = extra.get("beanstalk")
    if not isinstance(release, dict):
        return f"{env.function_name}/{env.alias}", "version"
    serving = release.get("deployed_environment") if env.status is EnvironmentStatus.LIVE else None
    cname = f" (CNAME {release['cname_prefix']})" if release.get("cname_prefix") else ""
    return f"{env.function_name}/{serving or release.get('live_environment')}{cname}", "version"


def not_reached(record: DeploymentRecord) -> str:
    """An environment the deployment has not reached: an ended one never will, so no "yet" promises it."""
    return "not reached: nothing deployed" if record.status in ENDED else "not reached yet"


def render_environments(record: DeploymentRecord) -> list[str]:
    lines = []
    for name, env in record.environments.items():
        if env.status is EnvironmentStatus.PENDING:
            lines.append(f"  {name:<11} {env.function_name}:{env.alias}  {not_reached(record)}")
            continue
        serving = _serving(env, env.version_before, env.version_after, (env.rollback or {}).get("restored_version"))
        where, what = target_of(env)
        lines.append(
            f"  {name:<11} {where}  {what} before: {env.version_before or 'none'}"
            f"  after: {serving}  ({env.status or 'not reached'})"
            + (
                f"  waiting for {env.waiting_for} (position {env.position})"
                if env.status is EnvironmentStatus.QUEUED
                else ""
            )
            + (f"  NOT restored: {', '.join(env.not_restored)} (see the failure)" if env.not_restored else "")
        )
        lines += _companion_lines(env)
        approval = env.approval or {}
        if env.status is EnvironmentStatus.AWAITING_APPROVAL:
            what = "approval" if approval.get("kind") == "approval" else "a decision (paused: promote or roll back)"
            lines.append(
                f"    awaits {what} until {when(approval.get('expires_at'))}: run `{approval.get('command')}` "
                f'or `conveyor reject {record.deployment_id} --env {name} --reason "..."`'
            )
        elif approval.get("decided_at"):
            who = approval.get("approved_by") or approval.get("rejected_by")
            why = f": {approval['reason']}" if approval.get("reason") else ""
            why += f" (note: {approval['note']})" if approval.get("note") else ""
            lines.append(f"    {approval.get('decision')} by {who} at {when(approval.get('decided_at'))}{why}")
    return lines


def redacted(document: dict[str, Any]) -> dict[str, Any]:
    """A deployment as the CLI prints it: the task tokens waiting executions resume with are not shown."""
    for env in (document.get("environments") or {}).values():
        approval = env.get("approval") if isinstance(env, dict) else None
        if isinstance(approval, dict) and "task_token" in approval:
            approval["task_token"] = HIDDEN
    return document


def render(record: DeploymentRecord) -> str:
    origin = record.created_at.timestamp()
    lines = [render_header(record), *(render_event(e, origin) for e in record.events)]
    if record.environments:
        lines += ["  environments:", *render_environments(record)]
    if record.failure:
        error, reason = record.failure.get("error"), record.failure.get("reason")
        lines.append(f"  failure: {error}: {reason}" if error else f"  failure: {reason}")
    if record.attempts > 1:
        lines.append(f"  attempts: {record.attempts}")
    if record.skipped_count:
        lines.append(f"  skipped executions: {record.skipped_count} (duplicates and re-runs that changed nothing)")
        lines.extend(
            f"    {entry.get('outcome')}  {entry.get('execution_arn')}: {entry.get('reason')}"
            for entry in record.skipped[-5:]
        )
    return "\n".join(lines)


def as_json(record: DeploymentRecord, execution: ExecutionState | None) -> dict[str, Any]:
    document = redacted(record.model_dump(mode="json"))
    document["duration_seconds"] = record.duration_seconds
    if execution is not None:
        document["execution"] = {"status": execution.status, "error": execution.error, "cause": execution.cause}
    return document


class NotStartedError(CliError):
    """A pushed deployment no execution picked up within ``status --wait``'s start timeout."""


def wait_for(
    ledger: Ledger,
    deployment_id: str,
    *,
    execution_status: Callable[[str], str],
    timeout: float,
    on_event: Callable[[StageEvent, float], None] | None = None,
    poll_seconds: float = 0.25,
    appear_within: float | None = None,
    still_starting: Callable[[], bool] | None = None,
    closed_only: bool = False,
) -> DeploymentRecord:
    """Poll the ledger until the deployment ends and its execution has stopped, reporting new events.

    An execution that stopped before the deployment ended (stopped from the console, timed out)
    also ends the wait: the record is then as far as it will ever get (``stopped_note`` says so).

    A deployment not in the ledger yet (its object just pushed) is waited for ``appear_within`` seconds;
    then, unless ``still_starting()`` says an execution is on its way, ``NotStartedError`` says none picked it up.
    With ``closed_only``, only the ledger closing the deployment ends the wait (an abort waits for the reconciler).
    """
    started = time.monotonic()
    deadline = started + timeout
    seen, next_ask = 0, 0.0
    while True:
        record = ledger.get(deployment_id)
        if record is None and appear_within is not None and time.monotonic() - started > appear_within:
            if still_starting is not None and still_starting():
                appear_within += EXECUTION_POLL_SECONDS  # an execution is on its way: ask again in a while
                continue
            raise NotStartedError(
                f"deployment {deployment_id} was not picked up: no execution recorded it within "
                f"{appear_within:.0f} s and none deploying it is running. Is the id right (`conveyor history` lists "
                "the deployments, `conveyor push` prints each one's)? If it is: is the artifact bucket's EventBridge "
                "rule enabled? was the object pushed under artifacts/<app>/<version>.zip?"
            )
        if record is not None:
            for event in record.events[seen:]:
                if on_event:
                    on_event(event, record.created_at.timestamp())
            seen = len(record.events)
            finished = record.status in ENDED
            # Step Functions is asked every poll once the ledger says it ended, else every EXECUTION_POLL_SECONDS.
            execution = None
            if record.execution_arn and (finished or time.monotonic() >= next_ask):
                execution = execution_status(record.execution_arn)
                next_ask = time.monotonic() + EXECUTION_POLL_SECONDS
            if closed_only:
                if finished:
                    return record
            elif (finished and execution not in ("RUNNING", "PENDING_REDRIVE")) or execution in EXECUTION_ENDED:
                # (an execution that cannot be described, e.g. past its retention, does not hold a finished one)
                return ledger.get(deployment_id) or record
        if time.monotonic() > deadline:
            if record is None:
                raise TimeoutError(
                    f"deployment {deployment_id} did not appear in the ledger within {timeout:.0f} s: no execution "
                    "has recorded it (check the id with `conveyor history`)"
                )
            raise TimeoutError(f"deployment {deployment_id} still {record.status.value} after {timeout:.0f} s")
        time.sleep(poll_seconds)
