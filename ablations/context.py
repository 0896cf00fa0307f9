"""Profiles and the run context handed to every experiment.

A profile fixes how much work each experiment does: `quick` for CI (every claim, a few minutes
on 2 CPU cores), `full` faithful to the lecture (200,000 steps where it trained that long, at
least 16 seeds). Both run the same code; only these numbers differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import torch

from makemore.data import Splits, load_splits
from makemore.models import NOTEBOOK_SEED

T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int  # members per condition
    train_steps: int  # the lecture's long runs (200,000 in the notebook)
    decay_step: int  # lr 0.1 -> 0.01 here (100,000 in the notebook)
    diag_steps: int  # the lecture reads its diagnostics after this many steps (1,000)
    # Long runs of the deep network (47k parameters, about 6x the MLP's cost per step). The
    # lecture trains it 200,000 steps; on a 2-core CPU 16 seeds of that take about 11 minutes a
    # configuration, so the full profile trains it `deep_steps` and says so in every result.
    deep_steps: int
    sweep_points: int  # resolution of continuous sweeps (gains, scales, learning rates)
    samples: int  # examples or repetitions for sampling-based measurements

    def supports_long_training(self) -> bool:
        """Whether runs are long enough to judge claims about final losses."""
        return self.train_steps >= 100_000


PROFILES = {
    "quick": Profile(
        "quick",
        seeds=4,
        train_steps=4_000,
        decay_step=3_000,
        diag_steps=1_000,
        deep_steps=1_000,
        sweep_points=5,
        samples=200,
    ),
    "full": Profile(
        "full",
        seeds=16,
        train_steps=200_000,
        decay_step=100_000,
        diag_steps=1_000,
        deep_steps=10_000,
        sweep_points=13,
        samples=2_000,
    ),
}


@dataclass
class Context:
    """What an experiment may use: the profile, seeds, device, data, and a memo so that claims
    of one family share one expensive training run within a process."""

    profile: Profile
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    n_seeds: int | None = None
    data_path: str | None = None
    allow_other_data: bool = False
    progress: Callable[[int], None] | None = None  # told of finished training steps
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def seeds(self) -> list[int]:
        """Member i uses NOTEBOOK_SEED + i, so member 0 is the notebook's own run."""
        return [NOTEBOOK_SEED + i for i in range(self.n_seeds or self.profile.seeds)]

    def splits(self, block_size: int = 3) -> Splits:
        return load_splits(block_size, self.data_path, self.allow_other_data)

    @property
    def data_sha256(self) -> str:
        return self.splits().sha256

    def shared(self, key: Any, compute: Callable[[], T]) -> T:
        """Compute once per (key, profile, seeds, device) in this process."""
        full_key = (key, self.profile.name, tuple(self.seeds), str(self.device))
        if full_key not in self._memo:
            self._memo[full_key] = compute()
        return self._memo[full_key]

    def describe(self) -> dict[str, Any]:
        return {"profile": asdict(self.profile), "seeds": self.seeds, "device": str(self.device)}
