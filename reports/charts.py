"""Server-rendered SVG charts: the geometry is worked out here, the markup in
``templates/reports/chart_svg.html``. Every chart carries a title and a description
that reads its values out, beside the table it draws.

The report pages draw bars, funnels and lines; the workspace's lead page draws its
score over time with the same line chart (the edges may import reports, see
docs/ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 640
LABEL_WIDTH = 170
VALUE_WIDTH = 150
ROW_HEIGHT = 26
TONES = ("tone-1", "tone-2", "tone-3", "tone-4", "tone-5")


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    x: float
    y: float
    width: float
    height: float
    tone: str = "tone-1"

    @property
    def text_y(self) -> float:
        return self.y + self.height / 2 + 4

    @property
    def value_x(self) -> float:
        return self.x + self.width + 6

    @property
    def label_x(self) -> float:
        return self.x - 8


@dataclass(frozen=True)
class Series:
    name: str
    points: str
    dots: list[tuple[float, float, str]]
    tone: str


@dataclass(frozen=True)
class Guide:
    """A horizontal line across a line chart at a value of note (a threshold), labelled
    at its right end."""

    y: float
    label: str
    tone: str


@dataclass(frozen=True)
class Tick:
    """A label on the x axis of a line chart."""

    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Frame:
    """A line chart's size and the margins around its plot."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int


# The reports' line charts: room on the left for the scale and below for the months.
REPORT_FRAME = Frame(width=WIDTH, height=240, left=48, right=36, top=16, bottom=40)


@dataclass
class Chart:
    kind: str  # bar, line, funnel
    slug: str
    title: str
    desc: str
    width: int = WIDTH
    height: int = 200
    bars: list[Bar] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    x_labels: list[Tick] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    guides: list[Guide] = field(default_factory=list)
    plot_left: float = 0
    plot_right: float = 0
    plot_bottom: float = 0
    empty: bool = False

    @property
    def title_id(self) -> str:
        return f"chart-{self.slug}-title"

    @property
    def desc_id(self) -> str:
        return f"chart-{self.slug}-desc"


def _describe(labels: Sequence[str], texts: Sequence[str]) -> str:
    return "; ".join(f"{label}: {text}" for label, text in zip(labels, texts, strict=True)) + "."


def bar_chart(
    *,
    slug: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    texts: Sequence[str],
    tones: Sequence[str] | None = None,
) -> Chart:
    """Horizontal bars, one per label, as long as their value over the largest one."""
    biggest = max((abs(v) for v in values if v is not None), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = [
        Bar(
            label=label,
            value_text=text,
            x=LABEL_WIDTH,
            y=10 + i * ROW_HEIGHT,
            width=max(0.0, abs(value or 0) / biggest * span),
            height=ROW_HEIGHT - 8,
            tone=(tones[i] if tones else "tone-1"),
        )
        for i, (label, value, text) in enumerate(zip(labels, values, texts, strict=True))
    ]
    return Chart(
        kind="bar",
        slug=slug,
        title=title,
        desc=_describe(labels, texts) if labels else "No data.",
        height=20 + len(bars) * ROW_HEIGHT,
        bars=bars,
        empty=not any(v for v in values),
    )


def funnel_chart(
    *, slug: str, title: str, labels: Sequence[str], counts: Sequence[int], texts: Sequence[str]
) -> Chart:
    """Centred bars narrowing step by step, each as wide as its count over the first;
    the step's name on the left, its figures on the right."""
    top = max(counts, default=0) or 1
    left, span = 100, 340
    bars = []
    for i, (label, count, text) in enumerate(zip(labels, counts, texts, strict=True)):
        width = max(2.0, count / top * span)
        bars.append(
            Bar(
                label=label,
                value_text=text,
                x=left + (span - width) / 2,
                y=10 + i * 40,
                width=width,
                height=32,
                tone=TONES[i % len(TONES)],
            )
        )
    return Chart(
        kind="funnel",
        slug=slug,
        title=title,
        desc=_describe(labels, texts) if labels else "No data.",
        height=20 + len(bars) * 40,
        bars=bars,
        empty=not any(counts),
    )


def line_chart(
    *,
    slug: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    frame: Frame = REPORT_FRAME,
    ceiling: float = 0,
    guides: Sequence[tuple[float, str, str]] = (),
    desc: str | None = None,
    ends: tuple[str, str] | None = None,
    y_ticks: bool = True,
    dots: bool = True,
) -> Chart:
    """One line per series over the labels, on a scale shared by the series from zero
    (or the lowest value, when below zero) up to the highest value or ``ceiling``.

    ``guides`` are (value, label, tone) lines across the plot, such as a model's
    thresholds. The x axis names every label (every nth, past eight) or, with ``ends``,
    only its first and last ends; without ``y_ticks`` the plot has a baseline instead
    of a scale. ``desc``, the text alternative, reads every value out by default.
    """
    values = [v for _, line in series for v in line]
    low = min(0, *values) if values else 0
    high = max(ceiling, *values) if values else ceiling
    if high <= low:
        high = low + 1
    plot_w = frame.width - frame.left - frame.right
    plot_h = frame.height - frame.top - frame.bottom
    step = plot_w / max(len(labels) - 1, 1)
    bottom = frame.top + plot_h

    def y_of(value: float) -> float:
        return frame.top + plot_h * (high - value) / (high - low)

    drawn = []
    for n, (name, line) in enumerate(series):
        coords = [(frame.left + i * step, y_of(v)) for i, v in enumerate(line)]
        drawn.append(
            Series(
                name=name,
                points=" ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
                dots=[(x, y, f"{name} {labels[i]}: {line[i]:g}") for i, (x, y) in enumerate(coords)]
                if dots
                else [],
                tone=TONES[n % len(TONES)],
            )
        )
    return Chart(
        kind="line",
        slug=slug,
        title=title,
        desc=desc or (_describe_lines(labels, series) if labels else "No data."),
        width=frame.width,
        height=frame.height,
        series=drawn,
        x_labels=_x_labels(labels, frame, step, bottom, ends),
        y_ticks=[(y_of(low + (high - low) * f), f"{low + (high - low) * f:g}") for f in (0, 0.5, 1)]
        if y_ticks
        else [],
        guides=[Guide(round(y_of(value), 1), label, tone) for value, label, tone in guides],
        plot_left=frame.left,
        plot_right=frame.width - frame.right,
        plot_bottom=bottom,
        empty=not labels,
    )


def _describe_lines(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> str:
    return " ".join(
        f"{name}: "
        + ", ".join(f"{label} {v:g}" for label, v in zip(labels, values, strict=True))
        + "."
        for name, values in series
    )


def _x_labels(
    labels: Sequence[str], frame: Frame, step: float, bottom: float, ends: tuple[str, str] | None
) -> list[Tick]:
    """The x axis's labels, under the plot: its two ends, or every label (every nth past
    eight) centred on its point."""
    y = bottom + 18
    if ends is not None:
        first, last = ends
        return [
            Tick(frame.left, y, first, "start"),
            Tick(frame.width - frame.right, y, last, "end"),
        ]
    every = max(1, len(labels) // 8)
    return [
        Tick(frame.left + i * step, y, label) for i, label in enumerate(labels) if i % every == 0
    ]
