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
    # --- family init, tanh ----------------------------------------------------------------------
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
    "update ratio: floor of the decent range": Scale(
        -3.5, "log10",
        "midway between 'roughly one in negative three' (L:336) and an update '10,000 times' "
        "smaller than the data, 'way too small' (L:343): below it updates are far below -3"),
    "update ratio: ceiling of the decent range": Scale(
        -2.0, "log10",
        "midway between 'a little bit on the higher side ... somewhere around negative 2.5 ... "
        "a decent setting' (L:344) and 'learning way too fast, with ratios of negative one or "
        "negative 1.5' (L:346)"),
    "too-fast layers at -1 to -1.5": Reading(
        -1.25, "about", relative=0.2, single_run=True,
        why="L:346: 'ratios of negative one or negative 1.5': the range [-1.5, -1] read off one "
            "run's plot"),
    # --- family bn (the MLP, BatchNorm itself) --------------------------------------------------
    # --- family bn (the deep network) -----------------------------------------------------------
    # --- family bias, misc ----------------------------------------------------------------------
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
