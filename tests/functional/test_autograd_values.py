"""Under autograd the kernels run out of place (no scratch buffers): the values must be those of the float64 reference.

Every input format, class-index and soft targets, with and without label smoothing, on confident float32 rows
(probabilities of exactly 1 and 0, which the clipping to ``[eps, 1 - eps]`` of float32 moves), with
``requires_grad``. The reference is numpy in float64 on the float32 values: ``log_softmax`` (scipy), or
scikit-learn's clipping of probabilities, then the smoothed targets' weighted sum.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from xent_metrics.functional import multiclass_cross_entropy

PROBS = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.3, 0.6, 0.1, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.0, 0.9, 0.0, 0.1]],
    dtype=np.float32,
)
TARGET = np.array([0, 1, 2, 3, 1])
SOFT = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.2, 0.8, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.1, 0.2, 0.3, 0.4], [0.0, 0.7, 0.0, 0.3]]
)
EPS = float(np.finfo(np.float32).eps)


def _scores(input_format: str) -> np.ndarray:
    if input_format == "probs":
        return PROBS
    logp = np.log(np.clip(PROBS, EPS, 1 - EPS)).astype(np.float32)
    return logp if input_format == "log_probs" else (logp * 30).astype(np.float32)  # logits: margins of ~500 nats


def _reference(scores: np.ndarray, input_format: str, soft: bool, smoothing: float) -> float:
    wide = scores.astype(np.float64)
    if input_format == "logits":
        log_p = log_softmax(wide, axis=1)
    elif input_format == "probs":
        log_p = np.log(np.clip(wide, EPS, 1 - EPS))
    else:
        log_p = wide
    y = SOFT if soft else np.eye(4)[TARGET]
    y = y * (1 - smoothing) + smoothing / 4
    return float(-(y * log_p).sum(1).mean())


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("soft", [False, True], ids=["indices", "soft"])
@pytest.mark.parametrize("input_format", ["logits", "probs", "log_probs"])
def test_values_under_autograd_match_the_float64_reference(input_format: str, soft: bool, smoothing: float) -> None:
    scores = _scores(input_format)
    target = torch.tensor(SOFT, dtype=torch.float32) if soft else torch.tensor(TARGET)
    expected = _reference(scores, input_format, soft, smoothing)
    for grad in (False, True):
        preds = torch.tensor(scores, requires_grad=grad)
        got = multiclass_cross_entropy(preds, target, input_format=input_format, label_smoothing=smoothing)
        assert got.requires_grad == grad
        np.testing.assert_allclose(got.item(), expected, rtol=1e-6, atol=0)
        if grad:
            got.backward()
            assert preds.grad is not None and torch.isfinite(preds.grad).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("soft", [False, True], ids=["indices", "soft"])
def test_certain_correct_probabilities_cost_the_clip_under_autograd(soft: bool, smoothing: float) -> None:
    """Rows ``p = 1`` on their target: scikit-learn's loss is ``-log(1 - eps)`` (plus the smoothing part), never 0."""
    scores = np.eye(4, dtype=np.float32)[[0, 2, 1]]
    target = torch.tensor(scores) if soft else torch.tensor([0, 2, 1])
    y = scores * (1 - smoothing) + smoothing / 4
    expected = float(-(y * np.log(np.clip(scores.astype(np.float64), EPS, 1 - EPS))).sum(1).mean())
    for grad in (False, True):
        preds = torch.tensor(scores, requires_grad=grad)
        got = multiclass_cross_entropy(preds, target, input_format="probs", label_smoothing=smoothing)
        np.testing.assert_allclose(got.item(), expected, rtol=1e-6, atol=0)
