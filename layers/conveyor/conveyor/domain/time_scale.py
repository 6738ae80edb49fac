"""Nominal time and wall time: what the spec says a wait lasts, and what it lasts on this clock.

On AWS they are one. On the local cloud started with ``conveyor local up --time-scale 0.01`` every wait
the spec writes (a bake, an approval window, a retry interval) passes 100 times faster, so the stages
scale what they derive from those waits the same way (the metric window a verdict counts, when an
approval expires) and say both times wherever a time is shown: "within 1 h (36 s at time scale 0.01)",
"over 300 s (3 s at time scale 0.01)". No screen shows a nominal time that is not what happens.

The local cloud gives the scale to its Lambda workers in ``TIME_SCALE_ENV`` (absent on AWS: 1).
"""

import math

from pydantic import BaseModel, ConfigDict, Field

#: The variable the local cloud sets for its server and its Lambda workers (``conveyor local up --time-scale``).
TIME_SCALE_ENV = "CONVEYOR_LOCAL_TIME_SCALE"


def seconds_text(seconds: float) -> str:
    """``300 s``, ``3 s``, ``0.3 s``: whole seconds from 10 up, one decimal below."""
    return f"{seconds:.0f} s" if seconds >= 10 else f"{round(seconds, 1):g} s"


def duration_text(seconds: float) -> str:
    """``24 h``, ``1.5 h``, ``5 min``, ``90 s``: a window as a person reads it."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return seconds_text(seconds)


class TimeScale(BaseModel):
    """How fast nominal time passes here: 1 on AWS, the local cloud's ``--time-scale`` on a laptop."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    factor: float = Field(default=1.0, ge=0)

    @property
    def scaled(self) -> bool:
        return self.factor != 1.0

    def wall_seconds(self, nominal_seconds: float) -> float:
        """How long ``nominal_seconds`` of the spec's time lasts on this clock."""
        return nominal_seconds * self.factor

    def nominal_seconds(self, wall_seconds: float) -> float:
        """How much of the spec's time ``wall_seconds`` on this clock stands for (all of it at scale 0)."""
        return wall_seconds / self.factor if self.factor > 0 else math.inf

    def annotate(self, nominal_text: str, nominal_seconds: float) -> str:
        """``nominal_text`` as written, with the wall time beside it when the clock is scaled."""
        if not self.scaled:
            return nominal_text
        wall = seconds_text(self.wall_seconds(nominal_seconds))
        return f"{nominal_text} ({wall} at time scale {self.factor:g})"


UNSCALED = TimeScale.model_construct(factor=1.0)  # no validation at import: the model builds on first use
