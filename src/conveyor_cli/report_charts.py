"""The charts of ``conveyor report``, laid out in Python: coordinates, ticks and labels, no drawing library.

A chart here is plain data (``Chart``): the page template turns it into inline SVG elements, with Jinja's
autoescaping on every label. Laying charts out server-side keeps the report one self-contained file
(no script, no chart library, nothing fetched) and makes what it draws testable without a browser:
the same record always gives the same coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 760
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 30
ROW_HEIGHT = 22
"""The height of one stage's row in the timeline."""
MARKER_LABEL_WIDTH = 56
"""About how wide a marker's label is (pixels), to tell when two would overlap."""
TIMELINE_LABEL_WIDTH = 210
"""The timeline's left column: stage and environment names."""


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Line:
    """One series: a polyline in pixel coordinates (``points`` as SVG wants them), and its dots."""

    label: str
    css: str
    points: tuple[tuple[float, float], ...]
    joined: bool = True

    @property
    def svg_points(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass(frozen=True)
class Marker:
    """A point in time marked across the plot: a verdict (``css`` is its status), a rollback."""

    x: float
    css: str
    label: str
    title: str
    row: int = 0
    """Which line of the plot's top its label sits on: marks close together stagger their labels."""


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    width: int
    height: int
    plot: tuple[float, float, float, float]
    """left, top, right, bottom of the plot area, in pixels."""
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    lines: tuple[Line, ...]
    markers: tuple[Marker, ...] = ()
    empty_note: str | None = None
    """Said instead of a plot when no series has a point."""


@dataclass(frozen=True)
class Bar:
    """One stage in the timeline."""

    label: str
    environment: str
    css: str
    x: float
    y: float
    width: float
    title: str


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    label_width: int
    row_height: int
    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]


@dataclass(frozen=True)
class Scale:
    """Maps seconds since the deployment started onto the plot's x range, and values onto its y range."""

    start: float
    end: float
    low: float
    high: float
    plot: tuple[float, float, float, float] = field(default=(LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM))

    def x(self, seconds: float) -> float:
        left, _, right, _ = self.plot
        span = self.end - self.start or 1.0
        return left + (min(max(seconds, self.start), self.end) - self.start) / span * (right - left)

    def y(self, value: float) -> float:
        _, top, _, bottom = self.plot
        span = self.high - self.low or 1.0
        return bottom - (min(max(value, self.low), self.high) - self.low) / span * (bottom - top)


def format_offset(seconds: float) -> str:
    """``+12.5 s``, ``+3 m 05 s``, ``+1 h 02 m``: an offset from the deployment's start."""
    if seconds < 60:
        return f"+{seconds:.1f} s" if seconds < 10 else f"+{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"+{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"+{hours} h {minutes:02d} m"


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about ``count`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(power * m for m in (1, 2, 5, 10) if power * m >= raw)


def nice_ceiling(value: float) -> float:
    """The round number at or above ``value`` that a y axis ends at (1 for nothing to show)."""
    if value <= 0:
        return 1.0
    step = nice_step(value, 4)
    return math.ceil(value / step - 1e-9) * step


def ticks(low: float, high: float, count: int) -> list[float]:
    step = nice_step(high - low, count)
    first = math.ceil(low / step) * step
    values = []
    value = first
    while value <= high + step * 1e-9:
        values.append(round(value, 10))
        value += step
    return values


def time_ticks(scale: Scale, count: int = 6) -> tuple[Tick, ...]:
    return tuple(Tick(scale.x(t), format_offset(t)) for t in ticks(scale.start, scale.end, count))


def value_ticks(scale: Scale, unit: str, count: int = 4) -> tuple[Tick, ...]:
    def label(value: float) -> str:
        return f"{value:g}{unit}" if unit == "%" else f"{value:g}"

    return tuple(Tick(scale.y(v), label(v)) for v in ticks(scale.low, scale.high, count))


@dataclass(frozen=True)
class Series:
    """A named series of (seconds since start, value) points; ``step``: the value holds until the next point."""

    label: str
    css: str
    points: Sequence[tuple[float, float]]
    step: bool = False
    joined: bool = True
    """False: dots only (single measurements, such as what each verdict judged)."""


@dataclass(frozen=True)
class TimeMark:
    """A moment to mark on a chart (seconds since start)."""

    at: float
    css: str
    label: str
    title: str


def line_chart(
    title: str,
    unit: str,
    series: Sequence[Series],
    *,
    start: float,
    end: float,
    marks: Sequence[TimeMark] = (),
    ceiling: float | None = None,
    empty_note: str = "no data points in this window",
) -> Chart:
    """A chart of ``series`` over [start, end] seconds; the y range starts at 0 and ends at ``ceiling``
    (or a round number above the highest point)."""
    values = [v for s in series for _, v in s.points]
    high = ceiling if ceiling is not None else nice_ceiling(max(values, default=0.0))
    scale = Scale(start=start, end=max(end, start + 1.0), low=0.0, high=high)
    lines = tuple(Line(s.label, s.css, _pixels(s, scale), joined=s.joined) for s in series if s.points)
    markers = _markers(marks, scale)
    return Chart(
        title=title,
        unit=unit,
        width=WIDTH,
        height=HEIGHT,
        plot=scale.plot,
        x_ticks=time_ticks(scale),
        y_ticks=value_ticks(scale, unit),
        lines=lines,
        markers=markers,
        empty_note=None if lines else empty_note,
    )


def _markers(marks: Sequence[TimeMark], scale: Scale) -> tuple[Marker, ...]:
    """Marks in time order; a label that would overlap the one before it goes one line lower (of three)."""
    placed: list[Marker] = []
    for mark in sorted(marks, key=lambda m: m.at):
        x = scale.x(mark.at)
        crowded = placed and x - placed[-1].x < MARKER_LABEL_WIDTH
        row = (placed[-1].row + 1) % 3 if crowded else 0
        placed.append(Marker(x, mark.css, mark.label, mark.title, row=row))
    return tuple(placed)


def _pixels(series: Series, scale: Scale) -> tuple[tuple[float, float], ...]:
    points: list[tuple[float, float]] = []
    ordered = sorted(series.points)
    for index, (at, value) in enumerate(ordered):
        if series.step and index > 0:
            points.append((scale.x(at), scale.y(ordered[index - 1][1])))
        points.append((scale.x(at), scale.y(value)))
    if series.step and ordered:
        points.append((scale.x(scale.end), scale.y(ordered[-1][1])))
    return tuple(points)


@dataclass(frozen=True)
class Span:
    """One stage: its row label, when it ran (seconds since start) and how it ended."""

    label: str
    environment: str
    status: str
    start: float
    end: float
    title: str


def timeline(spans: Sequence[Span], *, end: float) -> Timeline:
    """A Gantt chart of the stages, one row each, in the order they ran."""
    right = WIDTH - RIGHT
    plot = (float(TIMELINE_LABEL_WIDTH), 0.0, float(right), float(ROW_HEIGHT * max(len(spans), 1)))
    scale = Scale(start=0.0, end=max(end, 1.0), low=0.0, high=1.0, plot=plot)
    bars = []
    for row, span in enumerate(spans):
        x0, x1 = scale.x(span.start), scale.x(span.end)
        bars.append(
            Bar(
                label=span.label,
                environment=span.environment,
                css=span.status,
                x=x0,
                y=row * ROW_HEIGHT,
                width=max(x1 - x0, 2.0),  # an instant still shows
                title=span.title,
            )
        )
    return Timeline(
        width=WIDTH,
        height=ROW_HEIGHT * max(len(spans), 1) + BOTTOM,
        label_width=TIMELINE_LABEL_WIDTH,
        row_height=ROW_HEIGHT,
        bars=tuple(bars),
        x_ticks=time_ticks(scale),
    )
