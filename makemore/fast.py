"""The training step without autograd, for the lecture's layer types.

Forward and backward are written out per layer, as the lecture derives them by hand, into
buffers allocated once per run; the optimiser updates the parameters in place. Each backward
calls the kernels that autograd calls for that layer, on the same operands and adding the
contributions to a gradient in the order autograd's engine adds them, so a step here is
bit-identical to the autograd step of makemore.train on the CPU (tests/makemore/test_fast.py),
and it inherits that step's member independence. What it saves is everything around those
kernels: the graph, a Python call and allocation per operation, the per-parameter update loop.

Two reformulations change no bit and are checked where they are used, since they depend on how
the BLAS sums (`_one_pass`):
- SGD with one learning rate folds the update of a weight into the matmul of its gradient,
  W.baddbmm_(x^T, g, alpha=-lr): one rounding of -lr * (x^T g), then one of the sum, as
  `p += -lr * grad`; it does so where the BLAS sums all k products of an entry in one pass;
- the embedding's gradient is a batched one-hot matmul, which adds each row's contributions in
  index order as embedding_dense_backward does, again where the sum is one pass.
Numbers enter the kernels as 0-dim float32 tensors (`_number`), the float32 value a Python
number becomes, without a conversion per call. torch.compile is not used: measured on the
MLP's bias + tanh at E = 64 on the CPU, it was no faster and not bit-identical.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from makemore.modules import (
    ELU,
    BatchNorm1d,
    Embedding,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Tanh,
    per_member,
)

if TYPE_CHECKING:
    from makemore.train import _Adam

aten = torch.ops.aten
Tensor = torch.Tensor


@functools.cache
def _one_pass(device: str, threads: int, members: int, m: int, k: int, n: int,
              transposed: bool) -> bool:
    """Whether w.baddbmm_(a, b, alpha=s) equals w + s * (a @ b) bitwise for `members` (m, k) @
    (k, n) products, `a` the transpose of a contiguous (k, m) matrix or contiguous itself: true
    where the BLAS sums the k products of each entry in one pass and rounds s * sum before
    adding w. MKL does so for k <= 384 in batches, but splits longer sums, and a single
    matrix-vector product (one member, n = 1) fuses s * sum + w into one rounding. The probe
    makes w cancel s * (a @ b) to 1e-3, so that either shows in nearly every entry."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(members, *((k, m) if transposed else (m, k)), generator=g)
    a = (a.transpose(1, 2) if transposed else a).to(device)
    b = torch.randn(members, k, n, generator=g).to(device)
    product = torch.bmm(a, b)
    w = (0.1 * product) * (1 + 1e-3 * torch.randn(members, m, n, generator=g).to(device))
    return torch.equal(w.clone().baddbmm_(a, b, alpha=-0.1), w + (-0.1 * product))


@functools.cache
def _onehot_sums_in_order(device: str, threads: int, members: int, rows: int, k: int,
                          dim: int) -> bool:
    """Whether a one-hot (rows, k) @ (k, dim) matmul equals embedding_dense_backward, which
    adds each row's contributions in index order (the probe argument of _one_pass). Two probes
    must both agree. In the first, a row's first contribution is 1 and its later ones 2**-24:
    added in index order each later one rounds away (a tie, to even), while any other order or
    grouping adds two of them first, or one before the 1, and ends above 1. The second uses
    N(0, 1) terms over all rows, so a kernel that treats rows differently shows too. (Terms of
    widely spread magnitudes would not do: the largest absorbs the rest in any order.)"""
    g = torch.Generator().manual_seed(0)
    position = torch.arange(k).expand(members, k)
    index = torch.randint(0, min(rows, max(1, k // 8)), (members, k), generator=g)
    first = torch.full((members, rows), k).scatter_reduce_(1, index, position, "amin")
    ties = torch.where(position == first.gather(1, index), 1.0, 2.0 ** -24)
    column = 2.0 ** (torch.arange(dim) % 5)  # exact scalings: every column keeps the ties
    probes = [(index, ties.unsqueeze(2) * column),
              (torch.randint(0, rows, (members, k), generator=g),
               torch.randn(members, k, dim, generator=g))]
    offsets = torch.arange(members).unsqueeze(1) * rows
    for index, grad in probes:
        onehot = torch.zeros(members, rows, k).scatter_(1, index.unsqueeze(1), 1.0)
        dense = aten.embedding_dense_backward(grad.to(device), (index + offsets).to(device),
                                              members * rows, -1, False)
        if not torch.equal(torch.bmm(onehot.to(device), grad.to(device)),
                           dense.view(members, rows, dim)):
            return False
    return True


def _number(value: float | Tensor) -> Tensor:
    """A Python number as a 0-dim float32 CPU tensor, which an op uses as the same float32
    scalar (on CUDA too) without converting a float64 one on every call; a tensor is kept."""
    if isinstance(value, Tensor):
        return value
    return torch.tensor(float(value), dtype=torch.float32)


def _mean(x: Tensor, count: Tensor, out: Tensor) -> Tensor:
    """x.mean(1, keepdim=True) as ATen computes it on the CPU: the sum, divided by the count."""
    return torch.sum(x, 1, keepdim=True, out=out).div_(count)


class Update:
    """How parameters change after a backward: `lr` for fused SGD (None: gradients only), and
    the (parameter, gradient buffer) pairs that the optimiser updates afterwards."""

    def __init__(self, fused: bool):
        self.fused = fused
        self.lr: float | None = None
        self.pairs: list[tuple[Tensor, Tensor]] = []

    def gradient(self, param: Tensor) -> Tensor:
        grad = torch.empty_like(param)
        self.pairs.append((param, grad))
        return grad


class _Layer:
    """One layer of the plan. forward(x) keeps what backward needs; backward(dy) returns the
    gradient of the input, or None for the first layer."""

    module: Module
    out: Tensor

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, dy: Tensor) -> Tensor | None:
        raise NotImplementedError

    def keep_outputs(self) -> None:
        """Leave the last forward's output in `.out`, as a forward of the module does."""
        self.module.out = self.out


class _Embedding(_Layer):
    """Embedding + Flatten: rows of each member's table C gathered by index; the gradient of C
    is onehot @ dy, summed in index order."""

    def __init__(self, embedding: Embedding, flatten: Flatten, batch: int, block: int,
                 update: Update):
        self.module, self.flatten = embedding, flatten
        weight = embedding.weight
        members, rows, dim = weight.shape
        device = weight.device
        self.shape = (members, batch, block, dim)
        self.table = weight.view(members * rows, dim)
        self.offsets = torch.arange(members, device=device).view(members, 1, 1) * rows
        self.rows = torch.empty(members, batch, block, dtype=torch.long, device=device)
        self.out = torch.empty(members, batch, block * dim, device=device)
        self.local = self.rows  # set by forward
        probe = (device.type, torch.get_num_threads(), members)
        k = batch * block
        self.onehot: Tensor | None = None
        # on CUDA always: deterministic, and the dense backward's sort can stall a CUDA graph
        if device.type == "cuda" or _onehot_sums_in_order(*probe, rows, k, dim):
            self.onehot = torch.zeros(members, rows, k, device=device)
        self.weight = weight
        self.fused = (update.fused and self.onehot is not None
                      and _one_pass(*probe, rows, k, dim, False))
        self.grad = None if self.fused else update.gradient(weight)
        self.update = update

    def forward(self, x: Tensor) -> Tensor:
        self.local = x
        torch.add(x, self.offsets, out=self.rows)
        torch.index_select(self.table, 0, self.rows.view(-1), out=self.out.view(-1, self.shape[3]))
        return self.out

    def backward(self, dy: Tensor) -> None:
        members, batch, block, dim = self.shape
        dy = dy.view(members, batch * block, dim)
        if self.onehot is None:
            assert self.grad is not None
            aten.embedding_dense_backward.out(dy, self.rows, self.table.shape[0], -1, False,
                                              out=self.grad.view(self.table.shape))
            return None
        where = self.local.view(members, 1, batch * block)
        self.onehot.scatter_(1, where, 1.0)
        if self.fused:
            assert self.update.lr is not None
            self.weight.baddbmm_(self.onehot, dy, alpha=-self.update.lr)
        else:
            assert self.grad is not None
            torch.bmm(self.onehot, dy, out=self.grad)
        self.onehot.scatter_(1, where, 0.0)
        return None

    def keep_outputs(self) -> None:
        self.module.out = self.out.view(self.shape)
        self.flatten.out = self.out


class _Linear(_Layer):
    """y = x @ W + b. dx = dy @ W^T (before W changes), dW = x^T @ dy, db = sum of dy over the
    batch, as autograd's baddbmm/bmm backward computes them."""

    def __init__(self, linear: Linear, x_shape: tuple[int, int, int], update: Update):
        self.module = linear
        members, batch, fan_in = x_shape
        self.weight, self.bias = linear.weight, linear.bias
        device = self.weight.device
        fan_out = self.weight.shape[2]
        self.out = torch.empty(members, batch, fan_out, device=device)
        self.dx = torch.empty(x_shape, device=device)
        self.x = self.dx  # set by forward
        self.fused = update.fused and _one_pass(
            device.type, torch.get_num_threads(), members, fan_in, batch, fan_out, True)
        self.weight_grad = None if self.fused else update.gradient(self.weight)
        self.bias_grad = None if self.bias is None else update.gradient(self.bias)
        self.update = update
        self.weight_t = self.weight.transpose(1, 2)
        self.bias_row = None if self.bias is None else self.bias.unsqueeze(1)

    def forward(self, x: Tensor) -> Tensor:
        self.x = x
        if self.bias_row is None:
            torch.bmm(x, self.weight, out=self.out)
        else:
            torch.baddbmm(self.bias_row, x, self.weight, out=self.out)
        return self.out

    def backward(self, dy: Tensor) -> Tensor:
        torch.bmm(dy, self.weight_t, out=self.dx)
        x_t = self.x.transpose(1, 2)
        if self.fused:
            assert self.update.lr is not None
            self.weight.baddbmm_(x_t, dy, alpha=-self.update.lr)
        else:
            torch.bmm(x_t, dy, out=self.weight_grad)
        if self.bias_grad is not None:
            torch.sum(dy, 1, out=self.bias_grad)
        return self.dx


Pointwise = Callable[..., Tensor]


def _activation_kernels(module: Module) -> tuple[Pointwise, Pointwise]:
    """(forward(x, out=y), backward(dy, x, y, out=dx)) with the kernels of the module's forward
    and of autograd's derivative for it."""
    if isinstance(module, Tanh):
        return (lambda x, y: torch.tanh(x, out=y),
                lambda dy, x, y, dx: aten.tanh_backward.grad_input(dy, y, grad_input=dx))
    if isinstance(module, Sigmoid):
        return (lambda x, y: torch.sigmoid(x, out=y),
                lambda dy, x, y, dx: aten.sigmoid_backward.grad_input(dy, y, grad_input=dx))
    if isinstance(module, ReLU):  # torch.relu is clamp_min(x, 0)
        return (lambda x, y: torch.clamp_min(x, 0, out=y),
                lambda dy, x, y, dx: aten.threshold_backward.grad_input(dy, y, 0, grad_input=dx))
    if isinstance(module, LeakyReLU):
        slope = module.negative_slope
        return (lambda x, y: aten.leaky_relu.out(x, slope, out=y),
                lambda dy, x, y, dx: aten.leaky_relu_backward.grad_input(
                    dy, x, slope, False, grad_input=dx))
    if isinstance(module, ELU):
        alpha = module.alpha
        return (lambda x, y: aten.elu.out(x, alpha, 1, 1, out=y),
                lambda dy, x, y, dx: aten.elu_backward.grad_input(
                    dy, alpha, 1, 1, False, x, grad_input=dx))
    raise TypeError(f"no fast kernels for {type(module).__name__}")


class _Activation(_Layer):
    def __init__(self, module: Module, x_shape: tuple[int, int, int], device: torch.device):
        self.module = module
        self.out = torch.empty(x_shape, device=device)
        self.dx = torch.empty(x_shape, device=device)
        self.x = self.out  # set by forward
        self.apply, self.derivative = _activation_kernels(module)

    def forward(self, x: Tensor) -> Tensor:
        self.x = x
        self.apply(x, self.out)
        return self.out

    def backward(self, dy: Tensor) -> Tensor:
        return self.derivative(dy, self.x, self.out, self.dx)


class _Identity(_Layer):
    """The module returns its input itself; the gradient passes unchanged."""

    def __init__(self, module: Identity):
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        self.out = x
        return x

    def backward(self, dy: Tensor) -> Tensor:
        return dy


class _BatchNorm(_Layer):
    """BatchNorm1d in training mode, computed as the module computes it (the batch variance
    shifted by the first example, see modules.batch_variance). The backward is autograd's chain
    through those operations, step for step; the input's gradient adds its four contributions
    in the order the engine does: shifted-variance path, first-row slice, centring, mean.
    Where autograd negates a sum and then divides or adds it, this divides by the negated
    divisor or subtracts: rounding is symmetric in sign, so the bits are the same."""

    def __init__(self, norm: BatchNorm1d, x_shape: tuple[int, int, int], update: Update):
        self.module = norm
        members, batch, width = x_shape
        device = norm.running_mean.device

        def full() -> Tensor:
            return torch.empty(x_shape, device=device)

        def column() -> Tensor:
            return torch.empty(members, 1, width, device=device)

        self.batch, self.minus_batch = _number(batch), _number(-batch)
        self.batch_less_one = _number(batch - 1)
        self.eps, self.minus_two = _number(norm.eps), _number(-2)
        self.centred, self.dev, self.xhat, self.work, self.dx = (full() for _ in range(5))
        self.mean, self.smean, self.squares, self.unbiased, self.sd = (column() for _ in range(5))
        self.biased, self.c1, self.c2 = column(), column(), column()
        self.dcent, self.dxhat = full(), full()
        self.out = full() if norm.affine else self.xhat
        self.var = self.unbiased if norm.convention == "lecture" else self.biased
        self.divisor = self.batch_less_one if norm.convention == "lecture" else self.batch
        # the module replaces its running statistics every step; here they change in place, in
        # tensors of this run, so that no earlier reference to them sees the updates
        norm.running_mean = norm.running_mean.clone()
        norm.running_var = norm.running_var.clone()
        self.stat, self.blend = (torch.empty(members, width, device=device) for _ in range(2))
        self.momentum, self.keep = _number(norm.momentum), _number(1 - norm.momentum)
        self.grads = None
        if norm.affine:
            self.grads = (update.gradient(norm.gamma), update.gradient(norm.beta))
            self.gamma, self.beta = norm.gamma.unsqueeze(1), norm.beta.unsqueeze(1)
        batch_stat = self.unbiased.squeeze(1)
        if norm.track == "std":
            batch_stat = self.stat
        self.blends = ((norm.running_mean, self.mean.squeeze(1)), (norm.running_var, batch_stat))
        self.first_rows = self.work[:, :1], self.dcent[:, :1], self.dx[:, :1]

    def forward(self, x: Tensor) -> Tensor:
        norm = self.module
        assert isinstance(norm, BatchNorm1d)
        _mean(x, self.batch, self.mean)
        torch.sub(x, self.mean, out=self.centred)
        torch.sub(x, x[:, :1], out=self.work)  # batch_variance: shifted by the first example
        _mean(self.work, self.batch, self.smean)
        torch.sub(self.work, self.smean, out=self.dev)
        torch.mul(self.dev, self.dev, out=self.work)
        torch.sum(self.work, 1, keepdim=True, out=self.squares)
        torch.div(self.squares, self.batch_less_one, out=self.unbiased)
        if norm.convention == "torch":
            torch.div(self.squares, self.batch, out=self.biased)
        torch.add(self.var, self.eps, out=self.sd)
        torch.sqrt(self.sd, out=self.sd)
        torch.div(self.centred, self.sd, out=self.xhat)
        if norm.affine:
            torch.mul(self.gamma, self.xhat, out=self.out)
            self.out.add_(self.beta)
        # running statistics: (1 - m) * running + m * batch statistic
        if norm.track == "std":
            torch.sqrt(self.unbiased.squeeze(1), out=self.stat)
        for running, value in self.blends:
            running.mul_(self.keep)
            running.add_(torch.mul(value, self.momentum, out=self.blend))
        return self.out

    def backward(self, dy: Tensor) -> Tensor:
        dxhat = dy
        if self.grads is not None:
            gamma_grad, beta_grad = self.grads
            torch.sum(dy, 1, out=beta_grad)
            torch.sum(torch.mul(dy, self.xhat, out=self.work), 1, out=gamma_grad)
            dxhat = torch.mul(dy, self.gamma, out=self.dxhat)
        torch.div(dxhat, self.sd, out=self.dcent)
        # d sd = sum(-dxhat * ((centred / sd) / sd)); centred / sd is xhat
        torch.div(self.xhat, self.sd, out=self.work)
        torch.mul(dxhat, self.work, out=self.work)
        torch.sum(self.work, 1, keepdim=True, out=self.c1)
        # of sqrt: d sd / (2 sd), with the sum's sign
        torch.div(self.c1, torch.mul(self.sd, self.minus_two, out=self.c2), out=self.c1)
        torch.div(self.c1, self.divisor, out=self.c1)  # d squares
        torch.mul(self.dev, self.c1, out=self.work)  # dev * dev: the same term twice
        self.work.add_(self.work)  # d dev
        torch.sum(self.work, 1, keepdim=True, out=self.c2).div_(self.minus_batch)
        self.work.add_(self.c2)  # d shifted
        torch.sum(self.work, 1, keepdim=True, out=self.c1)  # minus d first example
        torch.add(self.work, self.dcent, out=self.dx)
        work_first, dcent_first, dx_first = self.first_rows
        torch.sub(work_first, self.c1, out=self.c1)
        torch.add(self.c1, dcent_first, out=dx_first)
        torch.sum(self.dcent, 1, keepdim=True, out=self.c2).div_(self.minus_batch)
        self.dx.add_(self.c2)  # d mean
        return self.dx


class _Residual(_Layer):
    """y = x + f(x); dx = dy + (gradient through f), a sum of two terms in either order."""

    def __init__(self, module: Residual, layers: list[_Layer], x_shape: tuple[int, int, int],
                 device: torch.device):
        self.module, self.residual, self.layers = module, module, layers
        self.out = torch.empty(x_shape, device=device)
        self.dx = torch.empty(x_shape, device=device)

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for layer in self.layers:
            y = layer.forward(y)
        return torch.add(x, y, out=self.out)

    def backward(self, dy: Tensor) -> Tensor:
        d: Tensor | None = dy
        for layer in reversed(self.layers):
            assert d is not None
            d = layer.backward(d)
        assert d is not None
        return torch.add(dy, d, out=self.dx)

    def keep_outputs(self) -> None:
        for layer in self.layers:
            layer.keep_outputs()
        self.residual.block.out = self.layers[-1].out
        self.module.out = self.out


class _CrossEntropy:
    """Each member's mean cross-entropy over its batch; backward seeds d(sum of the members'
    losses) = 1/B per example and runs nll_loss and log_softmax backward, as autograd does."""

    def __init__(self, members: int, batch: int, vocab: int, device: torch.device):
        self.shape = (members, batch, vocab)
        rows = members * batch
        self.logp = torch.empty(rows, vocab, device=device)
        self.grad_logp = torch.empty(rows, vocab, device=device)
        self.dlogits = torch.empty(rows, vocab, device=device)
        self.nll = torch.empty(rows, device=device)
        self.total = torch.empty((), device=device)
        self.seed = torch.ones(members, batch, device=device).view(-1) / batch
        self.batch = _number(batch)

    def forward(self, logits: Tensor, targets: Tensor, losses: Tensor) -> None:
        members, batch, vocab = self.shape
        aten._log_softmax.out(logits.view(-1, vocab), 1, False, out=self.logp)
        aten.nll_loss_forward.output(self.logp, targets, None, 0, -100, output=self.nll,
                                     total_weight=self.total)
        torch.sum(self.nll.view(members, batch), 1, out=losses).div_(self.batch)

    def backward(self, targets: Tensor) -> Tensor:
        aten.nll_loss_backward.grad_input(self.seed, self.logp, targets, None, 0, -100,
                                          self.total, grad_input=self.grad_logp)
        aten._log_softmax_backward_data.out(self.grad_logp, self.logp, 1, torch.float32,
                                            out=self.dlogits)
        return self.dlogits.view(self.shape)


def _plan_layers(modules: Sequence[Module], shape: tuple[int, int, int], update: Update,
                 device: torch.device) -> tuple[list[_Layer], tuple[int, int, int]] | None:
    """Kernels for the layers after the embedding, or None if one is not supported."""
    layers: list[_Layer] = []
    for module in modules:
        members, batch, width = shape
        layer: _Layer
        if type(module) is Linear:
            if module.weight.shape[1] != width:
                return None
            layer = _Linear(module, shape, update)
            shape = (members, batch, module.weight.shape[2])
        elif type(module) is BatchNorm1d:
            layer = _BatchNorm(module, shape, update)
        elif type(module) is Identity:
            layer = _Identity(module)
        elif type(module) in (Tanh, Sigmoid, ReLU, LeakyReLU, ELU):
            layer = _Activation(module, shape, device)
        elif type(module) is Residual:
            inner = _plan_layers(module.block.layers, shape, update, device)
            if inner is None or inner[1] != shape:
                return None
            layer = _Residual(module, inner[0], shape, device)
        else:
            return None
        layers.append(layer)
    return layers, shape


class FastStep:
    """One training step of a supported network, ready for a given ensemble, batch size and
    optimiser: draw the batch from the given indices, forward, backward, update. Build it with
    `plan`, which returns None for what it does not support."""

    def __init__(self, model: Sequential, embedding: _Embedding, layers: list[_Layer],
                 loss: _CrossEntropy, update: Update, block: int):
        self.model, self.embedding, self.layers = model, embedding, layers
        self.loss, self.update = loss, update
        members, batch = loss.shape[:2]
        device = loss.logp.device
        self.x = torch.empty(members, batch, block, dtype=torch.long, device=device)
        self.y = torch.empty(members * batch, dtype=torch.long, device=device)
        self.params = [p for p, _ in update.pairs]
        self.grads = [g for _, g in update.pairs]

    @torch.no_grad()
    def __call__(self, data: tuple[Tensor, Tensor], ix: Tensor, lr: float | Tensor,
                 losses: Tensor, adam: _Adam | None = None) -> None:
        """Train one step on rows `ix` (members, batch) of `data`, writing the members' losses
        into `losses`. `lr` is a float or a per-member (E,) tensor."""
        self.run(data, ix, lr, losses, sgd=adam is None)
        if adam is not None:
            self.adam_step(adam, lr)

    def run(self, data: tuple[Tensor, Tensor], ix: Tensor, lr: float | Tensor, losses: Tensor,
            sgd: bool) -> None:
        """Forward, backward and (with `sgd`) the SGD update: what a CUDA graph can hold."""
        x_all, y_all = data
        rows = ix.reshape(-1)
        torch.index_select(x_all, 0, rows, out=self.x.view(rows.shape[0], -1))
        torch.index_select(y_all, 0, rows, out=self.y)
        h = self.embedding.forward(self.x)
        for layer in self.layers:
            h = layer.forward(h)
        self.loss.forward(h, self.y, losses)
        d: Tensor | None = self.loss.backward(self.y)
        self.update.lr = float(lr) if self.update.fused else None
        for layer in reversed(self.layers):
            assert d is not None
            d = layer.backward(d)
        assert d is not None
        self.embedding.backward(d)
        if sgd and self.params:
            members = losses.shape[0]
            if isinstance(lr, Tensor):
                scales = [-per_member(lr, members, p.dim()) for p in self.params]
                torch._foreach_mul_(self.grads, scales)  # type: ignore[arg-type]
            else:
                torch._foreach_mul_(self.grads, _number(-lr))
            torch._foreach_add_(self.params, self.grads)

    def adam_step(self, adam: _Adam, lr: float | Tensor) -> None:
        """train._Adam on the gradients of the last `run`."""
        for p, g in self.update.pairs:
            p.grad = g
        adam.step(self.model.parameters(), lr)

    def finish(self) -> None:
        """Leave the model as a forward would: each layer's last output in `.out`; no grads."""
        self.embedding.keep_outputs()
        for layer in self.layers:
            layer.keep_outputs()
        self.model.out = self.layers[-1].out
        for p in self.model.parameters():
            p.grad = None


def plan(model: Module, members: int, batch: int, block: int, optimizer: str,
         scalar_lr: bool) -> FastStep | None:
    """A FastStep for `model` (E members, batches of `batch` contexts of `block` characters),
    or None when some layer has no fast kernels: the caller then trains with autograd. On CUDA
    the step is replayed from a CUDA graph (makemore.cudagraph)."""
    if not isinstance(model, Sequential) or len(model.layers) < 3:
        return None
    embedding, flatten, *rest = model.layers
    params = model.parameters()
    device = params[0].device
    if (type(embedding) is not Embedding or type(flatten) is not Flatten
            or device.type not in ("cpu", "cuda")
            or any(p.dtype != torch.float32 or not p.is_contiguous() for p in params)):
        return None
    update = Update(fused=optimizer == "sgd" and scalar_lr)
    first = _Embedding(embedding, flatten, batch, block, update)
    planned = _plan_layers(rest, (members, batch, first.out.shape[2]), update, device)
    if planned is None:
        return None
    layers, (_, _, vocab) = planned
    step = FastStep(model, first, layers, _CrossEntropy(members, batch, vocab, device), update,
                    block)
    if device.type == "cuda":
        from makemore.cudagraph import GraphedStep

        return GraphedStep(step)
    return step
