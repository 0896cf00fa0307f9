"""The MLP training step held to float tolerance instead of bit-identity: a measured answer to
whether leaving autograd's kernels and layouts would bring the engine to the throughput target.

makemore/fast.py calls the kernels autograd calls, in its layouts, so that a fast step equals
an autograd step bit for bit. This step is free of that rule and takes the layouts that
`python -m tests.bench.layouts` timed among the fastest for the step's six matmuls at E = 64
on the 2-core benchmark machine (1.38 ms, against 1.51 ms in autograd's layouts, rank 31 of
64): x row-major, as the gather writes it; the hidden layer feature-major (h^T, hidden x batch);
W1 stored as W1^T with b1 as its last column (a ones column in the input adds it inside the
matmul, and the weight-gradient matmul then updates it as well); the logits feature-major.
SGD's update is fused into each weight-gradient matmul, and the cross-entropy's 1/B into the
learning rate. The results differ from autograd's in rounding only
(tests/bench/test_float_step.py). It exists for the benchmark; training uses fast.py.
"""

from __future__ import annotations

import torch

from makemore.modules import Embedding, Linear, Sequential, Tanh

aten = torch.ops.aten


class FloatStep:
    """One SGD step of E members of the lecture's MLP (embedding, Linear, tanh, Linear) on
    batches (E, B) of context rows; owns copies of the model's parameters in its layouts."""

    def __init__(self, model: Sequential, batch: int):
        embedding, _, first, tanh, second = model.layers
        if not (isinstance(embedding, Embedding) and isinstance(first, Linear)
                and isinstance(tanh, Tanh) and isinstance(second, Linear)
                and first.bias is not None and second.bias is not None):
            raise TypeError("FloatStep takes the MLP of models.mlp without BatchNorm")
        members, self.vocab, self.dim = embedding.weight.shape
        fan_in, hidden = first.weight.shape[1:]
        self.fan_in = fan_in
        self.C = embedding.weight.detach().clone()
        self.W1t = torch.cat([first.weight.detach().transpose(1, 2),
                              first.bias.detach().unsqueeze(2)], 2).contiguous()
        self.W2 = second.weight.detach().clone()
        self.b2 = second.bias.detach().clone().unsqueeze(2)
        self.table = self.C.view(-1, self.dim)
        self.offsets = torch.arange(members).view(members, 1, 1) * self.vocab
        block = fan_in // self.dim
        self.rows = torch.empty(members, batch, block, dtype=torch.long)
        self.emb = torch.empty(members, batch * block, self.dim)
        self.x = torch.ones(members, batch, fan_in + 1)  # the last column stays 1: b1's input
        self.hT = torch.empty(members, hidden, batch)
        self.logitsT = torch.empty(members, self.vocab, batch)
        self.db2 = torch.empty(members, self.vocab, 1)
        self.dhT = torch.empty(members, hidden, batch)
        self.dxT = torch.empty(members, fan_in, batch)
        self.dx = torch.empty(members, batch, block, self.dim)
        self.onehot = torch.zeros(members, self.vocab, batch * block)
        self.minus_one = torch.full((1, 1, 1), -1.0).expand(members, 1, batch)

    @torch.no_grad()
    def __call__(self, X: torch.Tensor, Y: torch.Tensor, lr: float) -> torch.Tensor:
        """Train on contexts X (E, B, block) with targets Y (E, B); returns the losses (E,)."""
        members, batch = Y.shape
        alpha = -lr / batch
        torch.add(X, self.offsets, out=self.rows)
        torch.index_select(self.table, 0, self.rows.view(-1), out=self.emb.view(-1, self.dim))
        self.x[:, :, :self.fan_in].copy_(self.emb.view(members, batch, self.fan_in))
        torch.bmm(self.W1t, self.x.transpose(1, 2), out=self.hT).tanh_()
        torch.bmm(self.W2.transpose(1, 2), self.hT, out=self.logitsT).add_(self.b2)
        logp = torch.log_softmax(self.logitsT, 1, out=self.logitsT)
        targets = Y.view(members, 1, batch)
        losses = logp.gather(1, targets).sum(2).squeeze(1).div_(-batch)
        dlogitsT = logp.exp_().scatter_add_(1, targets, self.minus_one)  # B x the gradient
        torch.bmm(self.W2, dlogitsT, out=self.dhT)  # before W2 changes
        self.W2.baddbmm_(self.hT, dlogitsT.transpose(1, 2), alpha=alpha)
        self.b2.add_(torch.sum(dlogitsT, 2, keepdim=True, out=self.db2), alpha=alpha)
        aten.tanh_backward.grad_input(self.dhT, self.hT, grad_input=self.dhT)
        torch.bmm(self.W1t[:, :, :self.fan_in].transpose(1, 2), self.dhT, out=self.dxT)
        self.W1t.baddbmm_(self.dhT, self.x, alpha=alpha)
        block = self.rows.shape[2]
        self.dx.copy_(self.dxT.view(members, block, self.dim, batch).permute(0, 3, 1, 2))
        where = X.view(members, 1, -1)
        self.onehot.scatter_(1, where, 1.0)
        self.C.baddbmm_(self.onehot, self.dx.view(members, -1, self.dim), alpha=alpha)
        self.onehot.scatter_(1, where, 0.0)
        return losses

    def matmuls(self, tanh: bool = False) -> None:
        """The step's six matmuls alone, on its current buffers, with a vanishing update, and
        with `tanh` its forward and backward too: ceilings of this formulation, whatever the
        rest of the step costs."""
        tiny = -1e-30
        torch.bmm(self.W1t, self.x.transpose(1, 2), out=self.hT)
        if tanh:
            self.hT.tanh_()
        torch.bmm(self.W2.transpose(1, 2), self.hT, out=self.logitsT)
        torch.bmm(self.W2, self.logitsT, out=self.dhT)
        self.W2.baddbmm_(self.hT, self.logitsT.transpose(1, 2), alpha=tiny)
        if tanh:
            aten.tanh_backward.grad_input(self.dhT, self.hT, grad_input=self.dhT)
        torch.bmm(self.W1t[:, :, :self.fan_in].transpose(1, 2), self.dhT, out=self.dxT)
        self.W1t.baddbmm_(self.dhT, self.x, alpha=tiny)

    def parameters(self) -> tuple[torch.Tensor, ...]:
        """C, W1, b1, W2, b2 in the model's shapes."""
        return (self.C, self.W1t[:, :, :self.fan_in].transpose(1, 2), self.W1t[:, :, self.fan_in],
                self.W2, self.b2.squeeze(2))
