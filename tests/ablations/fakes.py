"""Fake claims for testing the framework: trivial measure and figure, one declared check, a call
counter, and switches that make one stage fail or stall. They are built per test and never
registered in the global REGISTRY (except inside the subprocess of `cli_with_fakes`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.artist
import pandas as pd
from matplotlib.figure import Figure

from ablations.checks import Above
from ablations.context import Context
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures
from ablations.verdicts import Rules

STAGES = ("measure", "figure", "write")


@dataclass
class Fake:
    """What a fake claim measures and where it fails. `values` default to one per seed;
    `fail_in="write"` makes the figure raise while it is saved, i.e. after the claim computed;
    `started` is touched when measure begins, then it sleeps."""

    values: tuple[float, ...] | None = None
    extra: dict[str, Metric] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)
    bound: float = -1e9  # the check: value above this
    fail_in: str = ""
    sleep: float = 0.0
    started: Path | None = None
    calls: int = 0


class ExplodingArtist(matplotlib.artist.Artist):
    def draw(self, renderer) -> None:  # noqa: ANN001 - matplotlib's signature
        raise ValueError("the figure failed to render (on purpose)")


def seed_values(ctx: Context) -> list[float]:
    """A deterministic value per seed (the seeds are consecutive, so these differ)."""
    return [float(seed % 7) for seed in ctx.seeds]


def fake_claim(claim_id: str, fake: Fake | None = None) -> Claim:
    knobs = fake if fake is not None else Fake()

    def fail(stage: str) -> None:
        if knobs.fail_in == stage:
            raise ValueError(f"{claim_id}: {stage} failed (on purpose)")

    units = {"value": "nats", "count": "", **{k: m.unit for k, m in knobs.extra.items()}}

    @measures(**units)
    def measure(ctx: Context) -> Measurement:
        knobs.calls += 1
        if knobs.started is not None:
            Path(knobs.started).touch()
        if knobs.sleep:
            time.sleep(knobs.sleep)
        fail("measure")
        values = list(knobs.values) if knobs.values is not None else seed_values(ctx)
        table = pd.DataFrame({"sample": range(len(values)), "value": values})
        metrics = {"value": Metric.of(values, "nats"), "count": Metric.exact(len(values))}
        return Measurement(table, {**metrics, **knobs.extra}, dict(knobs.predictions))

    def figure(measurement: Measurement, fig: Figure) -> None:
        fail("figure")
        ax = fig.add_subplot()
        ax.plot(measurement.table["sample"], measurement.table["value"], "o")
        ax.set(title=claim_id, xlabel="sample", ylabel="value (nats)")
        if knobs.fail_in == "write":
            fig.add_artist(ExplodingArtist())

    return Claim(
        id=claim_id,
        statement=f"The fake statement of {claim_id}",
        source=Source("L", "22-23"),
        measure=measure,
        figure=figure,
        headline="value",
        finding="The value is {value}.",
        rules=Rules(reproduced=(Above("value", knobs.bound),)),
    )
