"""misc.no-grad: the lecture's whole-split evaluation (L:13-15), and what it costs with and
without autograd: the bytes the graph saves, the peak of allocated bytes, the time."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from makemore.models import MLPConfig

Data = tuple[torch.Tensor, torch.Tensor]


def split_loss(params: list[torch.Tensor], data: Data) -> torch.Tensor:
    """The lecture's evaluation of a whole split (L:13-15) as its code writes it: plain tensors,
    each step a local of the function (alive until it returns), the loss returned."""
    C, W1, b1, W2, b2 = params
    x, y = data
    emb = C[x]
    embcat = emb.view(emb.shape[0], -1)
    h = torch.tanh(embcat @ W1 + b1)
    logits = h @ W2 + b2
    loss = F.cross_entropy(logits, y)
    return loss


def predicted_graph_bytes(config: MLPConfig, examples: int) -> int:
    """What autograd must keep for the backward pass of split_loss, from the shapes: per example
    the float32 embeddings (input of W1), tanh outputs (tanh's and W2's input) and log-softmax
    (cross-entropy's); and one float32 scalar, cross-entropy's total weight."""
    per_example = 4 * (config.n_embd * config.block_size + config.n_hidden + config.vocab_size)
    return per_example * examples + 4


def graph_bytes(params: list[torch.Tensor], data: Data, grad: bool) -> int:
    """Bytes of the tensors autograd saves for backward that nothing else holds (the
    parameters and the data are held anyway), each storage once."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.set_grad_enabled(grad), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        split_loss(params, data)
    held = {t.untyped_storage().data_ptr() for t in (*params, *data)}
    return sum(n for ptr, n in saved.items() if ptr not in held)


def peak_bytes(params: list[torch.Tensor], data: Data, grad: bool) -> int:
    """The most bytes allocated at once during the evaluation, from the profiler's allocation
    and free events in time order."""
    with torch.set_grad_enabled(grad), profile(activities=[ProfilerActivity.CPU],
                                               profile_memory=True) as prof:
        split_loss(params, data)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def seconds(params: list[torch.Tensor], data: Data, grad: bool) -> float:
    start = time.perf_counter()
    with torch.set_grad_enabled(grad):
        split_loss(params, data)
    return time.perf_counter() - start


