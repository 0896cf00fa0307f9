"""The one-hidden-layer MLP at init and at its first step, as the init and tanh claims read it.

- `first_step(base, ...)`: the run template of the lecture's first iteration ("break after the
  very first iteration", L:33): one recorded step, so that the step-0 loss, the first batch's
  pre-activations, tanh outputs and logits and the step-0 gradients are the engine's own.
  `first_batch` gives them by the lecture's names.
- `at_init(ctx, template)`: a template's members as initialised, before any step, for statistics
  over the whole training split.
- The training split as its distinct contexts with the count of each next character
  (`split_counts`): any statistic over its 182,625 examples is computed exactly on the ~5,400
  distinct contexts, each weighted by how often it occurs.
- Gaussian-logit theory (`gaussian_logit_loss`): given an example's hidden activations h, logits
  h @ W2 + b2 with W2 ~ N(0, w2^2) and b2 ~ N(0, b2^2) entries are, over the draw of the output
  layer, iid N(0, s^2) across the classes with s^2 = w2^2 |h|^2 + b2^2. The label's logit is one
  of them, so the expected loss is f(s) = E[logsumexp(s z)] - E[s z_label] = E[logsumexp(s z)],
  z ~ N(0, 1)^V: ln V at s = 0, ln V + s^2 (V - 1) / (2V) for small s, s E[max z] for large s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ablations import figures
from ablations.context import Context
from ablations.experiments.runs import RunTemplate, Trained, member_specs, mlp_run
from makemore.models import VOCAB_SIZE
from makemore.modules import ACTIVATIONS, Module, Sequential
from makemore.runs import build

SATURATED = 0.99  # the lecture's threshold on |h| (L:63): a local gradient below 1 - 0.99^2
SPAN = 0.99  # central share of a histogram's values that its visible span covers


def first_step(base: str = "original", vary: dict[str, Any] | None = None,
               **overrides: Any) -> RunTemplate:
    """The MLP's first iteration (forward, backward, one update), recorded."""
    return mlp_run(base, 1, vary=vary, record=("last_step",), decay=None, **overrides)


@dataclass
class FirstBatch:
    """What the lecture inspects after its first iteration, per member: the step-0 loss, the
    first batch's pre-activations, nonlinearity outputs and logits (E, 32, .), and the step-0
    gradients of C, W1, b1, W2, b2."""

    members: pd.DataFrame
    loss: np.ndarray
    pre: torch.Tensor
    hidden: torch.Tensor
    logits: torch.Tensor
    grads: dict[str, torch.Tensor]


def parts(model: Module) -> dict[str, Module]:
    """The MLP's layers by role: embedding, hidden Linear, nonlinearity, output Linear."""
    assert isinstance(model, Sequential)
    layers = model.layers
    return {"embedding": layers[0], "hidden": layers[2], "nonlinearity": layers[-2],
            "output": layers[-1]}


def parameters(model: Module) -> dict[str, torch.Tensor]:
    """The lecture's names for the parameters: C, W1, b1, W2, b2 (b1 absent with BatchNorm)."""
    layer = parts(model)
    named = {"C": layer["embedding"].weight, "W1": layer["hidden"].weight,
             "b1": layer["hidden"].bias, "W2": layer["output"].weight,
             "b2": layer["output"].bias}
    return {name: p for name, p in named.items() if p is not None}


def first_batch(trained: Trained) -> FirstBatch:
    """The recorded first iteration of a `first_step` run."""
    if trained.steps != 1:
        raise ValueError(f"a first-step run has 1 step, this one {trained.steps}")
    layer = parts(trained.model)
    grads = {name: p.grad.detach() for name, p in parameters(trained.model).items()}
    return FirstBatch(trained.members, trained.losses[0].numpy(), layer["hidden"].out,
                      layer["nonlinearity"].out, layer["output"].out, grads)


def batch_stats(first: FirstBatch) -> pd.DataFrame:
    """Per member, what the lecture reads off the first batch's histograms (L:49-51, L:62-64):
    the visible span of the pre-activations (half-width of their central SPAN), the largest
    |pre|, the share of |h| > SATURATED and the units above SATURATED on at least one example."""
    pre, saturated = first.pre.flatten(1), first.hidden.abs() > SATURATED
    edges = torch.quantile(pre, torch.tensor([(1 - SPAN) / 2, (1 + SPAN) / 2]), dim=1)
    return first.members.assign(span=((edges[1] - edges[0]) / 2).numpy(),
                                max_abs_pre=pre.abs().max(1).values.numpy(),
                                saturated=saturated.flatten(1).double().mean(1).numpy(),
                                units_saturated=saturated.any(1).sum(1).numpy())


def at_init(ctx: Context, template: RunTemplate) -> Module:
    """The template's members (in its member order) as initialised, before the first step."""
    model, _ = build(member_specs(template, ctx))
    return model.to(ctx.device)


# --- the training split, exactly, on its distinct contexts ----------------------------------------


def split_counts(ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split's distinct contexts (U, block) and, for each, how often each character
    follows it (U, V) in float64. Every context occurs at least once."""

    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = ctx.splits().train
        contexts, inverse = torch.unique(x, dim=0, return_inverse=True)
        counts = torch.zeros(len(contexts), VOCAB_SIZE, dtype=torch.float64)
        counts.index_put_((inverse, y), torch.ones(len(y), dtype=torch.float64), accumulate=True)
        return contexts, counts

    return ctx.shared("train-split-counts", compute)


@dataclass
class OnSplit:
    """A network's pre-activations, nonlinearity outputs and logits on every distinct training
    context (E, U, .), with the contexts' next-character counts (U, V)."""

    pre: torch.Tensor
    hidden: torch.Tensor
    logits: torch.Tensor
    counts: torch.Tensor

    @property
    def weights(self) -> torch.Tensor:
        """How many training examples each context stands for (U,)."""
        return self.counts.sum(1)

    def loss(self) -> np.ndarray:
        """Mean cross-entropy over the training split per member, in float64."""
        logp = torch.log_softmax(self.logits.double(), -1)
        return (-(logp * self.counts).sum((1, 2)) / self.counts.sum()).numpy()

    def share(self, mask: torch.Tensor) -> np.ndarray:
        """Share of (example, unit) entries where `mask` (E, U, H) holds, per member."""
        per_context = mask.double().mean(2)
        return ((per_context * self.weights).sum(1) / self.weights.sum()).numpy()


@torch.no_grad()
def on_split(ctx: Context, model: Module) -> OnSplit:
    contexts, counts = split_counts(ctx)
    members = model.parameters()[0].shape[0]
    model(contexts.to(ctx.device).unsqueeze(0).expand(members, -1, -1))
    layer = parts(model)
    return OnSplit(layer["hidden"].out.cpu(), layer["nonlinearity"].out.cpu(),
                   layer["output"].out.cpu(), counts)


# --- Gaussian-logit theory -----------------------------------------------------------------------

THEORY_SAMPLES = 20_000  # Monte-Carlo draws of z for f(s): standard error about s * 0.003
THEORY_GRID = np.geomspace(1e-3, 1e4, 281)  # f is smooth in log s: interpolation error ~1e-4


@lru_cache(maxsize=1)
def _theory_table(vocab: int = VOCAB_SIZE) -> np.ndarray:
    z = torch.randn(THEORY_SAMPLES, vocab, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    return np.array([torch.logsumexp(s * z, -1).mean().item() for s in THEORY_GRID])


def gaussian_logit_loss(scale: np.ndarray | float) -> np.ndarray:
    """f(s) = E[CE] of V = 27 iid N(0, s^2) logits (Monte Carlo, common random numbers, in
    float64); below s = 1e-3 the second-order expansion ln V + s^2 (V - 1) / (2V)."""
    s = np.asarray(scale, dtype=np.float64)
    small = math.log(VOCAB_SIZE) + s**2 * (VOCAB_SIZE - 1) / (2 * VOCAB_SIZE)
    with np.errstate(divide="ignore"):
        table = np.interp(np.log(np.maximum(s, 1e-300)), np.log(THEORY_GRID), _theory_table())
    return np.where(s < THEORY_GRID[0], small, table)


def predicted_loss(split: OnSplit, w2: float | np.ndarray, b2: float | np.ndarray) -> np.ndarray:
    """The expected split loss over the draw of W2 ~ N(0, w2^2), b2 ~ N(0, b2^2) given each
    member's hidden activations (E,): the mean of f(sqrt(w2^2 |h|^2 + b2^2)) over examples."""
    w2 = np.asarray(w2, dtype=np.float64).reshape(-1, 1)
    b2 = np.asarray(b2, dtype=np.float64).reshape(-1, 1)
    norm2 = split.hidden.double().square().sum(-1).numpy()  # (E, U)
    losses = gaussian_logit_loss(np.sqrt(w2**2 * norm2 + b2**2))
    weights = split.weights.numpy()
    return (losses * weights).sum(1) / weights.sum()



# --- losses of given logits ---------------------------------------------------------------------

UNDERFLOW_GAP = 150 * math.log(2)  # float32 rounds exp(-gap) to 0 below 2^-150: gap > 104 nats


def loss_routes(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example loss as training computes it (F.cross_entropy, log-softmax based) and as the
    lecture's demo does (L:26, L:30: softmax, then -log of the label's probability)."""
    probs = logits.softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return {"F.cross_entropy": F.cross_entropy(logits, labels, reduction="none"),
            "-log softmax": -probs.log()}


def unit_in_last_place(value: float, dtype: torch.dtype) -> float:
    """The spacing of `dtype`'s numbers at `value` (2^-22 for ln 27 in float32)."""
    return torch.finfo(dtype).eps * 2.0 ** math.floor(math.log2(abs(value)))


def inf_point(z: torch.Tensor, labels: torch.Tensor) -> float:
    """log10 of the scale s at which half the losses of logits s * z computed as the lecture
    does are inf (bisection: a loss turns inf once s times its gap exceeds UNDERFLOW_GAP, so the
    share only grows with s)."""
    lo, hi = 0.0, 38.0
    for _ in range(40):
        mid = (lo + hi) / 2
        share = torch.isinf(loss_routes(10**mid * z, labels)["-log softmax"]).double().mean()
        lo, hi = (lo, mid) if share >= 0.5 else (mid, hi)
    return (lo + hi) / 2


def equal_logit_losses(constants: tuple[float, ...], vocabs: tuple[int, ...]) -> pd.DataFrame:
    """The loss of V logits all equal to c, worst over the V labels, for every constant, V,
    float dtype and route, and its distance from ln V in ulps of ln V."""
    rows = []
    for dtype in (torch.float32, torch.float64):
        for vocab in vocabs:
            ulp = unit_in_last_place(math.log(vocab), dtype)
            for constant in constants:
                logits = torch.full((vocab, vocab), constant, dtype=dtype)
                for route, loss in loss_routes(logits, torch.arange(vocab)).items():
                    rows.append({"dtype": str(dtype)[6:], "vocab_size": vocab, "route": route,
                                 "constant": constant, "loss": loss.max().item(), "error_ulps":
                                 (loss.double() - math.log(vocab)).abs().max().item() / ulp})
    return pd.DataFrame(rows)


def logit_scale_sweep(seed: int, samples: int,
                      scales: tuple[float, ...]) -> tuple[pd.DataFrame, dict[str, float]]:
    """One seed's draw of random logits z and labels at every scale s: the mean loss of s * z
    (F.cross_entropy), the theory's, and the share of inf losses by route; and where half the
    lecture-route losses are inf, measured and predicted (UNDERFLOW_GAP over the median gap
    between the top logit and the label's), both as log10 s."""
    z, labels = random_logits(seed, samples)
    rows = []
    for s in scales:
        routes = loss_routes(s * z, labels)
        inf = {k: torch.isinf(v).double().mean().item() for k, v in routes.items()}
        rows.append({"seed": seed, "scale": s, "loss": routes["F.cross_entropy"].mean().item(),
                     "predicted_loss": float(gaussian_logit_loss(s)),
                     "inf_share": inf["-log softmax"], "library_inf_share": inf["F.cross_entropy"]})
    gap = z.max(-1).values - z.gather(-1, labels[:, None]).squeeze(-1)
    return pd.DataFrame(rows), {"inf_point": inf_point(z, labels), "predicted":
                                math.log10(UNDERFLOW_GAP / gap.median().item())}


def random_logits(seed: int, samples: int, vocab: int = VOCAB_SIZE) -> tuple[torch.Tensor, ...]:
    """`samples` float32 N(0, 1) logit vectors and uniformly random labels, from one seed."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(samples, vocab, generator=gen),
            torch.randint(0, vocab, (samples,), generator=gen))


def label_range(logits: torch.Tensor) -> float:
    """How much the loss of one logit vector (V,) varies with the label: max - min over labels."""
    losses = F.cross_entropy(logits.expand(len(logits), -1), torch.arange(len(logits)),
                             reduction="none")
    return (losses.max() - losses.min()).item()


def label_on_top(split: OnSplit) -> tuple[np.ndarray, np.ndarray]:
    """Per member: the share of training examples whose label holds the top logit, and their
    mean loss."""
    logits = split.logits.double()
    on_top = (logits == logits.max(-1, keepdim=True).values) * split.counts
    top = on_top.sum((1, 2))
    losses = torch.logsumexp(logits, -1, keepdim=True) - logits
    return (top / split.counts.sum()).numpy(), ((losses * on_top).sum((1, 2)) / top).numpy()


PEAK_SLOPE = {"sigmoid": 0.25}  # the largest local gradient; 1 for tanh and the ReLU family


def local_gradient(x: torch.Tensor, name: str = "tanh",
                   upstream: torch.Tensor | None = None) -> torch.Tensor:
    """Autograd's gradient through the library's nonlinearity `name` for an upstream gradient
    (ones: the element-wise local gradient)."""
    leaf = x.detach().clone().requires_grad_(True)
    out = ACTIVATIONS[name]()(leaf)
    out.backward(torch.ones_like(out) if upstream is None else upstream)
    return leaf.grad


def tanh_backward(x: torch.Tensor, upstream: torch.Tensor) -> dict[str, float]:
    """Backward through tanh for inputs x (x[0] = 0) with an upstream gradient g, in x's dtype:
    the largest gain |grad| / |g| and its excess over 1 in ulps of 1, the gain's distance from 1
    at x[0], the largest |grad| where t = +-1, autograd's distance from g (1 - t^2) in ulps of
    |g|, and the smallest |x| at which the gradient is exactly 0."""
    grad, t = local_gradient(x, upstream=upstream), torch.tanh(x)
    gain, eps = grad.abs() / upstream.abs(), torch.finfo(x.dtype).eps
    zero = x.abs()[grad == 0]
    return {"max_gain": gain.max().item(), "gain_above_one": max(gain.max().item() - 1, 0) / eps,
            "gain_at_zero_error": abs(gain[0].item() - 1),
            "flat_gradient": (grad.abs() * (t.abs() == 1)).max().item(),
            "formula_error_ulps": ((grad - upstream * (1 - t * t)).abs()
                                   / (eps * upstream.abs())).max().item(),
            "zero_from": zero.min().item() if len(zero) else math.inf}


def tanh_curve(line: tuple[float, float, int]) -> pd.DataFrame:
    """tanh and its local gradient along a line: autograd in float32 and float64, and the exact
    derivative sech^2 = 1 - t^2 in float64."""
    x = torch.linspace(*line)
    return pd.DataFrame({"x": x.numpy(), "t": torch.tanh(x).numpy(),
                         "float32": local_gradient(x).numpy(),
                         "float64": local_gradient(x.double()).numpy(),
                         "exact": (1 / torch.cosh(x.double()) ** 2).numpy()})


def gradient_shares(split: OnSplit, name: str) -> dict[str, np.ndarray]:
    """Per member, over the training split's (example, unit) entries of pre-activations passed
    through nonlinearity `name`: the share whose local gradient is below 1 - 0.99^2 of its peak
    (tanh's |h| > 0.99), the share exactly 0, and the share where being 0 and x <= 0 disagree."""
    grad = local_gradient(split.pre, name)
    blocked = grad < (1 - SATURATED**2) * PEAK_SLOPE.get(name, 1.0)
    return {"blocked": split.share(blocked), "zero": split.share(grad == 0),
            "mismatch": split.share((grad == 0) != (split.pre <= 0))}


@torch.no_grad()
def never_positive(model: Module, contexts: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """(E, H): hidden units whose pre-activation is <= 0 on every one of the contexts (a ReLU
    that never fires, a leaky ReLU that never leaves its 0.01 slope); False if it is not finite
    (a diverged member). Only the layers up to the hidden Linear run, chunk by chunk."""
    members, device = model.parameters()[0].shape[0], model.parameters()[0].device
    never, finite = True, True
    for start in range(0, len(contexts), chunk):
        pre = contexts[start:start + chunk].to(device).unsqueeze(0).expand(members, -1, -1)
        for layer in model.layers[:3]:  # embedding, flatten, hidden Linear
            pre = layer(pre)
        never = never & (pre <= 0).all(1).cpu()
        finite = finite & torch.isfinite(pre).all(1).cpu()
    return never & finite


def one_large_logit(vocab: int, value: float, on_label: bool) -> float:
    """The loss of zero logits but one, `value`, on the label or on another class, in float64:
    ln(1 + (V - 1) e^-value) on the label, ln(e^value + V - 1) elsewhere."""
    logits = torch.zeros(1, vocab, dtype=torch.float64)
    logits[0, 0] = value
    return F.cross_entropy(logits, torch.tensor([0 if on_label else 1])).item()


def metric_name(prefix: str, value: float) -> str:
    """A metric name for a swept value that templates can hold: loss_s0_5 for 0.5."""
    return f"{prefix}{value:g}".replace(".", "_").replace("-", "m")


# --- training curves and trained units ----------------------------------------------------------

SMOOTHING = 100  # steps averaged to see a batch-loss curve through its noise
CURVE_POINTS = 400  # block means per curve in a figure


def blade(losses: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per member of (steps, E) training losses: the share of the whole drop (step 0 to the
    mean of the last 1% of steps) that lies above ln 27, the part that scaling the logits to 0
    gives for free; and the first step at which the loss averaged over SMOOTHING steps is down to
    ln 27 (NaN if never)."""
    start = losses[0].double()
    end = losses[-max(1, losses.shape[0] // 100):].double().mean(0)
    share = ((start - math.log(VOCAB_SIZE)) / (start - end)).numpy()
    sums = torch.cat([torch.zeros_like(losses[:1], dtype=torch.float64),
                      torch.cumsum(losses.double(), 0)])
    below = (sums[SMOOTHING:] - sums[:-SMOOTHING]) / SMOOTHING <= math.log(VOCAB_SIZE)
    first = below.double().argmax(0).numpy() + SMOOTHING - 1
    return share, np.where(below.any(0).numpy(), first, np.nan)


def curve(trained: Trained, **labels: Any) -> pd.DataFrame:
    """The training-loss curve as CURVE_POINTS block means per member: step, seed, loss."""
    losses = trained.losses.numpy()
    width = max(1, losses.shape[0] // CURVE_POINTS)
    usable = losses[: losses.shape[0] // width * width]
    means = usable.reshape(-1, width, usable.shape[1]).mean(1)
    frame = pd.DataFrame(means, columns=list(trained.members.seed)).rename_axis("block")
    frame = frame.reset_index().melt(id_vars="block", var_name="seed", value_name="loss")
    return frame.assign(step=frame.block * width, **labels)


def largest_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor],
                   names: tuple[str, ...]) -> np.ndarray:
    """Per member, the largest absolute change of any entry of the named parameters."""
    return torch.stack([(after[n] - before[n]).detach().abs().flatten(1).max(1).values
                        for n in names]).max(0).values.numpy()


def changed_units(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> torch.Tensor:
    """(E, H): hidden units whose W1 column or b1 entry changed at all."""
    return (after["W1"] != before["W1"]).any(1) | (after["b1"] != before["b1"])


def knocked_off(ctx: Context, knock: Trained, recover: Trained) -> pd.DataFrame:
    """Per member of a high-lr run and of the same run continued at lr / 10 (`recover`, whose
    first steps must be `knock`'s): diverged or not, the share of hidden units that never fire
    on the training split after the high-lr phase, and the share of those firing again after
    the recovery; NaN for diverged members."""
    phase = knock.losses.shape[0]
    if not torch.equal(knock.losses.nan_to_num(), recover.losses[:phase].nan_to_num()):
        raise RuntimeError("the recovery run does not start as the high-lr run: cannot pair them")
    diverged = ~torch.isfinite(recover.losses).all(0).numpy()
    contexts = split_counts(ctx)[0]
    dead, after = never_positive(knock.model, contexts), never_positive(recover.model, contexts)
    revived = ((dead & ~after).sum(1) / dead.sum(1)).numpy()
    return knock.members.assign(diverged=diverged,
                                dead=np.where(diverged, np.nan, dead.double().mean(1).numpy()),
                                revived=np.where(diverged, np.nan, revived))


def rows_at(table: pd.DataFrame, **condition: float) -> pd.DataFrame:
    """The rows whose columns equal the given numbers."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in condition.items():
        mask &= np.isclose(table[column], value)
    return table[mask]


def distinct_units(w1: torch.Tensor) -> np.ndarray:
    """How many different hidden units (W1 columns) each member (E, fan_in, H) has."""
    return np.array([torch.unique(member.T, dim=0).shape[0] for member in w1.detach()])


# --- figures ------------------------------------------------------------------------------------


def panel(ax: Axes, frame: pd.DataFrame, x: str, y: str, title: str, ylabel: str,
          hue: str | None = None, reference: tuple[float, str] | None = None,
          **settings: Any) -> None:
    """One panel of categories (mean, 95% CI over seeds, every seed) with an optional labelled
    reference line for the source's value."""
    figures.points(ax, frame, x=x, y=y, hue=hue)
    if reference is not None:
        figures.reference(ax, *reference)
    ax.set(title=title, ylabel=ylabel, **{"xlabel": "", **settings})
    figures.legend(ax)


def uniform_line(ax: Axes, vocab: int = VOCAB_SIZE) -> None:
    """The loss of uniform predictions, ln V, as a labelled line."""
    ax.axhline(math.log(vocab), color="C3", linewidth=1,
               label=f"uniform: ln {vocab} = {math.log(vocab):.3f}")


def plain_log_axis(ax: Axes, axis: str = "y") -> None:
    """A log axis labelled with plain numbers at 1, 2, 5 x 10^k (losses span decades here)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())


def long_form(table: pd.DataFrame, columns: dict[str, str], value: str,
              keep: tuple[str, ...] = ("seed",)) -> pd.DataFrame:
    """Columns of a per-seed table stacked into one `value` column, each row named in "what" by
    `columns`, for figures.points or figures.lines."""
    return table.melt(id_vars=list(keep), value_vars=list(columns), var_name="what",
                      value_name=value).replace({"what": columns})
