"""The clustered standard error of a ratio of sums, written once for the error-bar tests (numpy, not the package)."""

from __future__ import annotations

import math

import numpy as np


def clustered_reference(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``R = sum y / sum x`` and ``sqrt(G / (G - 1) * sum (y - R x)^2 / (sum x)^2)`` over clusters with ``x != 0``."""
    keep = x != 0
    x, y = x[keep], y[keep]
    ratio = y.sum() / x.sum()
    count = len(x)
    return ratio, math.sqrt(count / (count - 1) * ((y - ratio * x) ** 2).sum() / x.sum() ** 2)
