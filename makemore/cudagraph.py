"""The fast step on CUDA, replayed from a CUDA graph: one launch per step instead of one per
kernel, so that small ensembles are not bound by kernel launches.

The graph reads the batch indices from a static buffer, into which each step copies the indices
drawn on the host from the members' CPU generators, as on the CPU; it writes the losses into a
static row that each step copies out. A learning rate given as one number is baked into the
fused SGD update, so each distinct rate (two, with the decay) gets its own graph; a per-member
rate is a static tensor. Adam's bias corrections change every step as Python numbers, so with
Adam the graph holds forward and backward and train._Adam runs after it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from makemore.fast import FastStep

if TYPE_CHECKING:
    from makemore.train import _Adam

Tensor = torch.Tensor


class GraphedStep(FastStep):
    """A FastStep whose `run` is captured once per learning rate and replayed."""

    def __init__(self, step: FastStep):
        self.__dict__.update(step.__dict__)
        members, batch = self.loss.shape[:2]
        device = self.loss.logp.device
        self.static_ix = torch.empty(members, batch, dtype=torch.long, device=device)
        self.static_lr = torch.empty(members, device=device)
        self.static_losses = torch.empty(members, device=device)
        # one graph per (scalar lr or None, SGD in the graph); None: capture failed, run eagerly
        self.graphs: dict[tuple[float | None, bool], torch.cuda.CUDAGraph | None] = {}

    @torch.no_grad()
    def __call__(self, data: tuple[Tensor, Tensor], ix: Tensor, lr: float | Tensor,
                 losses: Tensor, adam: _Adam | None = None) -> None:
        self.static_ix.copy_(ix)
        key = (None if isinstance(lr, Tensor) else float(lr), adam is None)
        if isinstance(lr, Tensor):
            self.static_lr.copy_(lr)
        if key not in self.graphs:
            self.graphs[key] = self._capture(data, key)
        graph = self.graphs[key]
        if graph is None:
            self.run(data, self.static_ix, self.static_lr if key[0] is None else key[0],
                     self.static_losses, key[1])
        else:
            graph.replay()
        losses.copy_(self.static_losses)
        if adam is not None:
            self.adam_step(adam, lr)

    def _capture(self, data: tuple[Tensor, Tensor],
                 key: tuple[float | None, bool]) -> torch.cuda.CUDAGraph | None:
        """Warm up on a side stream (as CUDA graphs require), undo the warm-up's training,
        then capture."""
        scalar, sgd = key
        lr: float | Tensor = self.static_lr if scalar is None else scalar
        state = self.model.parameters() + self.model.buffers()
        saved = [t.detach().clone() for t in state]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.run(data, self.static_ix, lr, self.static_losses, sgd)
        torch.cuda.current_stream().wait_stream(side)
        for tensor, value in zip(state, saved, strict=True):
            tensor.detach().copy_(value)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.run(data, self.static_ix, lr, self.static_losses, sgd)
        except RuntimeError as error:  # a kernel that cannot be captured: run eagerly
            warnings.warn(f"CUDA graph capture failed, the step runs uncaptured: {error}",
                          stacklevel=2)
            return None
        return graph
