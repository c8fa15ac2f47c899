"""The preview's score histogram as an SVG drawn on the server: for each bin of scores,
a bar for the live version and one for the candidate, side by side."""

from __future__ import annotations

from typing import Any

from scoring.evaluation import Bin

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 36


def histogram_chart(bins: list[Bin], *, live: str, candidate: str) -> dict[str, Any]:
    """Geometry for ``templates/studio/_histogram.html``; a bin's bars are as tall as
    its share of the tallest bin."""
    tallest = max((max(b.counts) for b in bins), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(bins), 1)
    bar_w = max(slot * 0.4, 1.0)
    bars, labels = [], []
    for i, found in enumerate(bins):
        x = LEFT + i * slot + slot * 0.1
        for j, (count, tone, name) in enumerate(
            zip(found.counts, ("live", "candidate"), (live, candidate), strict=True)
        ):
            height = plot_h * count / tallest
            bars.append(
                {
                    "x": round(x + j * bar_w, 1),
                    "y": round(TOP + plot_h - height, 1),
                    "width": round(bar_w, 1),
                    "height": round(height, 1),
                    "tone": tone,
                    "title": f"{name}: {count} lead{'s' if count != 1 else ''} "
                    f"scoring {found.low} to {found.high - 1}",
                }
            )
        labels.append({"x": round(LEFT + i * slot + slot / 2, 1), "text": str(found.low)})
    step = max(1, len(labels) // 8)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "plot_left": LEFT,
        "plot_right": WIDTH - RIGHT,
        "baseline": TOP + plot_h,
        "label_y": TOP + plot_h + 16,
        "tallest": tallest,
        "top": TOP,
        "bars": bars,
        "labels": labels[::step],
        "desc": "; ".join(
            f"{b.low} to {b.high - 1}: {b.counts[0]} live, {b.counts[1]} candidate" for b in bins
        ),
    }
