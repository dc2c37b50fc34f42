"""Figures as inline SVG strings, drawn with matplotlib (imported only when a report is made).

Text stays text (`svg.fonttype = none`) so the reader's system fonts are used and nothing is
fetched; ids are salted with a constant so the same data give the same bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import ArrayLike

PALETTE = ("#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6c4f9c", "#00798c", "#8c564b", "#7f7f7f")


@dataclass(frozen=True)
class Curve:
    """A step function to draw: `y[i]` holds from `x[i]` until `x[i+1]`; optional CI band."""

    label: str
    x: ArrayLike
    y: ArrayLike
    lower: ArrayLike | None = None
    upper: ArrayLike | None = None
    colour: int | None = None  # palette index; by default the curve's position
    dashed: bool = False


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({
        "svg.fonttype": "none",
        "svg.hashsalt": "trials",
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
    import matplotlib.pyplot as plt

    return plt


def to_svg(figure: Any, title: str) -> str:
    """Serialise a figure to an inline <svg> with a <title> for screen readers."""
    plt = _pyplot()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "trials"})
    plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<svg ", '<svg role="img" class="figure" ', svg, count=1)
    from html import escape

    return svg.replace(">", f"><title>{escape(title)}</title>", 1)


def step_curves(curves: Sequence[Curve], *, title: str, xlabel: str, ylabel: str, xmax: float,
                percent: bool = True, ymax: float = 1.0) -> str:
    """Step curves with shaded CI bands (KM share self-sufficient, cumulative incidence)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.4))
    for i, curve in enumerate(curves):
        colour = PALETTE[(i if curve.colour is None else curve.colour) % len(PALETTE)]
        axes.step(curve.x, curve.y, where="post", color=colour, label=curve.label, linewidth=1.6,
                  linestyle="--" if curve.dashed else "-")
        if curve.lower is not None and curve.upper is not None:
            axes.fill_between(curve.x, curve.lower, curve.upper, step="post", color=colour, alpha=0.18, linewidth=0)
    axes.set_xlim(0, xmax)
    axes.set_ylim(0, ymax)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if percent:
        axes.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f} %")
    axes.grid(alpha=0.3)
    axes.legend(frameon=False, loc="upper left")
    return to_svg(figure, title)


@dataclass(frozen=True)
class ForestRow:
    label: str
    estimate: float | None
    lower: float | None
    upper: float | None


def forest(rows: Sequence[ForestRow], *, title: str, xlabel: str, reference: float = 1.0) -> str:
    """A forest plot of hazard ratios on a log axis, one row per subgroup."""
    plt = _pyplot()
    height = 0.9 + 0.32 * max(len(rows), 1)
    figure, axes = plt.subplots(figsize=(6.4, height))
    shown = [(i, r) for i, r in enumerate(rows) if r.estimate and r.lower and r.upper]
    for i, row in shown:
        y = len(rows) - i
        axes.plot([row.lower, row.upper], [y, y], color=PALETTE[0], linewidth=1.4)
        axes.plot([row.estimate], [y], marker="s", color=PALETTE[0], markersize=5)
    axes.axvline(reference, color="#555555", linewidth=0.8, linestyle="--")
    axes.set_yticks([len(rows) - i for i in range(len(rows))], [r.label for r in rows])
    axes.set_xscale("log")
    values = [v for _, r in shown for v in (r.lower, r.upper) if v]
    if values:
        low, high = min(min(values), reference), max(max(values), reference)
        axes.set_xlim(low / 1.15, high * 1.15)
    axes.set_ylim(0.4, len(rows) + 0.6)
    axes.set_xlabel(xlabel)
    axes.xaxis.set_major_formatter(lambda v, _pos: f"{v:g}")
    axes.xaxis.set_minor_formatter(lambda v, _pos: "")
    axes.grid(alpha=0.3, axis="x")
    return to_svg(figure, title)


@dataclass(frozen=True)
class Span:
    label: str
    start: float
    end: float
    marks: Sequence[tuple[float, str]] = ()


def timeline(spans: Sequence[Span], *, title: str, xlabel: str, tick_labels: dict[float, str]) -> str:
    """Horizontal bars (e.g. trials from first enrollment to their last follow-up) with marks."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.2, 0.9 + 0.4 * max(len(spans), 1)))
    for i, span in enumerate(spans):
        y = len(spans) - i
        axes.barh(y, span.end - span.start, left=span.start, height=0.5, color=PALETTE[i % len(PALETTE)], alpha=0.8)
        for x, mark in span.marks:
            axes.plot([x], [y], marker="|", color="#222222", markersize=12)
            axes.annotate(mark, (x, y + 0.3), fontsize=7, ha="center")
    axes.set_yticks([len(spans) - i for i in range(len(spans))], [s.label for s in spans])
    if tick_labels:
        axes.set_xticks(list(tick_labels), list(tick_labels.values()))
    axes.set_xlabel(xlabel)
    axes.grid(alpha=0.3, axis="x")
    return to_svg(figure, title)
