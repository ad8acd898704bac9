"""Shared test configuration: deterministic hypothesis profiles and float64 reference helpers."""

import os

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
