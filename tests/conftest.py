"""Shared test set-up: hypothesis profiles, the data check, and the data fixtures.

Profiles (HYPOTHESIS_PROFILE): `ci` (the default) derandomises hypothesis so that CI is
repeatable; `fuzz` keeps ci's example counts with fresh randomness (`tox -e fuzz`, seeded by
--hypothesis-seed); `dev` searches longer. Tests never set their own max_examples: the profile
rules. The derandomised examples depend on hypothesis's version, which is pinned once, in
pyproject.toml; the session warns when the installed version differs.
"""

from __future__ import annotations

import os
import re
import tomllib
import warnings
from pathlib import Path

import hypothesis
import pytest
import torch
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
         HealthCheck.differing_executors]
settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None,
                          print_blob=True, suppress_health_check=QUIET)
settings.register_profile("fuzz", max_examples=25, deadline=None, print_blob=True,
                          suppress_health_check=QUIET)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
torch.set_num_threads(min(2, torch.get_num_threads()))


def pinned_hypothesis() -> str | None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["optional-dependencies"]["test"]:
        match = re.fullmatch(r"hypothesis==(\S+)", requirement)
        if match:
            return match.group(1)
    return None


def pytest_report_header(config: pytest.Config) -> str:
    pin = pinned_hypothesis()
    line = f"hypothesis {hypothesis.__version__}, profile {settings._current_profile}"
    if pin and pin != hypothesis.__version__:
        message = (f"hypothesis {hypothesis.__version__} is installed, but pyproject.toml pins "
                   f"{pin}: derandomised examples differ from CI's")
        warnings.warn(message, stacklevel=1)
        return f"{line}\nWARNING: {message}"
    return line


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--data", metavar="PATH", help="the names.txt to test with, as the CLIs' "
                     "--data (else $MAKEMORE_DATA, data/names.txt, ../shared, the download)")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--data")
    if path:  # as an environment variable, so that the CLI subprocesses see it too
        os.environ["MAKEMORE_DATA"] = str(Path(path).resolve())


def pytest_sessionstart(session: pytest.Session) -> None:
    """Without the data set nothing can run: stop at once with its one-line message instead of
    failing every test that needs it."""
    from makemore.data import DataError, locate

    try:
        locate()
    except DataError as err:
        pytest.exit(f"error: {err}", returncode=2)


@pytest.fixture(scope="session")
def splits():
    from makemore.data import load_splits

    return load_splits(3)


@pytest.fixture
def quick_context():
    from ablations.context import PROFILES, Context

    return Context(PROFILES["quick"])
