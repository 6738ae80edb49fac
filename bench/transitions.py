"""Figure 2: state transitions per deployment, per strategy, and what they cost beside CodePipeline V2.

Transitions are read from ``get_execution_history``, never from the ASL: every ``*StateEntered``
event is one billed transition (Step Functions Standard bills each step executed, retries
included, which show as extra ``LambdaFunctionScheduled`` events and are added). CodePipeline V2
bills $0.002 per action-execution minute, each action rounded up to a whole minute: the same
deployment there is one action per Task state and one per bake (Wait state), with the durations
measured here (bakes are scaled back from the local cloud's time scale to real seconds).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, get_args

from conveyor.domain import pipeline

SFN_PER_TRANSITION = 0.025 / 1000
CODEPIPELINE_PER_ACTION_MINUTE = 0.002

#: Strategy configurations benchmarked; a type the pipeline schema lacks is skipped, one it has
#: that is not listed here is reported as unbenchmarked.
STRATEGIES: dict[str, dict[str, Any]] = {
    "all_at_once": {"type": "all_at_once"},
    "canary": {"type": "canary", "weight": 10, "bake_seconds": 60},
    "linear": {"type": "linear", "step_percent": 25, "interval_seconds": 60},
    "blue_green": {"type": "blue_green", "bake_seconds": 60},
}


def schema_strategies() -> list[str]:
    """The strategy types the pipeline schema accepts (the discriminator values of ``Strategy``)."""
    union = get_args(pipeline.Strategy)[0]
    names = []
    for model in get_args(union) or (union,):
        literal = model.model_fields["type"].annotation
        names.extend(get_args(literal))
    return names


@dataclass
class Cost:
    transitions: int
    states: Counter[str]
    actions: list[tuple[str, float]]  # (state name, seconds) as CodePipeline actions

    @property
    def sfn_dollars(self) -> float:
        return self.transitions * SFN_PER_TRANSITION

    @property
    def action_minutes(self) -> int:
        return sum(max(1, math.ceil(seconds / 60)) for _, seconds in self.actions)

    @property
    def codepipeline_dollars(self) -> float:
        return self.action_minutes * CODEPIPELINE_PER_ACTION_MINUTE


def cost_of(history: list[dict[str, Any]], time_scale: float) -> Cost:
    """Transitions and CodePipeline-equivalent actions of one execution history."""
    states: Counter[str] = Counter()
    transitions = 0
    open_states: dict[str, Any] = {}
    actions: list[tuple[str, float]] = []
    entered_tasks = scheduled = 0
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            transitions += 1
            name = event["stateEnteredEventDetails"]["name"]
            states[name] += 1
            if kind in ("TaskStateEntered", "WaitStateEntered"):
                entered_tasks += kind == "TaskStateEntered"
                open_states[name] = event["timestamp"]
        elif kind in ("TaskStateExited", "WaitStateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name in open_states:
                seconds = (event["timestamp"] - open_states.pop(name)).total_seconds()
                if kind == "WaitStateExited" and time_scale > 0:
                    seconds /= time_scale
                actions.append((name, seconds))
        elif kind in ("LambdaFunctionScheduled", "TaskScheduled"):
            scheduled += 1
    transitions += max(0, scheduled - entered_tasks)  # retries are billed transitions too
    return Cost(transitions=transitions, states=states, actions=actions)
