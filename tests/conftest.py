"""Shared test configuration: deterministic hypothesis profiles and float64 reference helpers."""

import os
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

# CI: fixed seed, bounded example count. `HYPOTHESIS_PROFILE=long pytest` explores more, by hand.
settings.register_profile(
    "ci", derandomize=True, max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded numpy generator per test."""
    return np.random.default_rng(20261128)


@pytest.fixture(autouse=True)
def _torch_seed() -> None:
    torch.manual_seed(0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many generated fuzz cases ran per entry point and outcome."""
    counts: dict[str, int] = {}
    for name, module in list(sys.modules.items()):
        if "test_fuzz" not in name:
            continue
        for key, value in getattr(module, "FUZZ_OUTCOMES", {}).items():
            counts[key] = counts.get(key, 0) + value
    if counts:
        terminalreporter.section("fuzz cases")
        for key in sorted(counts):
            terminalreporter.write_line(f"{counts[key]:6d}  {key}")
