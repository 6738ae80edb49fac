"""ShiftTraffic: move an environment's alias one step of the strategy's plan.

The plan (weights and waits) is data computed from the pipeline spec; the state machine loops
ShiftTraffic -> wait -> EvaluateHealth until the plan is complete, so every strategy runs
through the same states. Weight 100 is the promotion: the alias points at the new version with
its routing configuration cleared. Weight 0 (blue/green's verification step, or the step where a
pre-traffic hook runs) leaves the alias on the old version: the new one serves no production traffic.
Each step records when it started, so health analysis can measure the traffic since then. At 100%
the ledger records which release the alias now serves (``ServedRelease``), in the same write as the
stage's event and the environment's entry.

The alias was read (by AcquireLock, under the lock, or answered by this stage's previous write),
then the lock's fence is checked, then the alias is written conditioned on that revision: a
reconciler that takes the lock away from a stopped execution and then
restores the alias either fences this write out (the fence check fails) or makes it fail
(the revision moved), so a ShiftTraffic still running after its execution stopped cannot move
traffic after the restore.
"""

from __future__ import annotations

from collections.abc import Callable

from conveyor.domain import beanstalk as eb
from conveyor.domain.contracts import EnvironmentStep, Release, ServedRelease, TrafficState
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import AliasChangedError, TrafficShiftError
from conveyor.domain.ports import BeanstalkEnvironments, Ledger, StageWrites, Targets
from conveyor.domain.timing import timed_stage, utcnow
from conveyor.observability import MetricUnit, logger, metrics


def next_traffic(step: EnvironmentStep) -> TrafficState:
    """The traffic step to apply now: the first of the plan, or the one after the current step."""
    steps = step.environment.traffic_steps()
    if step.release is not None and all(
        member.already_serving or member.version_before in (None, member.version_after)
        for member in step.release.members
    ):
        # Nothing to split against (first deployment, or the alias already serves the release: a re-run or re-push
        # never moves traffic back to the version before): go straight to 100%, after any weight-0 verification
        # step (it moves no traffic, so it still applies).
        steps = [s for s in steps[:-1] if s.weight == 0] + [steps[-1]]
    index = 0 if step.traffic is None else step.traffic.index + 1
    if index >= len(steps):
        raise TrafficShiftError(f"traffic plan has {len(steps)} steps; step {index} does not exist")
    current = steps[index]
    return TrafficState(
        steps=steps,
        index=index,
        weight=current.weight,
        wait_seconds=current.wait_seconds,
        complete=index == len(steps) - 1,
        started_at=utcnow(),
    )


def shift_traffic(
    step: EnvironmentStep,
    *,
    targets: Targets,
    ledger: Ledger,
    fence: Callable[[], None] = lambda: None,
    beanstalk: BeanstalkEnvironments | None = None,
) -> TrafficState:
    """Apply the next step of the plan; ``fence`` raises (``LockLostError``) if this execution may no longer act."""
    if step.release is None:
        raise TrafficShiftError("ShiftTraffic needs the release that Deploy produced")
    if step.release.beanstalk is not None:
        if beanstalk is None:
            raise TrafficShiftError("ShiftTraffic: an elasticbeanstalk release needs the Elastic Beanstalk adapter")
        return shift_beanstalk(step, beanstalk=beanstalk, ledger=ledger, fence=fence)
    release, deployment = step.release, step.deployment
    traffic = next_traffic(step)
    writes = StageWrites()
    with timed_stage(ledger, deployment.deployment_id, "ShiftTraffic", release.environment, writes=writes) as detail:
        if traffic.weight == 0:
            fence()
            detail["note"] = "verifying the new version with no production traffic; the alias is unchanged"
            revisions = _revisions(step)
        else:
            revisions = _revisions(step, targets=targets)
            fence()
            for member in release.members:
                revisions[member.function_name] = _route(
                    member, traffic.weight, revisions[member.function_name], targets
                )
            if traffic.weight == 100:
                # Each alias now serves this release: said in the ledger, not in the (immutable) versions.
                writes.served = [
                    ServedRelease.of(deployment, member, recorded_by="ShiftTraffic") for member in release.members
                ]
        traffic = traffic.model_copy(
            update={
                "alias_revision": revisions[release.function_name],
                "companion_revisions": {
                    member.function_name: revisions[member.function_name] for member in release.companions
                },
            }
        )
        detail.update(weight=traffic.weight, step=traffic.index + 1, of=len(traffic.steps))
        if release.companions:
            detail["functions"] = [member.function_name for member in release.members]
        writes.environment = {
            "status": EnvironmentStatus.VERIFYING if traffic.weight == 0 else EnvironmentStatus.SHIFTING,
            "weight": traffic.weight,
        }
    metrics.add_metric(name="TrafficShifts", unit=MetricUnit.Count, value=1)
    logger.info("traffic shifted", extra={"environment": release.environment, "weight": traffic.weight})
    return traffic


def _revisions(step: EnvironmentStep, *, targets: Targets | None = None) -> dict[str, str | None]:
    """Each function's alias revision the next write is conditioned on: the previous step's answer, or Deploy's
    (AcquireLock's) read. Given ``targets``, an alias that existed but whose revision was not handed on (a
    state from before it was) is read now."""
    release, traffic = step.release, step.traffic
    assert release is not None
    revisions: dict[str, str | None] = {}
    for member in release.members:
        if traffic is None:
            revision = member.alias_revision
        elif member is release:
            revision = traffic.alias_revision
        else:
            revision = traffic.companion_revisions.get(member.function_name, member.alias_revision)
        if revision is None and member.version_before is not None and targets is not None:
            current = targets.alias_state(member.function_name, member.alias)
            revision = current.revision_id if current is not None else None
        revisions[member.function_name] = revision
    return revisions


def _route(member: Release, weight: int, revision: str | None, targets: Targets) -> str | None:
    """Point one function's alias at ``weight`` percent on its new version; the alias's new revision.

    The write is conditioned on ``revision``. When the alias moved since, but to exactly this step's state, the
    move is this stage's own from an attempt that failed after it (on another function of the target, or on the
    ledger): Step Functions' retry goes on from it instead of failing the step. Any other move is someone
    else's (a restore): ``AliasChangedError``.
    """
    base, weights = (
        (member.version_after, None)
        if weight == 100 or member.already_serving or member.version_before in (None, member.version_after)
        else (str(member.version_before), {member.version_after: weight / 100})
    )
    try:
        return targets.route_alias(member.function_name, member.alias, base, weights, revision_id=revision)
    except AliasChangedError:
        current = targets.alias_state(member.function_name, member.alias)
        if current is not None and current.version == base and current.weights == (weights or {}):
            return current.revision_id
        raise


def shift_beanstalk(
    step: EnvironmentStep, *, beanstalk: BeanstalkEnvironments, ledger: Ledger, fence: Callable[[], None]
) -> TrafficState:
    """An Elastic Beanstalk step: 0% verifies the idle environment (nothing moves); 100% moves production to
    the release (a CNAME swap, or an update of the environment), once, however often it is re-run."""
    release, deployment = step.release, step.deployment
    assert release is not None
    traffic = next_traffic(step)
    writes = StageWrites()
    with timed_stage(ledger, deployment.deployment_id, "ShiftTraffic", release.environment, writes=writes) as detail:
        fence()
        if traffic.weight == 0:
            detail["note"] = "verifying the new version on its own environment; production is unchanged"
        else:
            detail["note"] = eb.promote(release, beanstalk)
            writes.served = [ServedRelease.of(deployment, release, recorded_by="ShiftTraffic")]
        detail.update(weight=traffic.weight, step=traffic.index + 1, of=len(traffic.steps))
        writes.environment = {
            "status": EnvironmentStatus.VERIFYING if traffic.weight == 0 else EnvironmentStatus.SHIFTING,
            "weight": traffic.weight,
        }
    metrics.add_metric(name="TrafficShifts", unit=MetricUnit.Count, value=1)
    logger.info("traffic shifted", extra={"environment": release.environment, "weight": traffic.weight})
    return traffic
