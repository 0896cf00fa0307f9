"""misc: evaluation under torch.no_grad (L:13-15) and samples against the bigram's (L:17)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Above, Exact, NeedsSteps, Negligible
from ablations.context import LECTURE_STEPS, Context
from ablations.experiments.bigram import Judge, bigram_probs, draw_names
from ablations.experiments.nograd import graph_bytes, peak_bytes, predicted_graph_bytes, seconds
from ablations.experiments.runs import Trained, mlp_run
from ablations.measurement import NUMERICS, Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules
from makemore.data import split_words
from makemore.models import MLP_CONFIGS, mlp
from makemore.modules import Streams

# --- misc.no-grad -------------------------------------------------------------------------------


@measures(time_ratio="x", peak_ratio="x", graph_mb="MB", graph_bytes_error="bytes",
          graph_bytes_no_grad="bytes")
def measure_no_grad(ctx: Context, split: str, rounds: int) -> Measurement:
    """The lecture's MLP (one init per seed: time and bytes depend on the shapes, not on the
    values) evaluated on a whole split with and without autograd. Bytes are exact counts. Per
    seed, `rounds` rounds of one evaluation in each mode, alternating which runs first, after a
    warm-up; each mode's time is its median (a shared machine's pauses hit single rounds)."""
    data = ctx.splits().split(split)
    config = MLP_CONFIGS["original"]
    rows = []
    for seed in ctx.seeds:
        params = [p[0].detach().requires_grad_() for p in mlp(Streams([seed]), config).parameters()]
        seconds(params, data, True)
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(rounds):
            for grad in ((True, False) if r % 2 else (False, True)):
                times[grad].append(seconds(params, data, grad))
        rows.append({"seed": seed, "s_grad": np.median(times[True]),
                     "s_no_grad": np.median(times[False])})
    table = pd.DataFrame(rows)
    predicted = predicted_graph_bytes(config, len(data[1]))
    saved = graph_bytes(params, data, True)
    peak = {grad: peak_bytes(params, data, grad) for grad in (True, False)}
    table = table.assign(time_ratio=table.s_grad / table.s_no_grad, peak_mb_grad=peak[True] / 1e6,
                         peak_mb_no_grad=peak[False] / 1e6, graph_mb=saved / 1e6)
    metrics = {
        "time_ratio": Metric.of(table.time_ratio, "x", kind=NUMERICS),
        "peak_ratio": Metric.exact(peak[True] / peak[False], "x", kind=NUMERICS),
        "graph_mb": Metric.exact(saved / 1e6, "MB", kind=NUMERICS),
        "graph_bytes_error": Metric.exact(saved - predicted, "bytes", kind=NUMERICS),
        "graph_bytes_no_grad": Metric.exact(graph_bytes(params, data, False), "bytes",
                                            kind=NUMERICS),
    }
    return Measurement(table, metrics, {"graph_mb": predicted / 1e6})


def figure_no_grad(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    t = m.table.iloc[0]
    bars = {"peak\nautograd": t.peak_mb_grad, "peak\nno_grad": t.peak_mb_no_grad,
            "graph\nautograd": t.graph_mb, "graph\nno_grad": 0.0}
    colours = figures.palette(2) * 2
    left.bar(range(len(bars)), list(bars.values()), color=colours)
    for x, value in enumerate(bars.values()):
        left.text(x, value, f"{value:.0f}", ha="center", va="bottom", fontsize=8)
    left.set_xticks(range(len(bars)), list(bars), fontsize=8)
    left.set(title="Memory of one evaluation (exact)", ylabel="MB")
    figures.points(right, m.table.assign(evaluation="whole split"), x="evaluation",
                   y="time_ratio")
    figures.reference(right, 2.0, "'much'")
    right.axhline(1.0, color="0.5", linestyle=":", label="no difference")
    right.set(title="Time with / without autograd", xlabel="", ylabel="time ratio",
              ylim=(0, None))
    figures.legend(right)
    figures.caption(fig, m.metrics["time_ratio"].n, "left: exact byte counts; the whole "
                    "training split, the lecture's MLP")


register(Claim(
    id="misc.no-grad",
    statement="torch.no_grad skips the graph bookkeeping, so evaluation is 'much more efficient'",
    source=Source("L", "13-15"),
    measure=measure_no_grad,
    grid={"split": "train", "rounds": 3},
    rules=Rules(
        reproduced=(Exact("graph_bytes_no_grad", "exactly zero"),
                    Exact("graph_bytes_error", "exactly zero"),
                    Above("time_ratio", "'much' as a factor of 2"),
                    Above("peak_ratio", "'much' as a factor of 2")),
        partly=(Exact("graph_bytes_no_grad", "exactly zero"),
                Exact("graph_bytes_error", "exactly zero"),
                Above("peak_ratio", "'much' as a factor of 2")),
        partly_means="no_grad drops the graph and much of the peak memory ({peak_ratio}), but "
                     "the evaluation is not much faster ({time_ratio})",
        instead="no_grad drops the graph, which with autograd holds {graph_mb} until the loss "
                "is freed; with / without it, a whole-split evaluation takes {time_ratio} the "
                "time and {peak_ratio} the peak memory",
    ),
    headline="time_ratio",
    finding="With autograd the graph holds {graph_mb:mean} MB, none under no_grad; yet a "
            "whole-split evaluation takes {time_ratio:mean}x the time and {peak_ratio:mean}x "
            "the peak memory.",
    figure=figure_no_grad,
))


# --- misc.samples -------------------------------------------------------------------------------

JUDGE_ORDER = 4  # context 3, the lecture's block size; the order whose held-out fit is best


@measures(closer_factor="x", excess_mlp="nats/char", excess_bigram="nats/char",
          real_share_mlp="share", real_share_bigram="share", val_mlp="nats")
def measure_samples(ctx: Context, runs: dict[str, Trained], judge_order: int) -> Measurement:
    """Names sampled from the trained MLP (member seed + 10, as the notebook samples) and from
    the bigram model counted on the same training split (same generator seed), scored by a judge
    fitted on the test split against the dev split's real names; and the share of samples that
    are names of the data set."""
    splits = ctx.splits()
    train, dev, test = split_words(splits.words)
    judge, known, probs = Judge(test, judge_order), set(splits.words), bigram_probs(train)
    real = judge.nll(dev)
    model = runs["mlp"].model.eval()
    members = len(ctx.seeds)
    rows, examples = [], {}
    with torch.no_grad():
        for member, seed in enumerate(ctx.seeds):
            def mlp_probs(window: torch.Tensor, e: int = member) -> torch.Tensor:
                return model(window.expand(members, -1, -1))[e].softmax(-1)

            for source, next_probs, context in (("MLP", mlp_probs, 3),
                                                ("bigram", lambda w: probs[w[:, -1]], 1)):
                names = draw_names(next_probs, ctx.profile.samples, context, seed + 10)
                examples.setdefault(source, names[:8])
                rows.append({"seed": seed, "source": source, "excess": judge.nll(names) - real,
                             "real_share": np.mean([n in known for n in names])})
    table = pd.DataFrame(rows)

    def of(source: str, column: str, unit: str) -> Metric:
        return Metric.of(table.loc[table.source == source, column], unit)

    mlp_excess, bigram_excess = of("MLP", "excess", "nats/char"), of("bigram", "excess",
                                                                        "nats/char")
    factor = np.abs(bigram_excess.samples) / np.abs(mlp_excess.samples)
    metrics = {"closer_factor": Metric.of(factor, "x"), "excess_mlp": mlp_excess,
               "excess_bigram": bigram_excess,
               "real_share_mlp": of("MLP", "real_share", "share"),
               "real_share_bigram": of("bigram", "real_share", "share"),
               "val_mlp": Metric.of(runs["mlp"].val_loss, "nats")}
    return Measurement(table.assign(nll=table.excess + real), metrics,
                       frames={"examples": pd.DataFrame(examples), "real": pd.DataFrame(
                           {"nll": [real]})}, steps=runs["mlp"].steps)


def figure_samples(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    figures.points(left, m.table, x="source", y="nll")
    figures.reference(left, float(m.frames["real"].nll.iloc[0]), "real names (dev split)")
    left.set(title="How name-like: held-out 4-gram NLL", xlabel="samples from",
             ylabel="nats per character")
    figures.points(right, m.table, x="source", y="real_share")
    right.set(title="Samples that are real names", xlabel="samples from",
              ylabel="share of samples", ylim=(0, None))
    examples = m.frames["examples"]
    right.text(0.02, 0.02, "\n".join(f"{c}: {', '.join(examples[c][:5])}" for c in examples),
               transform=right.transAxes, fontsize=6.5, va="bottom")
    figures.legend(left)
    figures.caption(fig, m.metrics["closer_factor"].n)


register(Claim(
    id="misc.samples",
    statement="After training, the sampled words look much nicer, still not fully name-like, but "
              "much better than the bigram model's",
    source=Source("L", "17"),
    measure=measure_samples,
    runs={"mlp": mlp_run("original")},
    grid={"judge_order": JUDGE_ORDER},
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_STEPS), Above("closer_factor", "'much' as a factor of 2"),
                    Negligible("excess_mlp", "practically identical loss", negate=True)),
        partly=(NeedsSteps(LECTURE_STEPS), Above("closer_factor", "'much' as a factor of 2")),
        partly_means="the MLP's samples are much closer to real names than the bigram's "
                     "({closer_factor}), and as name-like as real names under the judge "
                     "({excess_mlp} from them)",
        instead="under the held-out judge the MLP's samples lie {excess_mlp} from real names, "
                "the bigram's {excess_bigram} ({closer_factor} closer)",
    ),
    headline="closer_factor",
    finding="Under a held-out 4-gram, MLP samples lie {excess_mlp:mean} nats/char from real "
            "names, the bigram's {excess_bigram:mean}; {real_share_mlp:pct} vs "
            "{real_share_bigram:pct} are real names.",
    figure=figure_samples,
))
