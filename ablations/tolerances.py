"""Named tolerances: one entry per quantity, fixed before any run, read by every claim that
judges that quantity, so that two claims cannot judge one quantity two ways.

Two sorts:
- a `Reading` says how a number the source states is to be read (truncated or rounded to the
  digits it printed, "about", an order of magnitude) and whether it was read off one run;
- a `Scale` is a size that makes an effect negligible, or a bound, with the reason for its size.

Every entry carries its reason: the source's wording (with its line) or the mathematics. A change
to an entry changes the pre-registered rules of every claim that names it, and the regression
check reports it as RULE CHANGED.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

INTERVALS = ("truncated", "rounded", "about", "magnitude")


@dataclass(frozen=True)
class Reading:
    """A number of the source and how it is read.

    interval: "truncated" to `digits` decimals ([v, v + 10^-digits) away from zero), "rounded"
    to `digits` decimals (v +- 0.5 * 10^-digits), "about" (v +- relative * |v|), "magnitude"
    (v / factor .. v * factor). single_run: the source read it off one training run or one draw,
    so it is compared with where single runs fall, not with the mean over seeds.
    """

    value: float
    interval: str
    why: str
    digits: int = 2
    relative: float = 0.0
    factor: float = math.sqrt(10.0)
    single_run: bool = False

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            raise ValueError(f"interval must be one of {INTERVALS}, got {self.interval!r}")
        if self.interval == "about" and not self.relative > 0:
            raise ValueError("an 'about' reading needs relative > 0")
        if self.interval == "magnitude" and not (self.factor > 1 and self.value > 0):
            raise ValueError("a magnitude reading needs factor > 1 and a positive value")

    def bounds(self) -> tuple[float, float]:
        v = self.value
        if self.interval == "truncated":
            step = 10.0**-self.digits
            return (v, v + step) if v >= 0 else (v - step, v)
        if self.interval == "rounded":
            half = 0.5 * 10.0**-self.digits
            return v - half, v + half
        if self.interval == "about":
            return v - self.relative * abs(v), v + self.relative * abs(v)
        return v / self.factor, v * self.factor

    def describe(self) -> str:
        lo, hi = self.bounds()
        how = {
            "truncated": f"truncated to {self.digits} decimals",
            "rounded": f"rounded to {self.digits} decimals",
            "about": f"'about', +-{self.relative:.0%}",
            "magnitude": f"an order of magnitude, x/{self.factor:.3g}",
        }[self.interval]
        run = ", read off one run" if self.single_run else ""
        return f"{self.value:g} ({how}{run}: [{lo:.6g}, {hi:.6g}])"

    def params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scale:
    """A size with its unit and reason: the edge of "negligible", or a bound."""

    value: float
    unit: str
    why: str

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.value:g}{unit}"

    def params(self) -> dict[str, Any]:
        return asdict(self)


Tolerance = Reading | Scale

TOLERANCES: dict[str, Tolerance] = {
    # --- losses --------------------------------------------------------------------------------
    "ln 27 as 3.29": Reading(
        3.29, "truncated",
        "L:23 writes -ln(1/27) = 3.2958 as 3.29: the value cut to two decimals"),
    "the lecture's val loss 2.10": Reading(
        2.10, "rounded", single_run=True,
        why="L:83 and L:121 give the val loss of one 200,000-step run to two decimals"),
    "the lecture's val loss 2.13": Reading(
        2.13, "rounded", single_run=True,
        why="L:83 gives the val loss of one run after the output fix to two decimals"),
    "the lecture's val loss 2.17": Reading(
        2.17, "rounded", single_run=True,
        why="L:83 gives the val loss of one run from the plain-randn init to two decimals"),
    "practically identical loss": Scale(
        0.005, "nats",
        "the lecture prints losses to two decimals and calls runs that agree there the same "
        "(L:121, L:141, L:176): a difference under half the last printed digit cannot be seen"),
    "a loss gain worth the name": Scale(
        0.005, "nats",
        "the smallest difference the lecture's two-decimal printouts show (the mirror of "
        "'practically identical loss')"),
    # --- initialisation ------------------------------------------------------------------------
    "kaiming std 0.3": Reading(
        0.3, "rounded", digits=1,
        why="L:116 gives (5/3)/sqrt(30) = 0.3043 as 0.3, one decimal"),
    # --- numerics ------------------------------------------------------------------------------
    "rounding of a few operations": Scale(
        4.0, "ulps",
        "a correctly rounded operation is within 0.5 ulp; a few chained operations within a "
        "few ulps"),
    "exactly zero": Scale(
        0.0, "",
        "a count, an initial value, a bitwise comparison or an identity of floating-point "
        "arithmetic (a product with an exact 0; a parameter that gets no gradient stays bit for "
        "bit): any nonzero value is a difference"),
    # --- family init, tanh ----------------------------------------------------------------------
    "the lecture's step-0 loss 27": Reading(
        27.0, "truncated", digits=0, single_run=True,
        why="L:20 and L:33 give the first iteration's loss, one batch of 32 of one run, as 27; "
            "the transcript cuts its numbers (ln 27 = 3.2958 is '3.29', L:23), so 27 is "
            "[27, 28)"),
    "ln 4 as 1.38": Reading(
        1.38, "truncated",
        "L:26 gives the loss of four equal logits, ln 4 = 1.3863, as 1.38: cut to two decimals "
        "as L:23 cuts ln 27"),
    "about ln 27 at step 0": Reading(
        3.29, "about", relative=0.01, single_run=True,
        why="L:41 calls the first iteration's loss with W2 x 0.01 and b2 = 0 'close enough' to "
            "the expected 3.29 (L:23), one batch of one run, where W2 x 0.1 was only 'much "
            "closer' (L:37): read as within 1% of 3.29"),
    "+-15 read off the histogram": Reading(
        15.0, "about", relative=1 / 6, single_run=True,
        why="L:51: pre-activations 'between negative 15 and 15', read off a 50-bin histogram of "
            "the first batch (32 x 200 values) of one run whose axis ticks stand 5 apart: the "
            "edge is read to half a tick, +-2.5"),
    "+-1.5 read off the histogram": Reading(
        1.5, "about", relative=1 / 6, single_run=True,
        why="L:79: 'between -1.5 and 1.5' after W1 x 0.1, read off the same histogram of one "
            "run's first batch with ticks 0.5 apart: half a tick, +-0.25"),
    "no unit above 0.99 at W1 x 0.1": Reading(
        0.0, "rounded", digits=0, single_run=True,
        why="L:79: after W1 x 0.1 'no neurons that are saturated above 0.99' in the first batch "
            "of one run: a count of zero"),
    "no dead unit at the lecture's init": Reading(
        0.0, "rounded", digits=0, single_run=True,
        why="L:66: at the plain-randn init 'I don't see a single neuron that is all white', in "
            "one run: a count of zero"),
    "several thousand iterations": Reading(
        3000.0, "magnitude", single_run=True,
        why="L:44: the bad init spends 'probably ... the first several thousand iterations' "
            "squashing the weights: an order-of-magnitude guess about one run"),
    "more than half": Scale(
        0.5, "",
        "the lecture's 'most' (L:50 'most of the values', L:64 'a lot of this tensor'): a share "
        "above one half"),
    "a confident guess": Scale(
        -math.log(0.9), "nats",
        "L:28 'a very low loss' from giving the correct label a high probability by chance: a "
        "loss below -ln 0.9 means the label gets more than 90% of the probability"),
    # --- family kaiming, stack, diag ------------------------------------------------------------
    # Spoken numbers read off one printed std: the leading digits, cut (3.16 is spoken "three").
    "x @ W std 3": Reading(
        3.0, "truncated", digits=0, single_run=True,
        why="L:94: 'expanded to three': the std of one draw of x (1000x10) @ W (10x200), the "
            "printed value's leading digit"),
    "x @ W*5 std 15": Reading(
        15.0, "truncated", digits=0, single_run=True,
        why="L:96: 'now we're at 15': one draw, the printed value's integer part"),
    "x @ W*0.2 std 0.6": Reading(
        0.6, "truncated", digits=1, single_run=True,
        why="L:96: 'the standard deviation is 0.6': one draw, cut to the decimal spoken"),
    "x @ W/sqrt(fan_in) std 1": Reading(
        1.0, "truncated", digits=0, single_run=True,
        why="L:97: 'exactly a standard deviation of one': one draw, the printed value's integer "
            "part, read the way the lecture's other three numbers are"),
    "a draw's std within its sampling spread": Scale(
        4.5, "sd",
        "the std of one draw of n values is off its expectation by z sampling sd, the sd known in "
        "closed form (a Gaussian or uniform sample: sqrt((kurtosis - 1) / n) / 2 relative; x @ W: "
        "matmul_std_rel_sd); |z| > 4.5 has probability 7e-6 per draw, under 1% for 1,000 draws"),
    "torch gain linear 1": Reading(
        1.0, "rounded", digits=6,
        why="L:106-107: 'the gain here will be one': an exact value, compared at 6 decimals, "
            "far above float64 rounding"),
    "torch gain relu sqrt 2": Reading(
        math.sqrt(2.0), "rounded", digits=6,
        why="L:107: 'for ReLU this gain is the square root of 2': exact, compared at 6 decimals"),
    "torch gain tanh 5/3": Reading(
        5.0 / 3.0, "rounded", digits=6,
        why="L:107: 'in the case of tanh the advised gain is 5 over 3': exact, compared at 6 "
            "decimals"),
    "nn.Linear gain 1": Reading(
        1.0, "rounded", digits=1,
        why="L:211: 'the gain is just one ... exactly 1/sqrt(fan-in)': the std of the default "
            "weights times sqrt(fan_in), a spoken exact value read to one decimal"),
    "nn.Linear bound 1/sqrt(fan_in)": Reading(
        1.0, "rounded", digits=3,
        why="L:211: 'they draw uniformly from -sqrt(K) to sqrt(K)', K = 1/fan_in: the largest "
            "|w| x sqrt(fan_in) of 10^4 or more uniform draws is within 1e-3 of the bound"),
    "finite-width drift of log2 variance": Scale(
        0.015, "bits/layer",
        "a layer of width n multiplies the variance by a ratio r of mean 1 (the mean field) and "
        "variance at most 5/n (ReLU; 2/n linear), so E[log2 r] = -Var/(2 ln 2) lies within "
        "2.5/(n ln 2) = 0.014 bits of 0 at n = 256 (Hanin & Nica 2019; finite_width_drift)"),
    "mean field at width 100": Scale(
        0.01, "",
        "the recursion is exact for infinitely wide layers; at width n the variance is off by "
        "O(1/n), the std by about 1/(2n) relative: 0.003 for a std of 0.65 at n = 100 (3x "
        "that allowed beyond the seeds' standard errors)"),
    "tanh std about 0.65": Reading(
        0.65, "rounded", digits=2, single_run=True,
        why="L:281: 'stabilize at around a standard deviation of about 0.65': a printed std to "
            "two decimals, read off one network at init"),
    "saturation roughly 5%": Reading(
        5.0, "rounded", digits=0, single_run=True,
        why="L:281, L:290: 'roughly five percent' saturated (|t| > 0.97): a printed percentage "
            "to its one digit, read off one network at init"),
    "saturation comes to zero": Reading(
        0.0, "rounded", digits=2, single_run=True,
        why="L:284-285: with gain 1 'the saturation comes to zero': the notebook prints the "
            "saturation in percent to two decimals, so zero reads 0.00%"),
    "gradients about equal across layers": Scale(
        0.5, "bits",
        "L:292: all layers have 'roughly the same gradient, not shrinking or exploding'; the "
        "lecture calls its BN net's 2.6e-3 falling to 1.95e-3 (a factor 1.33) good (L:355, "
        "notebook): within a factor sqrt 2 of each other (0.5 bit of std), version 1's rule"),
    "linear stack gain 1": Reading(
        1.0, "rounded", digits=1,
        why="L:297, L:301: 'the correct gain here is one', 'exactly one', against 1.667: a "
            "spoken gain, read to one decimal"),
    "about 46,000 parameters": Reading(
        46_000, "truncated", digits=-3,
        why="L:273: 'in total, we have 46,000 parameters': the printed count cut to the thousand"),
    "about 11,000 parameters": Reading(
        11_000, "truncated", digits=-3,
        why="L:10: 'the same neural net with 11,000 parameters': the count cut to the thousand"),
    "the notebook's 12,097 parameters": Reading(
        12_097, "rounded", digits=0,
        why="ref/notebook-facts.md: the MLP with BatchNorm, as the notebook counts it"),
    "the notebook's 47,024 parameters": Reading(
        47_024, "rounded", digits=0,
        why="ref/notebook-facts.md: the deep network with BatchNorm, as the notebook counts it"),
    "collapse within rounding": Scale(
        2.0, "rounding bounds",
        "a chain of dot products of total length n has error at most n u |x||W1|..|Wk| "
        "(Higham); the layer-by-layer map and the collapsed product each carry one such bound"),
    "gradients 1000x smaller than the data": Reading(
        1e-3, "magnitude", single_run=True,
        why="L:318: 'the values inside the gradient are 1000 times smaller than the values "
            "inside data': an order of magnitude read off one run's printout after one step"),
    "gradient std roughly 1e-3": Reading(
        1e-3, "magnitude", single_run=True,
        why="L:321: 'the standard deviations are roughly 1e-3 throughout': the gradients' std, "
            "an order of magnitude read off one run"),
    "last layer's gradient std roughly 1e-2": Reading(
        1e-2, "magnitude", single_run=True,
        why="L:321: the last layer 'has roughly 1e-2 a standard deviation of gradients'"),
    "last layer's gradients 10x the others'": Reading(
        10.0, "magnitude", single_run=True,
        why="L:321: 'the gradients on the last layer are currently about 10 times greater than "
            "all the other weights': an order of magnitude, one run"),
    # The decent range of an update ratio (floor -3.5, ceiling -2.0): one copy, in the bn (deep
    # network) section below, which reads the same quantity.
    "too-fast layers at -1 to -1.5": Reading(
        -1.25, "about", relative=0.2, single_run=True,
        why="L:346: 'ratios of negative one or negative 1.5': the range [-1.5, -1] read off one "
            "run's plot"),
    # --- family bn (the MLP, BatchNorm itself) --------------------------------------------------
    "roughly zero": Reading(
        0.0, "rounded", digits=0,
        why="L:166 'the mean will be roughly zero': a one-digit number, read as rounded to a "
            "whole number"),
    "roughly one": Reading(
        1.0, "rounded", digits=0,
        why="L:166 'the standard deviation roughly one' (L:124 'a unit or one standard "
            "deviation'): a one-digit number, read as rounded to a whole number"),
    "rounding of a batch standardisation": Scale(
        64.0, "ulps",
        "in ulps of a unit's conditioning u (1 + |mean| / std), what centring x - mean costs: a "
        "pairwise sum of n <= 1,024 terms is off by up to log2(n) = 10 ulps, the variance's sum "
        "as much again, the square root and the division one each; 64 leaves a factor 2-3"),
    "float64 agreement of two implementations": Scale(
        1e-10, "relative",
        "two float64 implementations of one formula (u = 1.1e-16) differ by the rounding of "
        "sums of up to 1,024 terms and of gradients that cancel in exact arithmetic: 1e-10 of "
        "the largest value leaves six decades for that, and lies six decades below the smallest "
        "real difference in play (the variance convention at batch 1,024, "
        "1 - sqrt(1023/1024) = 4.9e-4)"),
    "float32 resolution of a logit": Scale(
        1e-4, "nats",
        "the trained MLP's logits (up to ~10) carry float32 ulps of ~1e-6 and come out of a "
        "200-term dot product, which may round them by up to ~100 ulps: a change below 1e-4 "
        "can be rounding, one above it cannot"),
    "float32 resolution of a statistic": Scale(
        1e-5, "sd",
        "a running statistic is a float32 EMA that keeps each step's rounding (u = 6e-8) for "
        "about 1/m = 1,000 steps, ~sqrt(1000) u = 2e-6 in all; buffers closer than 1e-5 unit "
        "sd are identical up to rounding"),
    "the noise of one batch's statistics": Scale(
        0.127, "sd",
        "the standard error of a batch-of-32 statistic in units of the unit's std (L:226 'only "
        "32 examples'): 1/sqrt(32) = 0.177 for the mean, 1/sqrt(2 * 31) = 0.127 for the std, "
        "the smaller taken; training normalised every batch with statistics that far off, so "
        "buffers closer than this are closer than any statistics the network was trained with"),
    "the rounding bound of a cancelled sum": Scale(
        1.0, "x bound",
        "a sum of B float terms that is 0 in exact arithmetic comes out at most about "
        "B u sum|terms| (the recursive-summation bound gamma_B ~ B u); for the bias gradient "
        "through BN the terms are |gamma d_i| / sigma times the centring's conditioning "
        "1 + max|h| / sigma: measured in units of that bound it must stay within 1"),
    "a bias that did not learn": Scale(
        1e-3, "",
        "how far a bias before BN moved over training, relative to BN's beta, which does its "
        "job (L:183): its gradient is a rounding residue, at most B u = 2e-6 (B = 32) of the "
        "terms it cancels, while beta gets their uncancelled sum, so rounding alone moves it "
        "orders of magnitude less than beta; 1e-3 leaves a factor 500 for the conditioning "
        "and the accumulation over steps"),
    # --- family bn (the deep network) -----------------------------------------------------------
    "the BN net's tanh std 0.65": Reading(
        0.65, "about", relative=0.02 / 0.65, single_run=True,
        why="L:354 'roughly 0.65' throughout the layers of the BN net, read off one run after "
            "1,000 steps; the notebook prints per-layer stds of 0.63-0.65 and calls them that, "
            "so 'roughly' spans at least 0.02 either side"),
    "a tanh std unaffected by the gain": Reading(
        0.0, "rounded", digits=2,
        why="L:356 'exactly unaffected'; the lecture's plots print layer stds to two decimals, "
            "so a shift under 0.005 cannot show"),
    "the update-ratio guide -3": Scale(
        -3.0, "log10", "the lecture's black guide line at 1e-3 (L:336, L:355, L:371)"),
    # The decent range of an update ratio, read by the diag and bn families alike.
    "update ratio: floor of the decent range": Scale(
        -3.5, "log10",
        "midway between 'roughly one in negative three' (L:336) and an update '10,000 times' "
        "smaller than the data, 'way too small' (L:343): below it updates are far below -3"),
    "update ratio: ceiling of the decent range": Scale(
        -2.0, "log10",
        "midway between 'a little bit on the higher side ... somewhere around negative 2.5 ... "
        "a decent setting' (L:344) and 'learning way too fast, with ratios of negative one or "
        "negative 1.5' (L:346)"),
    "the notebook's step-0 loss 3.2870": Reading(
        3.2870, "rounded", digits=4, single_run=True,
        why="the notebook prints the step-0 loss of the BN deep net (gain 1.0, last BN's gamma "
            "x 0.1) on one batch of 32 of one run, to four decimals"),
    "no failed run": Scale(
        0.0, "runs",
        "'quite reliably ... it basically just worked' (L:123): a count of runs that did not "
        "train, so any failure is one too many"),
    # --- family bias, misc ----------------------------------------------------------------------
    "the notebook's 44 layers": Reading(
        44, "rounded", digits=0, single_run=True,
        why="N:21: the std is nan 'after approximately 44 layers' of one unseeded run: a whole "
            "number of layers"),
    "the notebook's cell-5 std at layer 26": Reading(
        22.3468, "rounded", digits=4, single_run=True,
        why="N:108 prints a.std() = 2.2223e+22 after 26 layers of one unseeded run; read as "
            "log10, whose 4th decimal is finer than the print's 5 significant digits"),
    "the notebook's cell-7 std at layer 27": Reading(
        -15.5856, "rounded", digits=4, single_run=True,
        why="N:204 prints a.std() = 2.5967e-16 after 27 layers of one unseeded run; read as "
            "log10, whose 4th decimal is finer than the print's 5 significant digits"),
    "the notebook's std about 1": Reading(
        1.0, "about", relative=0.1, single_run=True,
        why="N:115 calls the printed stds of one run, 0.82-1.32 layer by layer (N:130-161), a "
            "complete fix: 'about 1' is read as within 10% of 1, the sampling sd of one layer's "
            "std over 50 units (1/sqrt(98) = 0.10)"),
    "float32 overflow": Scale(
        38.53, "log10",
        "float32's largest finite value is 3.40e38 (log10 38.53): a value beyond it is inf"),
    "float32 underflow": Scale(
        -37.93, "log10",
        "float32's smallest normal value is 1.18e-38 (log10 -37.93): below it a value loses "
        "precision (subnormal) and then becomes 0"),
    "one layer": Scale(
        1.0, "layers",
        "the notebook's check counts whole layers (N:36-37): a shift of its layer by less than "
        "one cannot show in it"),
    "most runs": Scale(
        0.5, "share of runs",
        "a property of a network, not of a lucky draw, holds in most runs: the CI of the share "
        "of runs must clear one half"),
    "'much' as a factor of 2": Scale(
        2.0, "x",
        "'much more efficient' (L:15) and 'much better' (L:17) give no number: 'much' is read "
        "as at least a factor of 2 in the compared cost or distance"),
}


def tolerance(name: str) -> Tolerance:
    if name not in TOLERANCES:
        raise KeyError(f"no tolerance named {name!r}; known: {', '.join(sorted(TOLERANCES))}")
    return TOLERANCES[name]


def reading(name: str) -> Reading:
    entry = tolerance(name)
    if not isinstance(entry, Reading):
        raise TypeError(f"tolerance {name!r} is a Scale, not a Reading of a source value")
    return entry


def scale(name: str) -> Scale:
    entry = tolerance(name)
    if not isinstance(entry, Scale):
        raise TypeError(f"tolerance {name!r} is a Reading, not a Scale")
    return entry
