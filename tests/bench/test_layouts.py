"""tests/bench/layouts.py times what it says: in every layout, its product and its update
compute a @ b. Bound: a float32 sum of k products lies within k * 2**-24 * sum |a_i b_i| of the
exact one, in any order (Higham's gamma_k, to first order), so that is the tolerance against
float64; a transposed or misplaced operand misses it by the size of the entries themselves."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.bench.layouts import product, stored, update

layouts = st.sampled_from("rc")


def within_rounding(result: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                    roundings: int = 0) -> bool:
    """`roundings`: more, of the result's size: the update's scale factor, float32(1e-30), and
    its product with the sum."""
    exact = a.double() @ b.double()
    bound = (a.shape[2] + roundings) * 2.0**-24 * (a.double().abs() @ b.double().abs())
    return bool(((result.double() - exact).abs() <= bound).all())


@given(members=st.integers(1, 3), m=st.integers(1, 9), k=st.integers(1, 9), n=st.integers(1, 9),
       la=layouts, lb=layouts, lout=layouts, seed=st.integers(0, 2**31 - 1))
def test_product_and_update_compute_a_b_in_every_layout(members, m, k, n, la, lb, lout, seed):
    torch.manual_seed(seed)
    a, b = stored(members, m, k, la), stored(members, k, n, lb)
    out = stored(members, m, n, lout)
    product(a, b, out)()
    assert within_rounding(out, a, b)
    w = stored(members, m, n, lout).zero_()
    update(w, a, b)()  # w += -1e-30 * (a @ b): from zeros, a scaled product
    assert within_rounding(w.double() / -1e-30, a, b, roundings=2)
