"""Shared test set-up: deterministic hypothesis profiles and the data fixtures.

HYPOTHESIS_PROFILE=ci (the default) derandomises hypothesis so that CI is repeatable;
HYPOTHESIS_PROFILE=dev searches with fresh randomness and more examples.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def splits():
    from makemore.data import load_splits

    return load_splits(3)


@pytest.fixture
def quick_context():
    from ablations.context import PROFILES, Context

    return Context(PROFILES["quick"])
