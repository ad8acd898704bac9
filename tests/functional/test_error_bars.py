"""The error-bar core (functional/_error_bars.py) against the clustered ratio formula written here in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from helpers.error_bars import clustered_reference

from xent_metrics.functional import _error_bars as eb
from xent_metrics.functional._cluster_sums import first_of_cluster


def _rows(x: np.ndarray, y: np.ndarray, reference: float) -> torch.Tensor:
    return eb.cluster_moments(torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None], reference)


@pytest.mark.parametrize("reference", [0.0, 0.3, math.log(7), 12.0])
def test_ratio_stderr_is_the_clustered_delta_method(rng: np.random.Generator, reference: float) -> None:
    x = rng.integers(1, 40, 37).astype(np.float64) * 0.3
    x[[4, 9]] = 0.0  # clusters with no weight: out of G
    y = x * rng.gamma(2.0, 0.7, 37) + rng.normal(0, 0.1, 37) * (x != 0)
    rows = _rows(x, y, reference)
    value, stderr = eb.ratio_stderr(torch.tensor(y.sum()), torch.tensor(x.sum()), rows[:, 0], reference)
    expected_value, expected_stderr = clustered_reference(x, y)
    assert float(rows[eb.CLUSTERS, 0]) == 35 and float(rows[eb.ALL_CLUSTERS, 0]) == 35
    assert float(value) == pytest.approx(expected_value, rel=1e-13)
    assert float(stderr) == pytest.approx(expected_stderr, rel=1e-11)


def test_one_cluster_per_unit_sample_is_the_textbook_standard_error(rng: np.random.Generator) -> None:
    losses = rng.exponential(0.9, 200)
    ones = np.ones(200)
    rows = _rows(ones, losses, 1.0)[:, 0]
    value, stderr = eb.ratio_stderr(torch.tensor(losses.sum()), torch.tensor(200.0, dtype=torch.float64), rows, 1.0)
    assert float(value) == pytest.approx(losses.mean(), rel=1e-14)
    assert float(stderr) == pytest.approx(losses.std(ddof=1) / math.sqrt(200), rel=1e-12)


def test_rows_add_over_any_split(rng: np.random.Generator) -> None:
    x = rng.integers(1, 3000, 120).astype(np.float64)
    y = x * (2.9 + 0.05 * rng.normal(size=120))
    whole = _rows(x, y, 2.5)
    parts = sum(_rows(x[cut], y[cut], 2.5) for cut in np.split(rng.permutation(120), [7, 50, 51, 99]))
    total = (torch.tensor(y.sum()), torch.tensor(x.sum()))
    assert torch.equal(parts[:2], whole[:2])
    a, b = eb.ratio_stderr(*total, whole[:, 0], 2.5)[1], eb.ratio_stderr(*total, parts[:, 0], 2.5)[1]
    assert float(a) == pytest.approx(float(b), rel=1e-11)
    assert float(a) == pytest.approx(clustered_reference(x, y)[1], rel=1e-10)


def test_fewer_than_two_clusters_and_no_weight_give_nan() -> None:
    rows = _rows(np.array([3.0]), np.array([1.2]), 0.5)
    value, stderr = eb.ratio_stderr(torch.tensor(1.2), torch.tensor(3.0), rows[:, 0], 0.5)
    assert float(value) == pytest.approx(0.4) and math.isnan(stderr)
    value, stderr = eb.ratio_stderr(torch.tensor(0.0), torch.tensor(0.0), torch.zeros(5), 0.5)
    assert math.isnan(value) and math.isnan(stderr)


def test_macro_sums_the_per_column_variances_where_each_cluster_is_in_one_column(rng: np.random.Generator) -> None:
    column = rng.integers(0, 3, 60)
    losses = rng.exponential(1.1, 60)
    x, y = np.zeros((60, 3)), np.zeros((60, 3))
    x[np.arange(60), column], y[np.arange(60), column] = 1.0, losses
    rows = eb.cluster_moments(torch.from_numpy(x), torch.from_numpy(y), 1.0)
    ratio, stderr = eb.ratio_stderr(torch.from_numpy(y.sum(0)), torch.from_numpy(x.sum(0)), rows, 1.0)
    value, macro = eb.macro_stderr(ratio, stderr, rows)
    per_class = [losses[column == k] for k in range(3)]
    expected = math.sqrt(sum(v.var(ddof=1) / len(v) for v in per_class)) / 3
    assert float(value) == pytest.approx(np.mean([v.mean() for v in per_class]), rel=1e-13)
    assert float(macro) == pytest.approx(expected, rel=1e-11)
    spanning = eb.cluster_moments(torch.ones(4, 3), torch.ones(4, 3), 1.0)
    with pytest.raises(ValueError, match="average='macro' has an interval only where each cluster falls in one"):
        eb.macro_stderr(torch.ones(3), torch.ones(3), spanning)


def test_interval_uses_the_normal_quantile_and_maps_the_ends() -> None:
    assert eb.normal_quantile(0.95) == pytest.approx(scipy.stats.norm.ppf(0.975), rel=1e-14)
    assert eb.normal_quantile(0.5) == pytest.approx(scipy.stats.norm.ppf(0.75), rel=1e-14)
    out = eb.interval(torch.tensor(2.0, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64), 0.9, torch.exp)
    z = scipy.stats.norm.ppf(0.95)
    assert float(out["value"]) == pytest.approx(math.exp(2.0))
    assert float(out["stderr"]) == pytest.approx(0.1)
    assert float(out["low"]) == pytest.approx(math.exp(2.0 - 0.1 * z), rel=1e-14)
    assert float(out["high"]) == pytest.approx(math.exp(2.0 + 0.1 * z), rel=1e-14)
    assert float(eb.bits(torch.tensor(math.log(2)))) == pytest.approx(1.0)


@pytest.mark.parametrize(("confidence", "error", "match"), [
    (1.0, ValueError, r"`confidence` must lie strictly between 0 and 1, e.g. 0.95, got 1.0"),
    (0, ValueError, r"strictly between 0 and 1"),
    ("0.95", TypeError, r"`confidence` must be a float in \(0, 1\), e.g. 0.95, got str"),
    (True, TypeError, r"got bool"),
])
def test_confidence_is_checked(confidence: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        eb.normal_quantile(confidence)


def test_first_of_cluster_maps_each_row_to_the_first_row_of_its_id() -> None:
    assert first_of_cluster(None, 3) is None
    assert first_of_cluster(torch.tensor([7, 2, 7, 9, 2]), 5).tolist() == [0, 1, 0, 3, 1]
    assert first_of_cluster(torch.tensor([-4, -4, -4], dtype=torch.int8), 3).tolist() == [0, 0, 0]
    with pytest.raises(TypeError, match=r"`cluster_ids` must be an integer tensor, one cluster \(document\) id per"):
        first_of_cluster(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(TypeError, match="got list"):
        first_of_cluster([0, 1], 2)
    with pytest.raises(ValueError, match=r"`cluster_ids` must have shape \(2,\), one id per sequence .* shape \(3,\)"):
        first_of_cluster(torch.tensor([0, 1, 1]), 2)


def test_with_error_rows_of_totals_keeps_column_zero() -> None:
    parts = torch.tensor(
        [[[1.0, 2.0], [1.0, 1.0], [0.0, 1.0]], [[0.5, 0.25], [1.0, 1.0], [1.0, 0.0]]], dtype=torch.float64
    )
    out = eb.with_error_rows(parts, 0.0, totals=True)
    assert torch.equal(out[:3], parts.sum(0))
    # clusters' totals: x = (2, 2), y = (3, 0.75)
    assert out[3:, 0].tolist() == [2.0, 2.0, 8.0, 7.5, 9.5625]
    assert out[3:, 1].tolist() == [0.0] * 5
