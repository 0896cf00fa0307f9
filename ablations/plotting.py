"""One theme for every figure: seaborn's colour-blind-safe palette, titles, labelled axes, and
the source's value as a dashed reference line."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PALETTE = "colorblind"


def apply_theme() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    apply_theme()
    return Figure(figsize=(width, height), layout="constrained")


def reference(ax: Axes, value: float, label: str = "source", axis: str = "y") -> None:
    """A dashed line at the source's value (horizontal for axis="y")."""
    draw = ax.axhline if axis == "y" else ax.axvline
    draw(value, color="0.2", linestyle="--", linewidth=1.2, label=f"{label}: {value:g}")
