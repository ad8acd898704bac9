"""The scorer on broken models: every bad response is reported with the estimator's class name and the problem.

tests/scoring/test_scoring_scorer.py covers NaN in ``predict_proba``, strings, a wrong number of columns or
rows and bad per-output lists. Here: probabilities outside [0, 1], log-probabilities above 0, NaN
from ``decision_function`` / ``predict_log_proba``, ``None``, ragged, complex and wrongly shaped
responses, rows that do not sum to 1 (one warning naming the estimator, the score still equal to
scikit-learn's), and a broken model inside ``cross_validate``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, log_loss
from sklearn.model_selection import StratifiedKFold, cross_validate

from xent_metrics.scoring import make_cross_entropy_scorer, neg_cross_entropy_scorer

X4 = np.zeros((4, 2))
Y2, Y3 = np.array([0, 1, 1, 0]), np.array([0, 1, 2, 0])
YML = np.array([[0, 1], [1, 1], [1, 0], [0, 0]])
LOGITS = make_cross_entropy_scorer(input_format="logits", response_method="decision_function")
LOG_PROBS = make_cross_entropy_scorer(input_format="log_probs", response_method="predict_log_proba")


class MisbehavingModel:
    """A fitted-looking classifier whose response methods all return what it was given."""

    def __init__(self, out: object, classes: tuple = (0, 1)) -> None:
        self.out, self.classes_ = out, np.asarray(classes)

    def predict_proba(self, X: object) -> object:
        return self.out

    def predict_log_proba(self, X: object) -> object:
        return self.out

    def decision_function(self, X: object) -> object:
        return self.out


PROBLEMS = [  # scorer, response, classes_, y_true, what the message must say
    pytest.param(
        neg_cross_entropy_scorer,
        [[1.5, -0.5]] * 4,
        (0, 1),
        Y2,
        r"probabilities outside \[0, 1\] \(from -0.5 to 1.5\)",
        id="above-1",
    ),
    pytest.param(
        neg_cross_entropy_scorer,
        [[-0.1, 1.1]] * 4,
        (0, 1),
        Y2,
        r"probabilities outside \[0, 1\] \(from -0.1",
        id="below-0",
    ),
    pytest.param(
        neg_cross_entropy_scorer, np.full((4, 2), 1.5), (0, 1), YML, r"outside \[0, 1\]", id="multilabel-above-1"
    ),
    pytest.param(
        neg_cross_entropy_scorer,
        [np.full((4, 2), 0.5), np.full((4, 2), -0.5)],
        (0, 1),
        YML,
        r"predict_proba\(X\)\[1\] returned probabilities outside",
        id="per-output-below-0",
    ),
    pytest.param(
        LOG_PROBS,
        np.full((4, 2), 0.3),
        (0, 1),
        Y2,
        r"predict_log_proba\(X\) returned log-probabilities above 0 \(up to 0.3\)",
        id="log-probs-above-0",
    ),
    pytest.param(
        LOG_PROBS,
        [[0.0, np.nan]] * 4,
        (0, 1),
        Y2,
        r"predict_log_proba\(X\) returned NaN or inf in 4 of 8",
        id="log-probs-nan",
    ),
    pytest.param(
        LOGITS,
        np.array([0.1, np.nan, 1.0, 2.0]),
        (0, 1),
        Y2,
        r"decision_function\(X\) returned NaN or inf in 1 of 4",
        id="logits-nan",
    ),
    pytest.param(
        LOGITS,
        np.full((4, 3), np.inf),
        (0, 1, 2),
        Y3,
        r"decision_function\(X\) returned NaN or inf in 12 of 12",
        id="logits-inf",
    ),
    pytest.param(neg_cross_entropy_scorer, None, (0, 1), Y2, r"predict_proba\(X\) returned None", id="none"),
    pytest.param(
        neg_cross_entropy_scorer,
        [[0.5, 0.5], [1.0]],
        (0, 1),
        Y2,
        r"predict_proba\(X\) returned non-numeric values \(list\).*inhomogeneous",
        id="ragged",
    ),
    pytest.param(
        neg_cross_entropy_scorer,
        np.full((4, 2), 0.5 + 0j),
        (0, 1),
        Y2,
        r"returned non-numeric values \(ndarray\): complex",
        id="complex",
    ),
    pytest.param(
        neg_cross_entropy_scorer,
        np.array([[0.5, "x"]] * 4, dtype=object),
        (0, 1),
        Y2,
        r"returned non-numeric values \(ndarray\)",
        id="object",
    ),
    pytest.param(
        neg_cross_entropy_scorer,
        np.full(4, 0.5),
        (0, 1),
        Y2,
        r"predict_proba\(X\) returned shape \(4,\); expected \(4, 2\)",
        id="1-d",
    ),
    pytest.param(
        neg_cross_entropy_scorer,
        np.full((4, 2, 1), 0.5),
        (0, 1),
        Y2,
        r"returned shape \(4, 2, 1\); expected \(4, 2\)",
        id="3-d",
    ),
    pytest.param(
        neg_cross_entropy_scorer, np.float64(0.5), (0, 1), Y2, r"returned shape \(\); expected \(4, 2\)", id="0-d"
    ),
    pytest.param(
        neg_cross_entropy_scorer,
        np.full((3, 4), 0.25),
        (0, 1, 2),
        Y3,
        r"returned shape \(3, 4\); expected \(4, 3\)",
        id="transposed",
    ),
]


@pytest.mark.parametrize(("scorer", "response", "classes", "y", "match"), PROBLEMS)
def test_a_broken_response_raises_naming_the_estimator_and_the_problem(scorer, response, classes, y, match) -> None:
    model = MisbehavingModel(response, classes)
    with pytest.raises(ValueError, match=r"^MisbehavingModel\.") as raised:
        scorer(model, X4, y)
    assert raised.match(match)


def _sklearn_reference(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # log_loss's own "do not sum to one"
        return fn()


@pytest.mark.parametrize(
    ("proba", "classes", "y", "reference", "span"),
    [
        pytest.param(
            np.full((4, 2), 0.4),
            (0, 1),
            Y2,
            lambda p, y: -log_loss(y, p[:, 1]),  # neg_log_loss reads the positive column only
            r"\[0.8, 0.8\]",
            id="binary-0.8",
        ),
        pytest.param(
            np.array([[0.5, 0.3, 0.4], [0.2, 0.2, 0.2], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]),
            (0, 1, 2),
            Y3,
            lambda p, y: -log_loss(y, p, labels=[0, 1, 2]),
            r"\[0.6, 1.2\]",
            id="multiclass-0.6-to-1.2",
        ),
    ],
)
def test_rows_that_do_not_sum_to_one_warn_once_naming_the_estimator(proba, classes, y, reference, span) -> None:
    model = MisbehavingModel(proba, classes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = neg_cross_entropy_scorer(model, X4, y)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages  # not once more from the loss underneath
    assert "The y_prob values do not sum to one" in messages[0]  # log_loss's words: its filters still apply
    assert "`MisbehavingModel.predict_proba(X)` rows sum to values in" in messages[0]
    assert re.search(span, messages[0]), messages[0]
    assert_allclose(score, _sklearn_reference(lambda: reference(proba, y)), rtol=1e-12)


def test_per_output_rows_that_do_not_sum_to_one_name_the_output() -> None:
    proba = [np.full((4, 2), 0.5), np.column_stack([np.full(4, 0.7), np.full(4, 0.7)])]
    with pytest.warns(
        UserWarning, match=r"`MisbehavingModel.predict_proba\(X\)\[1\]` rows sum to values in \[1.4, 1.4\]"
    ):
        score = neg_cross_entropy_scorer(MisbehavingModel(proba), X4, YML)
    expected = -np.mean([_sklearn_reference(lambda k=k: log_loss(YML[:, k], proba[k], labels=[0, 1])) for k in (0, 1)])
    assert_allclose(score, expected, rtol=1e-12)


def test_a_well_behaved_model_gets_no_warning() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = neg_cross_entropy_scorer(model, X, y)
    assert_allclose(score, get_scorer("neg_log_loss")(model, X, y), rtol=1e-12)


class NaNOnSomeRows(LogisticRegression):
    """A real classifier that breaks down on some inputs (as an overflowing custom model would)."""

    def predict_proba(self, X):
        proba = super().predict_proba(X)
        proba[::7] = np.nan
        return proba


def test_a_broken_model_in_cross_validate_is_named_in_the_error_and_in_the_warning() -> None:
    X, y = load_iris(return_X_y=True)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    model = NaNOnSomeRows(max_iter=1000)
    with pytest.raises(ValueError, match=r"NaNOnSomeRows\.predict_proba\(X\) returned NaN or inf in \d+ of \d+ values"):
        cross_validate(model, X, y, cv=cv, scoring=neg_cross_entropy_scorer, error_score="raise")
    with pytest.warns(UserWarning, match=r"(?s)Scoring failed.*NaNOnSomeRows\.predict_proba\(X\) returned NaN"):
        out = cross_validate(model, X, y, cv=cv, scoring=neg_cross_entropy_scorer)  # default error_score=nan
    assert np.isnan(out["test_score"]).all()
