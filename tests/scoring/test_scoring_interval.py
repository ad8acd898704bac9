"""``scoring.cross_entropy_interval`` against the clustered ratio formula over sklearn's per-sample losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import log_loss

from xent_metrics.scoring import cross_entropy_interval


def _per_sample(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each sample's log loss, from scikit-learn one sample at a time."""
    labels = np.unique(y)
    return np.array([log_loss([t], [p], labels=labels) for t, p in zip(y, proba, strict=True)])


def _reference(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    xs = np.array([x[groups == g].sum() for g in np.unique(groups)])
    ys = np.array([y[groups == g].sum() for g in np.unique(groups)])
    ratio, count = ys.sum() / xs.sum(), len(xs)
    return ratio, math.sqrt(count / (count - 1) * ((ys - ratio * xs) ** 2).sum() / xs.sum() ** 2)


def _proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    raw = rng.random((n, k)) + 0.05
    return raw / raw.sum(1, keepdims=True)


def test_ungrouped_is_the_textbook_interval(rng: np.random.Generator) -> None:
    y, proba = rng.integers(0, 3, 80), _proba(rng, 80, 3)
    losses = _per_sample(y, proba)
    out = cross_entropy_interval(y, proba, confidence=0.9)
    z = scipy.stats.norm.ppf(0.95)
    stderr = losses.std(ddof=1) / math.sqrt(80)
    assert out["value"] == pytest.approx(log_loss(y, proba), rel=1e-12)
    assert out["stderr"] == pytest.approx(stderr, rel=1e-10)
    assert out["low"] == pytest.approx(losses.mean() - z * stderr, rel=1e-10)
    assert out["high"] == pytest.approx(losses.mean() + z * stderr, rel=1e-10)


def test_groups_and_sample_weight(rng: np.random.Generator) -> None:
    y, proba = rng.choice(["cat", "dog"], 60), _proba(rng, 60, 2)
    groups = rng.choice(["a", "b", "c", "d", "e", "f", "g"], 60)
    weight = rng.random(60) + 0.2
    losses = _per_sample(y, proba)
    value, stderr = _reference(weight, weight * losses, groups)
    out = cross_entropy_interval(y, proba, groups=groups, sample_weight=weight)
    assert out["value"] == pytest.approx(log_loss(y, proba, sample_weight=weight), rel=1e-12)
    assert out["value"] == pytest.approx(value, rel=1e-12)
    assert out["stderr"] == pytest.approx(stderr, rel=1e-10)


def test_multilabel_groups_sum_the_labels(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, (40, 3))
    p = rng.random((40, 3)) * 0.9 + 0.05
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    groups = np.repeat(np.arange(10), 4)
    value, stderr = _reference(np.full(40, 3.0), bce.sum(1), groups)
    out = cross_entropy_interval(y, p, groups=groups)
    assert out["value"] == pytest.approx(value, rel=1e-12)
    assert out["stderr"] == pytest.approx(stderr, rel=1e-10)


def test_errors() -> None:
    y, proba = [0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]
    with pytest.raises(ValueError, match=r"`groups` must have shape \(3,\), one group label per sample"):
        cross_entropy_interval(y, proba, groups=[0, 1])
    with pytest.raises(TypeError, match=r"`groups` must be an array-like of shape \(3,\) or None"):
        cross_entropy_interval(y, proba, groups=5)
    with pytest.raises(ValueError, match="`confidence` must lie strictly between 0 and 1"):
        cross_entropy_interval(y, proba, confidence=95)
    out = cross_entropy_interval(y, proba, groups=[1, 1, 1])
    assert math.isnan(out["stderr"]) and math.isnan(out["low"])


def test_multilabel_list_of_per_label_probabilities_equals_the_array(rng: np.random.Generator) -> None:
    """A MultiOutputClassifier's ``predict_proba`` (one (n, 2) array per label) gives the (n, K) array's interval."""
    y = rng.integers(0, 2, (30, 3))
    p = rng.random((30, 3)) * 0.9 + 0.05
    groups = np.repeat(np.arange(6), 5)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    value, stderr = _reference(np.full(30, 3.0), bce.sum(1), groups)
    out = cross_entropy_interval(y, [np.stack([1 - p[:, k], p[:, k]], 1) for k in range(3)], groups=groups)
    assert out["value"] == pytest.approx(value, rel=1e-12)
    assert out["stderr"] == pytest.approx(stderr, rel=1e-10)


def test_a_string_is_no_groups() -> None:
    with pytest.raises(TypeError, match=r"`groups` must be an array-like of shape \(3,\) or None, got 'abc'"):
        cross_entropy_interval([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]], groups="abc")
