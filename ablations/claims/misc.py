"""misc: evaluation under torch.no_grad (L:13-15) and samples before and after training (L:17)."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ablations.context import Context
from ablations.experiments import mlp_run
from ablations.plotting import reference
from ablations.registry import Claim, Judgement, Measurement, Metric, Source, Verdict, register
from ablations.verdicts import paired_difference, says
from makemore.data import STOI, split_words
from makemore.models import MLP_CONFIGS, MLPConfig, mlp
from makemore.modules import Module, Streams, member_cross_entropy
from makemore.train import evaluate, sample

# --- misc.no-grad ------------------------------------------------------------------------------

TIMING_REPEATS = 5
MB = 1e6


def whole_split_loss(model: Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The lecture's split_loss: one forward pass over the whole split, (E,) losses."""
    x, y = data
    members = model.parameters()[0].shape[0]
    logits = model(x.unsqueeze(0).expand(members, *x.shape))
    return member_cross_entropy(logits, y.unsqueeze(0).expand(members, -1))


def graph_bytes(model: Module, data: tuple[torch.Tensor, torch.Tensor],
                grad: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """Evaluate with autograd on or off and count what the graph saves for backward: unique
    storages (a tensor saved by two nodes counts once), and those that nothing but the graph
    holds (not a parameter, not the data, not a layer's kept `.out`)."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.set_grad_enabled(grad), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = whole_split_loss(model, data)
    held = [*model.parameters(), *data,
            *(m.out for m in model.modules() if isinstance(getattr(m, "out", None), torch.Tensor))]
    elsewhere = {t.untyped_storage().data_ptr() for t in held}
    return loss.detach(), {
        "saved_bytes": float(sum(saved.values())),
        "graph_only_bytes": float(sum(n for p, n in saved.items() if p not in elsewhere)),
        "saved_storages": float(len(saved)),
    }


def predicted_bytes(examples: int, config: MLPConfig, members: int = 1) -> dict[str, float]:
    """What the MLP's backward needs, from its shapes: per example and member the embedding's
    indices (int64, made by adding member offsets), the concatenated embedding (input of W1),
    the tanh output (saved by tanh and by the W2 product) and the log-softmax output; the
    targets (int64: the data's own storage, unless several members and examples make the
    expanded targets a copy); then W1, W2 and cross-entropy's scalar total weight."""
    per_example = 8 * config.block_size + 4 * (config.fan_in + config.n_hidden
                                               + config.vocab_size)
    params = 4 * (config.fan_in * config.n_hidden + config.n_hidden * config.vocab_size)
    copied = members > 1 and examples > 1
    targets = 8 * examples * (members if copied else 1)
    graph_only = members * examples * (8 * config.block_size + 4 * config.vocab_size)
    return {"saved_bytes": members * (examples * per_example + params) + targets + 4,
            "graph_only_bytes": graph_only + (targets if copied else 0) + 4}


def time_evaluation(model: Module, data: tuple[torch.Tensor, torch.Tensor],
                    repeats: int) -> tuple[float, float]:
    """Median seconds of a whole-split evaluation with autograd on and off; the two alternate
    (and swap order every repeat) so that drifts of a shared machine hit both alike."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for repeat in range(repeats + 1):  # the first round warms up and is dropped
        for grad in ((True, False) if repeat % 2 else (False, True)):
            start = time.perf_counter()
            with torch.set_grad_enabled(grad):
                whole_split_loss(model, data)
            if repeat:
                times[grad].append(time.perf_counter() - start)
    return statistics.median(times[True]), statistics.median(times[False])


def measure_no_grad(ctx: Context) -> Measurement:
    """The notebook's network (the 'kaiming' MLP, one per seed) evaluated on the whole dev split
    in one pass, as the lecture's split_loss does, with and without torch.no_grad."""
    data = ctx.splits().dev
    rows = []
    for seed in ctx.seeds:
        model = mlp(Streams([seed]), "kaiming").to(ctx.device)
        loss_grad, with_grad = graph_bytes(model, data, grad=True)
        loss_plain, without = graph_bytes(model, data, grad=False)
        t_grad, t_plain = time_evaluation(model, data, TIMING_REPEATS)
        rows.append({"seed": seed, "examples": len(data[1]), "repeats": TIMING_REPEATS,
                     **{f"{k}_grad": v for k, v in with_grad.items()},
                     **{f"{k}_no_grad": v for k, v in without.items()},
                     "loss_difference": float((loss_grad - loss_plain).abs().max()),
                     "median_s_grad": t_grad, "median_s_no_grad": t_plain})
    table = pd.DataFrame(rows)
    table["time_ratio"] = table.median_s_grad / table.median_s_no_grad
    first = table.iloc[0]
    expected = predicted_bytes(int(first.examples), MLP_CONFIGS["kaiming"])
    train = predicted_bytes(len(ctx.splits().train[1]), MLP_CONFIGS["kaiming"])
    metrics = {
        "saved_mb_grad": Metric.exact(first.saved_bytes_grad / MB, "MB"),
        "saved_mb_no_grad": Metric.exact(table.saved_bytes_no_grad.max() / MB, "MB"),
        "graph_only_mb_grad": Metric.exact(first.graph_only_bytes_grad / MB, "MB"),
        "bytes_vary_over_seeds": Metric.exact(table.saved_bytes_grad.nunique() - 1),
        "loss_difference": Metric.exact(table.loss_difference.max(), "nats"),
    }  # wall-clock times stay in the table and the evidence: no machine reproduces them
    predictions = {"saved_mb_grad": expected["saved_bytes"] / MB, "saved_mb_no_grad": 0.0,
                   "graph_only_mb_grad": expected["graph_only_bytes"] / MB,
                   "saved_mb_grad_train_split": train["saved_bytes"] / MB,
                   "loss_difference": 0.0}
    return Measurement(table, metrics, predictions)


def judge_no_grad(m: Measurement, ctx: Context) -> Judgement:
    saved, plain = m.metrics["saved_mb_grad"], m.metrics["saved_mb_no_grad"]
    only = m.metrics["graph_only_mb_grad"]
    exact = (math.isclose(saved.mean, m.predictions["saved_mb_grad"], rel_tol=1e-12)
             and math.isclose(only.mean, m.predictions["graph_only_mb_grad"], rel_tol=1e-12))
    same_loss = m.metrics["loss_difference"].mean == 0.0
    skips = plain.mean == 0.0 and saved.mean > 0 and only.mean > 0 and same_loss
    examples = int(m.table.examples.iloc[0])
    ratio = Metric.of(m.table.time_ratio, "x")
    ms_grad = Metric.of(1e3 * m.table.median_s_grad, "ms")
    ms_no_grad = Metric.of(1e3 * m.table.median_s_no_grad, "ms")
    evidence = (
        f"whole dev split ({examples:,} examples, one pass): with autograd the graph saves "
        f"{saved.mean:.2f} MB for backward ({'exactly' if exact else 'not'} the "
        f"{m.predictions['saved_mb_grad']:.2f} MB the shapes predict; "
        f"{m.predictions['saved_mb_grad_train_split']:.1f} MB on the train split), of which "
        f"{only.mean:.2f} MB (log-softmax output, index tensor) nothing else holds; under "
        f"no_grad it saves {plain.mean:g} MB, and the losses agree to "
        f"{m.metrics['loss_difference'].mean:g}. Time, median of {TIMING_REPEATS} alternating "
        f"runs per seed on a shared 2-core machine (not judged): "
        f"{says('with/without ratio', ratio)} ({ms_grad} vs {ms_no_grad}).")
    return Judgement(
        Verdict.REPRODUCED if skips else Verdict.NOT_REPRODUCED, evidence,
        holds_instead="" if skips else "no_grad did not remove the saved tensors",
        tolerance="exact byte counts (deterministic); the time ratio is reported, not judged: "
        "a shared machine's timing noise would make any threshold fragile")


def plot_no_grad(m: Measurement, fig: Figure) -> None:
    fig.set_size_inches(12, 4.5)
    left, right = fig.subplots(1, 2)
    t = m.table
    labels = ["with autograd", "torch.no_grad"]
    left.bar([0, 1], [t.saved_bytes_grad.iloc[0] / MB, t.saved_bytes_no_grad.iloc[0] / MB],
             color=["C0", "C1"], label="saved for backward")
    left.bar([0, 1], [t.graph_only_bytes_grad.iloc[0] / MB,
                      t.graph_only_bytes_no_grad.iloc[0] / MB],
             color="C3", width=0.5, label="held only by the graph")
    left.text(1, 0.5, f"{t.saved_bytes_no_grad.iloc[0] / MB:g} MB", ha="center")
    left.set_xticks([0, 1], labels)
    left.set(title="Memory the graph keeps, whole dev split", ylabel="MB (exact count)")
    left.legend()
    right.scatter(np.zeros(len(t)), 1e3 * t.median_s_grad, label="seeds")
    right.scatter(np.ones(len(t)), 1e3 * t.median_s_no_grad)
    for _, row in t.iterrows():
        right.plot([0, 1], [1e3 * row.median_s_grad, 1e3 * row.median_s_no_grad], color="0.6")
    right.set_xticks([0, 1], labels)
    right.set(title=f"Evaluation time (median of {TIMING_REPEATS}; shared machine)",
              ylabel="ms per whole-split evaluation")
    right.legend()


register(Claim(
    id="misc.no-grad",
    statement="torch.no_grad skips the graph bookkeeping, so evaluation is cheaper",
    source=Source("L", "13-15"),
    measure=measure_no_grad,
    judge=judge_no_grad,
    plot=plot_no_grad,
))


# --- misc.samples ------------------------------------------------------------------------------

SAMPLE_OFFSET = 10  # the notebook samples with a generator seeded NOTEBOOK_SEED + 10
BLOCK_SIZE = 3
MEASURES = ("bigram_nll", "train_share", "length_tvd")  # lower, higher, lower is more name-like


def char_pairs(words: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (previous, next) character index pair of the words, '.' at both ends."""
    firsts: list[int] = []
    seconds: list[int] = []
    for word in words:
        chars = [0, *(STOI[c] for c in word), 0]
        firsts += chars[:-1]
        seconds += chars[1:]
    return torch.tensor(firsts), torch.tensor(seconds)


def bigram_log_probs(words: Sequence[str]) -> torch.Tensor:
    """log P(next | previous) from the words' character pairs, add-one smoothed as in makemore
    part 1: (27, 27) float64."""
    first, second = char_pairs(words)
    vocab = len(STOI)
    counts = torch.bincount(first * vocab + second, minlength=vocab * vocab).double() + 1
    counts = counts.view(vocab, vocab)
    return (counts / counts.sum(1, keepdim=True)).log()


def bigram_nll(names: Sequence[str], log_probs: torch.Tensor) -> float:
    """Mean negative log-likelihood per character (the end '.' included), nats."""
    first, second = char_pairs(names)
    return float(-log_probs[first, second].mean())


def length_tvd(names: Sequence[str], reference_lengths: Counter[int]) -> float:
    """Total variation distance between the names' length distribution and the reference's."""
    mine = Counter(len(n) for n in names)
    n_ref, n_mine = sum(reference_lengths.values()), len(names)
    keys = set(mine) | set(reference_lengths)
    return 0.5 * sum(abs(mine[k] / n_mine - reference_lengths[k] / n_ref) for k in keys)


def sample_quality(names: Sequence[str], train_words: Sequence[str],
                   log_probs: torch.Tensor) -> dict[str, float]:
    known = set(train_words)
    return {"bigram_nll": bigram_nll(names, log_probs),
            "train_share": sum(n in known for n in names) / len(names),
            "length_tvd": length_tvd(names, Counter(len(w) for w in train_words)),
            "mean_length": float(np.mean([len(n) for n in names]))}


def measure_samples(ctx: Context) -> Measurement:
    """ctx.profile.samples names per seed from the 'kaiming' MLP before training (the same
    init, 0 steps) and after the shared training run, sampled with the member's seed + 10 (the
    notebook's generator for member 0; one stream per member keeps the seeds independent); scored
    by a bigram fitted on the training split, the share that are training names, and the length
    distribution; the dev names are the reference."""
    splits = ctx.splits(BLOCK_SIZE)
    train_words, dev_words, _ = split_words(splits.words)
    log_probs = bigram_log_probs(train_words)
    trained = mlp_run(ctx, "kaiming")
    untrained = mlp(Streams(ctx.seeds), "kaiming").to(ctx.device)
    untrained_val = evaluate(untrained, splits.dev).numpy()
    rows, samples = [], []
    for state, model, val in (("untrained", untrained, untrained_val),
                              ("trained", trained.model, trained.val_loss)):
        for member, seed in enumerate(ctx.seeds):
            names = sample(model, ctx.profile.samples, BLOCK_SIZE, seed + SAMPLE_OFFSET,
                           member=member)
            steps = 0 if state == "untrained" else int(trained.history.losses.shape[0])
            rows.append({"state": state, "seed": seed, "steps": steps,
                         "model_dev_loss": float(val[member]),
                         **sample_quality(names, train_words, log_probs)})
            samples += [{"state": state, "seed": seed, "name": n} for n in names]
    table = pd.DataFrame(rows)
    data = sample_quality(dev_words, train_words, log_probs)
    table = pd.concat([table, pd.DataFrame([{"state": "dev names", **data}])], ignore_index=True)
    metrics: dict[str, Metric] = {}
    for measure in (*MEASURES, "mean_length", "model_dev_loss"):
        for state in ("untrained", "trained"):
            metrics[f"{measure}_{state}"] = Metric.of(table.loc[table.state == state, measure])
    for measure in MEASURES:
        before = table.loc[table.state == "untrained", measure].to_numpy()
        after = table.loc[table.state == "trained", measure].to_numpy()
        metrics[f"{measure}_gap_closed"] = Metric.of((before - after) / (before - data[measure]),
                                                     "share of the gap")
        metrics[f"{measure}_change"] = paired_difference(after, before)
    predictions = {f"{k}_data": v for k, v in data.items()}
    predictions["uniform_nll"] = math.log(len(STOI))
    frames = {"samples": pd.DataFrame(samples),
              "dev_lengths": pd.DataFrame({"length": [len(w) for w in dev_words]})}
    return Measurement(table, metrics, predictions, frames=frames,
                       steps=int(trained.history.losses.shape[0]))


def judge_samples(m: Measurement, ctx: Context) -> Judgement:
    closed = {k: m.metrics[f"{k}_gap_closed"] for k in MEASURES}
    better = all(m.metrics[f"{k}_change"].ci_high < 0 if k != "train_share"
                 else m.metrics[f"{k}_change"].ci_low > 0 for k in MEASURES)
    far = all(c.ci_low > 0.5 for c in closed.values())
    examples = m.frames["samples"]
    shown = examples[(examples.state == "trained") & (examples.seed == ctx.seeds[0])].name[:8]
    raw = examples[(examples.state == "untrained") & (examples.seed == ctx.seeds[0])].name[:3]
    p, met = m.predictions, m.metrics
    run = "the lecture's length" if m.steps >= 200_000 else "short; the lecture trains 200,000"
    evidence = (
        f"after {m.steps:,} steps ({run}), {ctx.profile.samples} samples per seed: bigram NLL "
        f"{met['bigram_nll_trained']} nats/char vs {met['bigram_nll_untrained']} untrained (dev "
        f"names {p['bigram_nll_data']:.3f}, uniform {p['uniform_nll']:.3f}); training names "
        f"{met['train_share_trained']} vs {met['train_share_untrained']} (dev names "
        f"{p['train_share_data']:.3f}); length TVD to the data {met['length_tvd_trained']} vs "
        f"{met['length_tvd_untrained']} (mean length {met['mean_length_trained'].mean:.1f} vs "
        f"{met['mean_length_untrained'].mean:.1f}; data {p['mean_length_data']:.1f}). Gap "
        "to real names closed: " + ", ".join(f"{k} {c}" for k, c in closed.items())
        + f". The model's dev loss {m.metrics['model_dev_loss_trained']} against the bigram's "
        f"{p['bigram_nll_data']:.3f}. Seed {ctx.seeds[0]}: {', '.join(shown)} (untrained: "
        f"{', '.join(raw)}).")
    if better and far:
        verdict, instead = Verdict.REPRODUCED, ""
    elif better:
        verdict = Verdict.PARTLY
        instead = "training improves every measure but closes less than half the gap on: " + \
            ", ".join(k for k, c in closed.items() if c.ci_low <= 0.5)
    else:
        verdict, instead = Verdict.NOT_REPRODUCED, "trained samples are not better on every measure"
    return Judgement(verdict, evidence, holds_instead=instead,
                     tolerance="'far more like names': each measure improves (paired CI excludes "
                     "0) and training closes over half the distance from untrained samples to "
                     "real names (CI low > 0.5)")


def plot_samples(m: Measurement, fig: Figure) -> None:
    fig.set_size_inches(15, 4.5)
    axes = fig.subplots(1, 3)
    t = m.table[m.table.state != "dev names"]
    titles = {"bigram_nll": "Bigram NLL of the samples (nats/char)",
              "train_share": "Share of samples that are training names"}
    for ax, measure in zip(axes[:2], titles, strict=True):
        for position, state in enumerate(("untrained", "trained")):
            values = t.loc[t.state == state, measure]
            ax.scatter(np.full(len(values), position), values, alpha=0.7, label=f"{state} (seeds)")
        reference(ax, m.predictions[f"{measure}_data"], "dev names")
        ax.set_xticks([0, 1], ["untrained", "trained"])
        ax.set(title=titles[measure], xlabel="model", ylabel=measure.replace("_", " "))
        ax.legend(fontsize=8)
    names = m.frames["samples"]
    bins = np.arange(0, 52) - 0.5
    for state in ("untrained", "trained"):
        lengths = names.loc[names.state == state, "name"].str.len()
        axes[2].hist(lengths, bins=bins, density=True, histtype="step", linewidth=1.5, label=state)
    axes[2].hist(m.frames["dev_lengths"].length, bins=bins, density=True, histtype="step",
                 linewidth=1.5, color="0.2", linestyle="--", label="dev names")
    axes[2].set(title="Sample lengths (pooled over seeds)", xlabel="length (characters)",
                ylabel="share of samples")
    axes[2].legend(fontsize=8)


register(Claim(
    id="misc.samples",
    statement="After training, sampled words look far more like names than before",
    source=Source("L", "17"),
    measure=measure_samples,
    judge=judge_samples,
    plot=plot_samples,
))
