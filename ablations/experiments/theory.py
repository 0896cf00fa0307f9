"""Mean-field theory of signal propagation at initialisation, in deterministic float64.

For a stack of layers  a_{l+1} = h_l @ W + b,  h_l = phi(a_l),  with W entries of mean 0 and
variance gain**2 / fan_in and bias entries of variance `bias_var`, the pre-activation variance
obeys, as the width goes to infinity (each unit a sum of infinitely many independent terms, so
Gaussian),

    q_{l+1} = gain**2 * E[phi(sqrt(q_l) z)**2] + bias_var,        z ~ N(0, 1).

The recursion therefore predicts the std of the activations at init of infinitely wide layers;
finite widths n add O(1/n) corrections and seed-to-seed fluctuations of order sqrt(depth / n).
Gradients obey the companion recursion  Var(delta_l) = chi(q_l) * Var(delta_{l+1})  with
chi = gain**2 * E[phi'(sqrt(q) z)**2] (for square layers).

API (stable; other families import it):
- `second_moment(q, phi)`: E[phi(sqrt(q) z)**2] for phi in PHIS ("tanh", "relu", "linear");
  `tanh_second_moment(q)`, `relu_second_moment(q)` (= q / 2) are the per-phi versions.
- `post_activation_mean(q, phi)`, `post_activation_std(q, phi)`: mean and std of phi(sqrt(q) z).
- `derivative_moment(q, phi)`: E[phi'(sqrt(q) z)**2]; `chi(gain, q, phi)` = gain**2 times it.
- `tanh_saturation(q, threshold)`: P(|tanh(sqrt(q) z)| > threshold), closed form via erfc.
- `variance_recursion(gain, depth, q0, phi="tanh", bias_var=0.0, threshold=0.97)` ->
  `Recursion` with arrays over layers 1..depth: `q` (pre-activation variance; q[0] = q0),
  `second_moment`, `mean`, `std` (post-activation), `saturated` (tanh only, NaN otherwise) and
  `chi`; `.frame()` gives a tidy pandas table.
- `fixed_point(gain, threshold=0.97, bias_var=0.0)` -> `FixedPoint(q, std, saturated, chi)` of the
  tanh recursion: q* = 0 for gain <= 1 without bias (the origin is the only, attracting, fixed
  point), else the unique positive root found by bisection to float64 precision.
- `gradient_profile(chi)`: each layer's gradient std relative to the last layer's, from the
  recursion's per-layer multipliers.
- `unit_variance_gain()`: the tanh gain 1 / sqrt(E[tanh(z)**2]) = 1.5925 that keeps a unit
  pre-activation variance at exactly 1 after one tanh layer.
- `gaussian_expectation(f, q)`: E[f(sqrt(q) z)] by Gauss-Hermite for any smooth f.

Accuracy: E[.] of smooth functions uses probabilists' Gauss-Hermite quadrature
(numpy.polynomial.hermite_e.hermegauss). For tanh with q > 1 the transition of tanh(sqrt(q) z)
narrows as 1/sqrt(q) and Gauss-Hermite loses accuracy (1e-2 at q = 100), so the tanh moments
are computed there from the localised kernels sech^2 and sech^4 in the variable u = sqrt(q) z by
composite Gauss-Legendre quadrature; both branches agree with a 4-million-point reference to
1e-10 (second moment) and 1e-9 (derivative moment) for q in [1e-6, 1e4].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

PHIS = ("tanh", "relu", "linear")
HERMITE_NODES = 101  # exact to ~1e-11 for the smooth integrands used here (q <= 1)
LEGENDRE_NODES = 16  # per panel of width 1 in u = sqrt(q) z
KERNEL_HALF_WIDTH = 40.0  # sech^2(40) = 7e-35: the kernels vanish beyond |u| = 40

Array = float | np.ndarray
Integrand = Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=4)
def _hermite(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with sum(w * f(x)) = E[f(z)], z ~ N(0, 1)."""
    x, w = hermegauss(nodes)
    return x, w / math.sqrt(2.0 * math.pi)


@lru_cache(maxsize=1)
def _legendre_panels() -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [-KERNEL_HALF_WIDTH, KERNEL_HALF_WIDTH]."""
    x, w = leggauss(LEGENDRE_NODES)
    edges = np.arange(-KERNEL_HALF_WIDTH, KERNEL_HALF_WIDTH, 1.0)
    nodes = (edges[:, None] + (x[None, :] + 1.0) / 2.0).ravel()
    weights = np.tile(w / 2.0, edges.size)
    return nodes, weights


def _as_array(q: Array) -> tuple[np.ndarray, bool]:
    values = np.asarray(q, dtype=np.float64)
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("variances must be finite and non-negative")
    return values, values.ndim == 0


def _out(values: np.ndarray, scalar: bool) -> Array:
    return float(values) if scalar else values


def gaussian_expectation(f: Integrand, q: Array,
                         nodes: int = HERMITE_NODES) -> Array:
    """E[f(sqrt(q) z)], z ~ N(0, 1), by Gauss-Hermite quadrature (f smooth on the scale sqrt(q))."""
    values, scalar = _as_array(q)
    x, w = _hermite(nodes)
    result = (f(np.sqrt(values)[..., None] * x) * w).sum(-1)
    return _out(result, scalar)


def _tanh_expectation(narrow: Integrand, kernel: Integrand, q: Array) -> tuple[np.ndarray, ...]:
    """E[narrow(sqrt(q) z)] by Gauss-Hermite where sqrt(q) <= 1, and E[kernel(sqrt(q) z)] for
    an even kernel decaying like exp(-2|u|) (sech^2, sech^4) where sqrt(q) > 1, integrated in
    u = sqrt(q) z by composite Gauss-Legendre. Returns (values of both, mask of sqrt(q) <= 1)."""
    values, _ = _as_array(q)
    s = np.sqrt(values)
    x, w = _hermite(HERMITE_NODES)
    direct = (narrow(s[..., None] * x) * w).sum(-1)
    u, v = _legendre_panels()
    wide_s = np.maximum(s, 1.0)[..., None]
    density = np.exp(-0.5 * (u / wide_s) ** 2) / (math.sqrt(2.0 * math.pi) * wide_s)
    wide = (kernel(u) * density * v).sum(-1)
    return direct, wide, s <= 1.0


def _sech2(u: np.ndarray) -> np.ndarray:
    return 1.0 / np.cosh(np.minimum(np.abs(u), 350.0)) ** 2


def tanh_second_moment(q: Array) -> Array:
    """E[tanh(sqrt(q) z)^2]; 0.39429 at q = 1, tends to q for small q and to 1 for large q.
    Small q integrates tanh^2 itself (no cancellation: relative accuracy down to q = 1e-300)."""
    direct, wide, narrow = _tanh_expectation(lambda t: np.tanh(t) ** 2, _sech2, q)
    return _out(np.where(narrow, direct, 1.0 - wide), np.ndim(q) == 0)


def relu_second_moment(q: Array) -> Array:
    """E[relu(sqrt(q) z)^2] = q / 2 exactly: ReLU keeps half of a symmetric distribution."""
    values, scalar = _as_array(q)
    return _out(values / 2.0, scalar)


def second_moment(q: Array, phi: str = "tanh") -> Array:
    """E[phi(sqrt(q) z)^2] for phi in PHIS."""
    if phi == "tanh":
        return tanh_second_moment(q)
    if phi == "relu":
        return relu_second_moment(q)
    if phi == "linear":
        values, scalar = _as_array(q)
        return _out(values, scalar)
    raise ValueError(f"phi must be one of {PHIS}, got {phi!r}")


def post_activation_mean(q: Array, phi: str = "tanh") -> Array:
    """E[phi(sqrt(q) z)]: 0 for the odd tanh and identity, sqrt(q / (2 pi)) for ReLU."""
    values, scalar = _as_array(q)
    if phi not in PHIS:
        raise ValueError(f"phi must be one of {PHIS}, got {phi!r}")
    mean = np.sqrt(values / (2.0 * math.pi)) if phi == "relu" else np.zeros_like(values)
    return _out(mean, scalar)


def post_activation_std(q: Array, phi: str = "tanh") -> Array:
    """Std of phi(sqrt(q) z): what `.std()` of a layer's output estimates at infinite width."""
    moment = np.asarray(second_moment(q, phi))
    mean = np.asarray(post_activation_mean(q, phi))
    return _out(np.sqrt(np.maximum(moment - mean**2, 0.0)), np.ndim(q) == 0)


def derivative_moment(q: Array, phi: str = "tanh") -> Array:
    """E[phi'(sqrt(q) z)^2]: E[sech^4] for tanh, 1/2 for ReLU, 1 for the identity."""
    values, scalar = _as_array(q)
    if phi == "tanh":
        direct, wide, narrow = _tanh_expectation(lambda t: _sech2(t) ** 2,
                                                 lambda t: _sech2(t) ** 2, q)
        return _out(np.where(narrow, direct, wide), scalar)
    if phi == "relu":
        return _out(np.full_like(values, 0.5), scalar)
    if phi == "linear":
        return _out(np.ones_like(values), scalar)
    raise ValueError(f"phi must be one of {PHIS}, got {phi!r}")


def chi(gain: float, q: Array, phi: str = "tanh") -> Array:
    """Per-layer multiplier of the gradient variance: gain^2 E[phi'(sqrt(q) z)^2] (square
    layers)."""
    return _out(gain**2 * np.asarray(derivative_moment(q, phi)), np.ndim(q) == 0)


def tanh_saturation(q: Array, threshold: float = 0.97) -> Array:
    """P(|tanh(sqrt(q) z)| > threshold) = erfc(atanh(threshold) / sqrt(2 q)); 0 at q = 0."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    values, scalar = _as_array(q)
    cut = math.atanh(threshold)
    with np.errstate(divide="ignore"):
        ratio = np.where(values > 0, cut / np.sqrt(2.0 * np.maximum(values, 1e-300)), np.inf)
    return _out(np.vectorize(math.erfc, otypes=[float])(ratio), scalar)


@dataclass(frozen=True)
class Recursion:
    """The recursion's prediction for layers 1..depth (index 0 is layer 1)."""

    gain: float
    phi: str
    q: np.ndarray  # pre-activation variance of each layer; q[0] = q0
    second_moment: np.ndarray  # E[h^2] of each layer's output h = phi(a)
    mean: np.ndarray  # E[h]
    std: np.ndarray  # std of h: the prediction for a measured `.out.std()` of the nonlinearity
    saturated: np.ndarray  # P(|h| > threshold) for tanh; NaN for other phi
    chi: np.ndarray  # gradient variance multiplier through each layer

    @property
    def pre_std(self) -> np.ndarray:
        """Std of the pre-activations (sqrt(q)): the prediction for a Linear's `.out.std()`."""
        return np.sqrt(self.q)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"layer": np.arange(1, self.q.size + 1), "gain": self.gain,
                             "phi": self.phi, "q": self.q, "pre_std": self.pre_std,
                             "second_moment": self.second_moment, "mean": self.mean,
                             "std": self.std, "saturated": self.saturated, "chi": self.chi})


def variance_recursion(gain: float, depth: int, q0: float, phi: str = "tanh",
                       bias_var: float = 0.0, threshold: float = 0.97) -> Recursion:
    """Iterate q_{l+1} = gain^2 E[phi(sqrt(q_l) z)^2] + bias_var from the first layer's
    pre-activation variance q0 (e.g. gain^2 * E[x^2] for an input x and gain / sqrt(fan_in)
    weights), returning `depth` layers of predictions."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if phi not in PHIS:
        raise ValueError(f"phi must be one of {PHIS}, got {phi!r}")
    q = np.empty(depth)
    q[0] = q0
    for layer in range(1, depth):
        q[layer] = gain**2 * float(second_moment(q[layer - 1], phi)) + bias_var
    saturated = (np.asarray(tanh_saturation(q, threshold)) if phi == "tanh"
                 else np.full(depth, np.nan))
    return Recursion(gain, phi, q, np.asarray(second_moment(q, phi)),
                     np.asarray(post_activation_mean(q, phi)),
                     np.asarray(post_activation_std(q, phi)), saturated,
                     np.asarray(chi(gain, q, phi)))


@dataclass(frozen=True)
class FixedPoint:
    q: float  # fixed-point pre-activation variance q*
    std: float  # std of tanh(sqrt(q*) z)
    saturated: float  # P(|tanh(sqrt(q*) z)| > threshold)
    chi: float  # gain^2 E[sech^4]: < 1 ordered (gradients vanish), > 1 chaotic (explode)


def fixed_point(gain: float, threshold: float = 0.97, bias_var: float = 0.0) -> FixedPoint:
    """The attracting fixed point of the tanh recursion. Without bias, q* = 0 for gain <= 1
    (tanh is contractive: E[tanh(x)^2] < E[x^2]); for gain > 1 the map g^2 E[tanh^2] - q is
    positive on (0, q*) and negative above, so bisection on (0, gain^2 + bias_var] finds q*."""
    if gain < 0 or bias_var < 0:
        raise ValueError("gain and bias_var must be non-negative")
    if gain <= 1.0 and bias_var == 0.0:
        return FixedPoint(0.0, 0.0, 0.0, gain**2)
    lo, hi = 0.0, gain**2 + bias_var
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if gain**2 * float(tanh_second_moment(mid)) + bias_var - mid > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4 * np.finfo(float).eps * hi:
            break
    q = 0.5 * (lo + hi)
    return FixedPoint(q, float(post_activation_std(q, "tanh")),
                      float(tanh_saturation(q, threshold)), float(chi(gain, q, "tanh")))


def unit_variance_gain() -> float:
    """1 / sqrt(E[tanh(z)^2]) = 1.5925: the tanh gain under which a unit-variance
    pre-activation stays at variance 1 after one tanh layer (q = 1 is then the fixed point)."""
    return 1.0 / math.sqrt(float(tanh_second_moment(1.0)))


def gradient_profile(chi: np.ndarray) -> np.ndarray:
    """Gradient std of each layer's output relative to the last layer's, from the per-layer
    variance multipliers chi (Var(dh_l) = chi_{l+1} Var(dh_{l+1}))."""
    tail = np.concatenate([np.cumprod(chi[:0:-1])[::-1], [1.0]])
    return np.sqrt(tail)
