"""``log_loss`` accepts signed weights with a negative total: the mean is still ``sum w l / sum w``."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss

from xent_metrics.scoring import cross_entropy_loss


@pytest.mark.parametrize(
    ("y", "proba", "weight"),
    [
        ([0, 1, 1], [0.2, 0.7, 0.9], [-3.0, 1.0, 0.3]),
        ([2, 0, 1, 2], [[0.1, 0.3, 0.6], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1]], [0.3, -1.7, 0.2, 0.1]),
    ],
)
def test_negative_total_weight_gives_log_loss(y: list, proba: list, weight: list) -> None:
    assert sum(weight) < 0
    expected = log_loss(y, proba, sample_weight=weight)
    np.testing.assert_allclose(cross_entropy_loss(y, proba, sample_weight=weight), expected, rtol=1e-12)
