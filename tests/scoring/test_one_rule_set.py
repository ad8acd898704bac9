"""The three faces refuse the same scores: one rule set (functional/_validation.py), three wordings.

The rules, written here from the documentation: logits finite; probabilities finite and in [0, 1];
log-probabilities neither NaN nor +inf and <= 0 (``-inf``, a zero probability, is allowed). The
function names ``preds``, ``cross_entropy_loss`` names ``y_proba``, the scorer names the estimator.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy
from xent_metrics.scoring import cross_entropy_loss, make_cross_entropy_scorer

#: The edges sit one float64 step outside (or on) a bound: a check loosened by any tolerance lets one through.
EDGES = [float(np.nextafter(1.0, 2.0)), -5e-324, -0.0, 5e-324]
POOL = [0.3, 0.0, 1.0, -0.2, 1.3, -2.0, math.nan, math.inf, -math.inf, *EDGES]
METHOD = {"probs": "predict_proba", "logits": "decision_function", "log_probs": "predict_log_proba"}


def _torch_accepts_probabilities(values: list[float]) -> bool:
    """Whether ``F.binary_cross_entropy`` (float64) takes ``values`` as probabilities: an independent reading."""
    try:
        F.binary_cross_entropy(torch.tensor(values, dtype=torch.float64), torch.ones(len(values), dtype=torch.float64))
    except RuntimeError:
        return False
    return True


def allowed(values: list[float], input_format: str) -> bool:
    if input_format == "logits":
        return all(math.isfinite(v) for v in values)
    if input_format == "probs":
        return all(math.isfinite(v) and 0 <= v <= 1 for v in values)
    return all(not math.isnan(v) and v != math.inf and v <= 0 for v in values)


class Fixed:
    """A fitted two-class estimator whose every response method returns ``scores``."""

    classes_ = np.array([0, 1])

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def predict_proba(self, X: object) -> np.ndarray:
        return self.scores

    predict_log_proba = decision_function = predict_proba


def _outcome(call, *args, **kwargs) -> str | None:
    """``None`` when ``call(*args, **kwargs)`` accepts, else the message of its ValueError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rows off one, degenerate values: only refusals matter here
        try:
            call(*args, **kwargs)
        except ValueError as err:
            return str(err)
    return None


@pytest.mark.parametrize("input_format", ["logits", "probs", "log_probs"])
def test_every_face_refuses_exactly_what_the_rules_refuse(input_format: str) -> None:
    target = [0, 1]
    for pair in itertools.product(POOL, repeat=2):
        values = list(pair)
        expected = allowed(values, input_format)
        if input_format == "probs":
            assert expected == _torch_accepts_probabilities(values), values  # the written rule is torch's
        preds = torch.tensor(values, dtype=torch.float64)
        functional = _outcome(binary_cross_entropy, preds, torch.tensor(target), input_format=input_format)
        assert (functional is None) == expected, (values, functional)
        assert functional is None or "`preds`" in functional
        sklearn_face = _outcome(cross_entropy_loss, target, np.array(values), input_format=input_format)
        all_neg_inf = input_format == "log_probs" and values == [-math.inf, -math.inf]  # refused there, as always
        assert (sklearn_face is None) == (expected and not all_neg_inf), (values, sklearn_face)
        assert sklearn_face is None or "y_proba" in sklearn_face
        scores = np.array(values) if input_format == "logits" else np.stack([np.array(values)] * 2, 1)
        scorer = make_cross_entropy_scorer(input_format=input_format, response_method=METHOD[input_format])
        by_scorer = _outcome(scorer, Fixed(scores), np.zeros((2, 1)), target)
        assert (by_scorer is None) == expected, (values, by_scorer)
        assert by_scorer is None or by_scorer.startswith(f"Fixed.{METHOD[input_format]}(X) returned")


@pytest.mark.parametrize(
    ("dtype", "inside", "outside"),
    [(torch.float64, 2.0**-26, 2.0**-25), (torch.float32, 2.0**-12, 2.0**-11), (torch.float16, 2.0**-6, 2.0**-4)],
)
def test_rows_off_one_warn_alike_at_the_tolerance(dtype: torch.dtype, inside: float, outside: float) -> None:
    """``|sum - 1| <= 1e-8 + sqrt(eps)`` passes in both faces; just beyond it both warn."""
    tol = 1e-8 + math.sqrt(torch.finfo(dtype).eps)
    assert inside <= tol < outside
    for delta, warns in [(inside, False), (-inside, False), (outside, True), (-outside, True)]:
        rows = torch.tensor([[0.5, 0.5 + delta], [0.25, 0.75]], dtype=dtype)  # exact in every dtype here
        target = torch.tensor([1, 0])
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if dtype != torch.float16:  # the torch face sums float16 rows in float32: its own rounding
                multiclass_cross_entropy(rows, target, input_format="probs")
            cross_entropy_loss([1, 0], rows.numpy(), input_format="probs")
        messages = [str(w.message) for w in seen]
        sklearn_msgs = [m for m in messages if m.startswith("The y_prob values do not sum to one")]
        assert len(sklearn_msgs) == int(warns), (dtype, delta, messages)
        if warns:
            low, high = sorted([1.0, 1.0 + delta])
            assert re.search(rf"rows sum to values in \[{low:.6g}, {high:.6g}\]", sklearn_msgs[0])
        if dtype != torch.float16:
            torch_msgs = [m for m in messages if m.startswith("`preds` probabilities do not sum to one")]
            assert len(torch_msgs) == int(warns), (dtype, delta, messages)
