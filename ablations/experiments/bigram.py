"""Sample quality (misc.samples): the bigram model of makemore part 1 as the control the lecture
names (L:17), a held-out judge of how name-like samples are, and batched ancestral sampling.

- The bigram model: counts of (previous, next) characters over the training split's words, '.'
  at both ends, plus one (part 1's smoothing).
- The judge: an interpolated character n-gram with Witten-Bell smoothing, fitted on words that
  neither model saw (the test split). Witten-Bell has no free parameter: a context seen c times
  with t distinct continuations gives its own estimate weight c / (c + t), the rest going to the
  next shorter context, down to add-one unigrams. Its per-character negative log-likelihood of a
  set of names measures how name-like they look; real held-out names (the dev split) are the
  reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from makemore.data import STOI, VOCAB

V = len(VOCAB)


def ngrams(words: Sequence[str], order: int) -> torch.Tensor:
    """(count, order) character indices: every character of each word and its end '.', with the
    order - 1 characters before it ('.' before the start)."""
    rows = []
    for word in words:
        chars = [0] * (order - 1) + [STOI[c] for c in word] + [0]
        rows.extend(chars[i - order + 1: i + 1] for i in range(order - 1, len(chars)))
    return torch.tensor(rows, dtype=torch.long).view(-1, order)


def index(grams: torch.Tensor) -> torch.Tensor:
    """Each row of character indices as one base-V number."""
    out = torch.zeros(grams.shape[0], dtype=torch.long)
    for column in grams.T:
        out = out * V + column
    return out


def counts(words: Sequence[str], order: int) -> torch.Tensor:
    """(V**(order-1), V) float64 counts of each context and next character."""
    found = torch.bincount(index(ngrams(words, order)), minlength=V**order)
    return found.double().view(-1, V)


def bigram_probs(words: Sequence[str]) -> torch.Tensor:
    """P(next | previous), add-one smoothed: (V, V)."""
    table = counts(words, 2) + 1
    return table / table.sum(1, keepdim=True)


class Judge:
    """An interpolated Witten-Bell n-gram of real names (see the module docstring)."""

    def __init__(self, words: Sequence[str], order: int):
        self.order = order
        self.tables = [counts(words, n) for n in range(1, order + 1)]

    def log_probs(self, names: Sequence[str]) -> torch.Tensor:
        """log P of every character (and end '.') of the names, in order."""
        grams = ngrams(names, self.order)
        unigram = self.tables[0][0] + 1
        p = (unigram / unigram.sum())[grams[:, -1]]
        for n in range(2, self.order + 1):
            rows = self.tables[n - 1][index(grams[:, self.order - n: -1])]
            seen = rows.sum(1)
            kinds = (rows > 0).sum(1).double()
            own = rows.gather(1, grams[:, -1:]).squeeze(1)
            p = torch.where(seen > 0, (own + kinds * p) / (seen + kinds).clamp(min=1), p)
        return p.log()

    def nll(self, names: Sequence[str]) -> float:
        """Mean negative log-likelihood per character (end '.' included), nats."""
        return float(-self.log_probs(names).mean())


def draw_names(next_probs: Callable[[torch.Tensor], torch.Tensor], count: int, context: int,
               seed: int, max_length: int = 50) -> list[str]:
    """`count` names drawn at once, one character per step, as the lecture samples each: the
    context starts as '.' * context and a name ends at '.' (or after max_length characters).
    next_probs maps (count, context) indices to (count, V) probabilities."""
    generator = torch.Generator().manual_seed(seed)
    window = torch.zeros(count, context, dtype=torch.long)
    chars = torch.zeros(count, max_length, dtype=torch.long)
    alive = torch.ones(count, dtype=torch.bool)
    for step in range(max_length):
        picked = torch.multinomial(next_probs(window), 1, generator=generator).squeeze(1)
        picked = torch.where(alive, picked, 0)
        chars[:, step] = picked
        alive &= picked != 0
        window = torch.cat([window[:, 1:], picked[:, None]], dim=1)
        if not alive.any():
            break
    return ["".join(VOCAB[c] for c in row if c) for row in chars.tolist()]
