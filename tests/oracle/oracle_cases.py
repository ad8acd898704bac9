"""Inputs for the oracle suite: values that expose rounding, in every dtype and memory layout.

Seeded numpy generators draw the values; :func:`draw_configs` picks a seeded subset of the product of the
option axes, so every axis value appears and the CI profile stays inside its time budget.
"""

from __future__ import annotations

import itertools
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from oracle_refs import SCALE
from torch import Tensor

FORMATS = ["logits", "probs", "log_probs"]
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
LAYOUTS = ["plain", "transposed", "sliced", "expanded"]
AVERAGES = ["micro", "macro", "none"]
SAMPLE_WEIGHTS = [None, "sample", "position"]


def rng_for(*parts: object) -> np.random.Generator:
    """A generator seeded from the test's name and parameters (strings hashed with crc32: stable across runs)."""
    return np.random.default_rng([zlib.crc32(str(p).encode()) for p in parts])


def draw_configs(rng: np.random.Generator, n: int, **axes: list) -> list[dict]:
    """``n * SCALE`` configurations from the product of ``axes``: a cycle through each axis, then seeded shuffles."""
    product = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    count = n * SCALE
    picks = rng.permutation(len(product)).tolist()
    while len(picks) < count:
        picks += rng.permutation(len(product)).tolist()
    return [product[i] for i in picks[:count]]


def layout_of(t: Tensor, layout: str) -> Tensor:
    """The same values (or, for "expanded", the first sample repeated) in a non-contiguous layout."""
    if layout == "transposed" and t.ndim >= 2:
        return t.transpose(0, -1).contiguous().transpose(0, -1)
    if layout in ("sliced", "transposed"):
        big = torch.zeros((2 * t.shape[0], *t.shape[1:]), dtype=t.dtype)
        big[::2] = t
        return big[::2]
    if layout == "expanded" and t.shape[0]:
        return t[:1].expand(t.shape)
    return t


def logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal logits around 0.3 with a scale of 0.3, 1.7 or 6.1 (never values a float holds exactly)."""
    return rng.normal(loc=0.3, scale=rng.choice([0.3, 1.7, 6.1]), size=shape)


def as_format(z: np.ndarray, fmt: str, axis: int = 1) -> np.ndarray:
    """Logits turned into probabilities or log-probabilities along ``axis`` (float64)."""
    if fmt == "logits":
        return z
    lp = z - z.max(axis=axis, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(axis=axis, keepdims=True))
    return np.exp(lp) if fmt == "probs" else lp


def sigmoid_format(z: np.ndarray, fmt: str) -> np.ndarray:
    """Independent sigmoid scores: logits, probabilities or log-probabilities of the positive class."""
    if fmt == "logits":
        return z
    return 1 / (1 + np.exp(-z)) if fmt == "probs" else -np.logaddexp(0, -z)


def soft_targets(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> Tensor:
    """Probability targets: rows normalised, torch.rand (not normalised), normalised along the wrong axis, or
    normalised in float32 / bfloat16 (rows off by rounding) and passed in that dtype."""
    y = torch.tensor(rng.uniform(size=shape))
    if kind == "rand":
        if shape[0] > 2:
            y[1] = 0.0  # an all-zero row
        return y
    if kind == "wrongaxis":
        return y / y.sum(-1 if len(shape) > 2 else 0, keepdim=True)
    low = {"norm": torch.float64, "f32norm": torch.float32, "bf16norm": torch.bfloat16}[kind]
    y = y.to(low)
    return y / y.sum(1, keepdim=True)


def sample_weight(rng: np.random.Generator, kind: str | None, positions: tuple[int, ...]) -> Tensor | None:
    """None, one weight per sample (N,) or per position (N, d1, ...); uniform in (0, 2.3) with a zero."""
    if kind is None:
        return None
    shape = positions[:1] if kind == "sample" else positions
    s = torch.tensor(rng.uniform(0.05, 2.3, size=shape))
    if s.numel() > 2:
        s.view(-1)[1] = 0.0
    return s


@contextmanager
def quiet_macro() -> Iterator[None]:
    """average='macro' warns when it skips classes without weight, a normalized entropy when a base rate is 0 or 1
    (its value is nan); the oracle checks the values, not the words (the package's own tests check those)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="average='macro' skipped", category=UserWarning)
        warnings.filterwarnings("ignore", message="Normalized entropy is undefined", category=UserWarning)
        yield
