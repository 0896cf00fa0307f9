"""Profiles and the run context handed to every experiment.

A profile fixes how much work each experiment does. `full` is faithful to the lecture: every
network the lecture trained trains its 200,000 steps, 16 seeds, up to 64 where a check is
borderline. `quick` (CI) and `tiny` (end-to-end tests) run the same code scaled down: every run
length is scaled by `scale`, so their claims about trained networks are "not evaluated" by
design, and they exist to catch regressions, not to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import torch

from makemore.data import Splits, load_splits
from makemore.models import NOTEBOOK_SEED

T = TypeVar("T")

LECTURE_STEPS = 200_000  # the notebook trains both of its networks this long
LECTURE_DIAG_STEPS = 1_000  # the notebook reads the deep network's diagnostics after this many


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int  # members per condition to start with
    max_seeds: int  # the cap when a deciding check is borderline
    scale: float  # run lengths relative to the lecture's (1.0: 200,000 steps)
    samples: int  # examples or repetitions for sampling-based measurements

    def steps(self, lecture_steps: int) -> int:
        """A run length stated at the lecture's scale, scaled to this profile."""
        return max(1, round(lecture_steps * self.scale))


PROFILES = {
    "tiny": Profile("tiny", seeds=2, max_seeds=2, scale=0.001, samples=50),
    "quick": Profile("quick", seeds=4, max_seeds=8, scale=0.02, samples=200),
    "full": Profile("full", seeds=16, max_seeds=64, scale=1.0, samples=2_000),
}


@dataclass
class Context:
    """What an experiment may use: the profile, seeds, device, data, the run store, and a memo
    so that one process computes each shared intermediate once."""

    profile: Profile
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    n_seeds: int | None = None
    data_path: str | None = None
    allow_other_data: bool = False
    store: Any = None  # makemore.store.RunStore; None: train in memory, keep nothing
    progress: Callable[[int], None] | None = None  # told of finished seed-steps
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def seeds(self) -> list[int]:
        """Member i uses NOTEBOOK_SEED + i, so member 0 is the notebook's own run, and a larger
        seed count extends a smaller one."""
        return [NOTEBOOK_SEED + i for i in range(self.n_seeds or self.profile.seeds)]

    def with_seeds(self, n: int) -> Context:
        """The same context with n seeds (sharing the memo and the store)."""
        return Context(self.profile, self.device, n, self.data_path, self.allow_other_data,
                       self.store, self.progress, self._memo)

    def splits(self, block_size: int = 3) -> Splits:
        return load_splits(block_size, self.data_path, self.allow_other_data)

    @property
    def data_sha256(self) -> str:
        return self.splits().sha256

    def shared(self, key: Any, compute: Callable[[], T]) -> T:
        """Compute once per (key, seeds, device) in this process."""
        full_key = (key, self.profile.name, tuple(self.seeds), str(self.device))
        if full_key not in self._memo:
            self._memo[full_key] = compute()
        return self._memo[full_key]

    def describe(self) -> dict[str, Any]:
        return {"profile": asdict(self.profile), "seeds": self.seeds, "device": str(self.device)}
