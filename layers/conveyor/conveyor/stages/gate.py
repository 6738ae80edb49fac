"""CheckGates: may this deployment start touching the environment? Asked once its lock is held, nothing moved yet.

Under the lock, not before it: a deployment that queued for the environment is judged when its turn comes, so
an emergency ``conveyor freeze`` stops the releases already waiting too, and the alarms are read right before
the first change.

Two gates, in this order:

1. **Freezes** (``conveyor.domain.freeze``): the pipeline's ``freeze_windows`` that cover the environment now,
   and the operator freezes of the app or of every app (``conveyor freeze``). With ``on_freeze: refuse`` (the
   default) a frozen environment ends the deployment at once (``frozen``: DeploymentFrozenError). With
   ``wait`` the state machine waits (WaitForGate, ``wait_seconds``) and asks again, at least every
   ``GATE_POLL_SECONDS`` so an ``unfreeze`` is seen soon, for at most ``freeze_wait_seconds`` in this
   environment (wall-clock time, under the local cloud's time scale too: freezes are); a freeze known to end
   later than that is refused at once rather than waited on in vain. While
   it waits, it keeps this environment's lock (the lease covers ``freeze_wait_seconds``: whoever queues behind
   would be frozen too); AcquireLock released the deployment's earlier environments as it took this one.
2. **Pre-start alarms**: the environment's own ``health.alarms`` must not fire before Conveyor touches it. An
   alarm in ALARM, or one that no longer exists, ends the deployment (``alarm``: AlarmFiringError): deploying
   into an environment already known to be unhealthy would blur whose fault the next alarm is, and a rollback
   would restore a broken state. INSUFFICIENT_DATA passes (recorded): a quiet environment (no traffic at night)
   has alarms without data, and would otherwise never take a release; whether no data is good enough *after*
   the release is ``health.on_inconclusive``'s to say.

Every decision is a ``CheckGates`` stage event in the ledger (a refusal as ``failed``, so the failure notice
names this stage) and its reason names the window, who froze, or the alarm. AcquireLock asks the gates first, as
it takes the lock (``decide_gates``: the event goes into the lock's own ledger write); ``check_gates`` asks again
after WaitForGate. Time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from conveyor.domain.contracts import EnvironmentStep, GateResult
from conveyor.domain.freeze import ActiveFreeze, active_freezes, frozen_until
from conveyor.domain.ports import Alarms, Freezes, GateCheck, Ledger
from conveyor.domain.records import FAILED
from conveyor.domain.time_scale import UNSCALED, TimeScale, duration_text
from conveyor.domain.timing import TimedStage
from conveyor.observability import MetricUnit, logger, metrics

__all__ = ["GATE_POLL_SECONDS", "check_gates", "decide_gates"]

GATE_POLL_SECONDS = 60
"""The longest a waiting deployment goes without asking again (spec time): how soon an ``unfreeze`` is seen."""
_STATUS = {"open": "open", "wait": "waiting", "frozen": FAILED, "alarm": FAILED}


def decide_gates(
    step: EnvironmentStep,
    *,
    freezes: Freezes,
    alarms: Alarms,
    now: datetime,
    scale: TimeScale = UNSCALED,
) -> GateCheck:
    """Ask the gates, and build the ``CheckGates`` event that says what they decided, without writing it (AcquireLock
    writes it with the lock's record); an error asking them is in the answer, not raised."""
    deployment, env = step.deployment, step.environment
    asked = step.lock.gate if step.lock is not None else None
    earlier = asked if asked is not None and asked.environment == env.name else None
    timed = TimedStage(deployment.deployment_id, "CheckGates", env.name)
    try:
        with timed as detail:
            result = _decide(step, earlier, freezes=freezes, alarms=alarms, now=now, scale=scale, detail=detail)
            detail.update(
                status=_STATUS[result.decision],
                decision=result.decision,
                reason=result.reason,
                wait_seconds=result.wait_seconds,
                frozen_until=result.frozen_until.isoformat() if result.frozen_until else None,
            )
    except Exception:
        return GateCheck(event=timed.event, result=None, error=timed.error)
    if result.decision in ("frozen", "alarm"):
        metrics.add_metric(name="DeploymentsGated", unit=MetricUnit.Count, value=1)
    logger.info("gate decided", extra={"decision": result.decision, "reason": result.reason})
    return GateCheck(event=timed.event, result=result)


def check_gates(
    step: EnvironmentStep,
    *,
    freezes: Freezes,
    alarms: Alarms,
    ledger: Ledger,
    now: datetime,
    scale: TimeScale = UNSCALED,
) -> GateResult:
    """Ask the gates again (after WaitForGate) and record what they decided."""
    check = decide_gates(step, freezes=freezes, alarms=alarms, now=now, scale=scale)
    ledger.record_event(check.event)
    if check.error is not None:
        raise check.error
    assert check.result is not None
    return check.result


def _decide(
    step: EnvironmentStep,
    earlier: GateResult | None,
    *,
    freezes: Freezes,
    alarms: Alarms,
    now: datetime,
    scale: TimeScale,
    detail: dict[str, object],
) -> GateResult:
    deployment, env = step.deployment, step.environment
    policy = deployment.policy
    result = partial(GateResult, environment=env.name, checked_at=now, checks=earlier.checks + 1 if earlier else 1)
    operator = freezes.all()
    windows, app = policy.freeze_windows, deployment.app
    active = active_freezes(windows, operator, app=app, environment=env.name, at=now)
    detail["freezes"] = [freeze.model_dump(mode="json") for freeze in active]
    if active:
        until = frozen_until(windows, operator, app=app, environment=env.name, at=now)
        why = _freeze_text(env.name, active, until)
        if policy.on_freeze == "refuse":
            reason = f"{why}; on_freeze: refuse, so nothing was touched in {env.name}"
            return result(decision="frozen", reason=reason, frozen_until=until)
        since = earlier.waiting_since if earlier is not None and earlier.waiting_since is not None else now
        # Freezes are wall-clock facts (a window, an operator's --until), so their budget is too, under a time
        # scale as well: the local cloud then waits on a freeze exactly when AWS would.
        budget = timedelta(seconds=policy.freeze_wait_seconds)
        allowed = duration_text(policy.freeze_wait_seconds)
        if until is not None and until - since > budget:
            reason = f"{why}: longer than freeze_wait_seconds ({allowed}) allows to wait; nothing was touched"
            return result(decision="frozen", reason=reason, frozen_until=until, waiting_since=since)
        if now - since >= budget:
            reason = f"{why}: still frozen after waiting {allowed} (freeze_wait_seconds); nothing was touched"
            return result(decision="frozen", reason=reason, frozen_until=until, waiting_since=since)
        left = [budget - (now - since)] + ([until - now] if until is not None else [])
        nominal = min([scale.nominal_seconds(gap.total_seconds()) for gap in left] + [GATE_POLL_SECONDS])
        return result(
            decision="wait",
            reason=f"{why}; waiting (on_freeze: wait, up to {allowed})",
            frozen_until=until,
            waiting_since=since,
            wait_seconds=max(1, math.ceil(nominal)),
        )
    return _alarm_gate(env.name, env.health.alarms, alarms, detail=detail, result=result)


def _freeze_text(environment: str, active: list[ActiveFreeze], until: datetime | None) -> str:
    ends = f"until {until.isoformat()}" if until is not None else "until `conveyor unfreeze`"
    return f"{environment} is frozen {ends}: " + "; ".join(freeze.reason for freeze in active)


def _alarm_gate(
    environment: str,
    names: list[str],
    alarms: Alarms,
    *,
    detail: dict[str, object],
    result: Callable[..., GateResult],
) -> GateResult:
    if not names:
        return result(decision="open", reason="not frozen; no alarms configured")
    states = alarms.states(list(names))
    detail["alarms"] = {name: states.get(name, "MISSING") for name in names}
    firing = [name for name in names if states.get(name) == "ALARM"]
    missing = [name for name in names if name not in states]
    if firing or missing:
        problems = [f"alarm {name!r} is in ALARM" for name in firing]
        problems += [f"alarm {name!r} does not exist" for name in missing]
        reason = (
            f"{environment} is not healthy before the deployment: {', '.join(problems)}; "
            f"nothing was touched in {environment}"
        )
        return result(decision="alarm", reason=reason)
    quiet = [name for name in names if states[name] != "OK"]
    note = f" ({', '.join(quiet)} without data: passes)" if quiet else ""
    return result(decision="open", reason=f"not frozen; alarms OK{note}")
