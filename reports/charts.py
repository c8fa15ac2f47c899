"""Server-rendered SVG charts: the geometry is worked out here, the markup in
``templates/reports/chart_*.html``. Every chart carries a title and a description
that reads its values out, beside the table it draws."""

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
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    plot_left: float = 0
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
    *, slug: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> Chart:
    """One line per series over the labels (months), on a shared scale from zero."""
    left, right, top, bottom, height = 48, 36, 16, 40, 240
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    biggest = max((v for _, values in series for v in values), default=0) or 1
    step = plot_w / max(len(labels) - 1, 1)

    def point(i: int, value: float) -> tuple[float, float]:
        return left + i * step, top + plot_h - value / biggest * plot_h

    drawn = []
    for n, (name, values) in enumerate(series):
        coords = [point(i, v) for i, v in enumerate(values)]
        drawn.append(
            Series(
                name=name,
                points=" ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
                dots=[
                    (x, y, f"{name} {labels[i]}: {values[i]:g}") for i, (x, y) in enumerate(coords)
                ],
                tone=TONES[n % len(TONES)],
            )
        )
    every = max(1, len(labels) // 8)
    x_labels = [(left + i * step, label) for i, label in enumerate(labels) if i % every == 0]
    y_ticks = [(top + plot_h - f * plot_h, f"{biggest * f:g}") for f in (0, 0.5, 1)]
    desc = " ".join(
        f"{name}: "
        + ", ".join(f"{label} {v:g}" for label, v in zip(labels, values, strict=True))
        + "."
        for name, values in series
    )
    return Chart(
        kind="line",
        slug=slug,
        title=title,
        desc=desc if labels else "No data.",
        height=height,
        series=drawn,
        x_labels=x_labels,
        y_ticks=y_ticks,
        plot_left=left,
        plot_bottom=top + plot_h,
        empty=not labels,
    )
