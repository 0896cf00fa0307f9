"""Figures: one theme and one way to show uncertainty.

Every interval drawn is the 95% percentile bootstrap CI of the mean over seeds, computed by the
same function as the metrics' intervals (makemore.stats.mean_ci), so the figure, the table and
the text show one statistic. `caption` says so under each figure, with n. Palettes are sized to
the number of series, so no colour repeats within a figure; the source's value is a labelled
reference line; step axes use thousands separators.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from makemore.stats import mean_ci  # noqa: E402

CI_TEXT = "mean over seeds; bars and bands: 95% bootstrap CI"


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    return Figure(figsize=(width, height), layout="constrained")


def ci(values: Sequence[float]) -> tuple[float, float]:
    """The errorbar seaborn draws: the metrics' own bootstrap interval."""
    estimate = mean_ci(np.asarray(values, dtype=float))
    return estimate.ci_low, estimate.ci_high


def palette(n: int) -> list:
    """n distinct colours: the colour-blind-safe set up to 10, evenly spaced hues beyond."""
    return sns.color_palette("colorblind", n) if n <= 10 else sns.color_palette("husl", n)


def _hue_palette(frame: pd.DataFrame, hue: str | None) -> dict | None:
    if hue is None:
        return None
    levels = list(dict.fromkeys(frame[hue]))
    return dict(zip(levels, palette(len(levels)), strict=True))


def points(ax: Axes, frame: pd.DataFrame, x: str, y: str, hue: str | None = None,
           seeds: bool = True) -> None:
    """Categories on x: the mean with its CI per category (and hue), with every seed's value
    as a faint dot when `seeds`."""
    colours = _hue_palette(frame, hue)
    if seeds:
        sns.stripplot(frame, x=x, y=y, hue=hue, ax=ax, palette=colours, alpha=0.35, size=3,
                      jitter=0.15, dodge=hue is not None, legend=False,
                      color=None if hue else "0.4")
    sns.pointplot(frame, x=x, y=y, hue=hue, ax=ax, palette=colours, errorbar=ci,
                  linestyle="none", dodge=0.4 if hue else False, markersize=5,
                  color=None if hue else "C0")


def lines(ax: Axes, frame: pd.DataFrame, x: str, y: str, hue: str | None = None,
          style: str | None = None, markers: bool = True) -> None:
    """A quantity along a numeric x (a sweep, layers, steps): the mean with its CI band."""
    sns.lineplot(frame, x=x, y=y, hue=hue, style=style, ax=ax, palette=_hue_palette(frame, hue),
                 errorbar=ci, marker="o" if markers else None, markersize=4,
                 color=None if hue else "C0")


def reference(ax: Axes, value: float, label: str = "source", axis: str = "y") -> None:
    """A labelled dashed line at the source's value (horizontal for axis="y")."""
    draw = ax.axhline if axis == "y" else ax.axvline
    draw(value, color="0.15", linestyle="--", linewidth=1.1, label=f"{label}: {value:g}")


def steps_axis(ax: Axes, axis: str = "x") -> None:
    """Training steps with thousands shown as 'k' (50k, 100k), so labels never run together."""
    def fmt(value: float, _: int) -> str:
        return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(FuncFormatter(fmt))


def caption(fig: Figure, n: int, extra: str = "") -> None:
    """The one uncertainty convention, with n, under the figure (or that there is no spread to
    show)."""
    text = (f"{CI_TEXT} (n = {n} seeds)" if n > 1 else "one deterministic computation: no seeds")
    text += f". {extra}" if extra else ""
    fig.supxlabel(text, fontsize=7.5, color="0.3")


def legend(ax: Axes, **options: object) -> None:
    """One entry per label (seaborn may repeat a label), small, never over the data when it can
    go outside."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=7, **options)  # type: ignore[arg-type]
