"""Soft targets with zero mass on a class: ``0 log 0 = 0`` on both kernel paths (``conftest.py``).

A log-probability of ``-inf`` (a class the model rules out) where the target puts no mass adds nothing,
as in scikit-learn's ``log_loss`` and ``scipy.special.xlogy``; where the target puts mass the loss is ``inf``.
References: ``scipy.special.xlogy`` in float64 on the probabilities, with class weights and sample weights.
"""

from __future__ import annotations

import numpy as np
import torch
from oracle_cases import rng_for
from scipy.special import xlogy

from xent_metrics import MulticlassCrossEntropy
from xent_metrics.functional import multiclass_cross_entropy


def _reference(p: np.ndarray, y: np.ndarray, w: np.ndarray, s: np.ndarray) -> float:
    """torch's soft-target rule: sum_i s_i sum_c w_c (-y_ic log p_ic) / sum_i s_i, with 0 log 0 = 0."""
    return float((s * -(xlogy(y, p) * w).sum(1)).sum() / s.sum())


def test_log_probs_of_minus_inf_where_the_target_has_no_mass() -> None:
    rng = rng_for(95)
    N, C = 12, 5
    p = rng.dirichlet(np.full(C, 0.7), size=N)
    y = rng.dirichlet(np.full(C, 0.9), size=N)
    p[[2, 7], 1] = 0.0  # ruled out by the model ...
    y[[2, 7], 1] = 0.0  # ... and by the target: no loss
    p /= p.sum(1, keepdims=True)
    y[4] *= 0.3  # a row that does not sum to 1
    w, s = rng.uniform(0.3, 2.1, size=C), rng.uniform(0.1, 1.9, size=N)
    with np.errstate(divide="ignore"):
        log_p = torch.tensor(np.log(p))  # -inf at the two zeros
    want = _reference(p, y, w, s)
    for dtype in (torch.float64, torch.float32):
        got = multiclass_cross_entropy(log_p.to(dtype), torch.tensor(y).to(dtype), input_format="log_probs",
                                       weight=torch.tensor(w).to(dtype), sample_weight=torch.tensor(s).to(dtype))
        assert torch.isfinite(got)
        np.testing.assert_allclose(float(got), want, rtol=1e-6 if dtype == torch.float32 else 1e-12)
    metric = MulticlassCrossEntropy(num_classes=C, input_format="log_probs", weight=torch.tensor(w))
    metric.update(log_p[:5], torch.tensor(y[:5]), sample_weight=torch.tensor(s[:5]))
    metric.update(log_p[5:], torch.tensor(y[5:]), sample_weight=torch.tensor(s[5:]))
    np.testing.assert_allclose(float(metric.compute()), want, rtol=1e-12)
    y[7, 1] = 0.2  # mass on a ruled-out class: an infinite loss
    got = multiclass_cross_entropy(log_p, torch.tensor(y), input_format="log_probs")
    assert got == float("inf")
