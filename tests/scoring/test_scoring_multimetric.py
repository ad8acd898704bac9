"""Multi-metric scoring calls the estimator once per split; a model without probabilities is told the logits scorer.

References come from scikit-learn: ``log_loss`` / ``d2_log_loss_score`` on each fold's own ``predict_proba``,
and ``scoring="neg_log_loss"`` in the same ``cross_validate``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import d2_log_loss_score, log_loss
from sklearn.metrics import get_scorer as sklearn_get_scorer
from sklearn.model_selection import KFold, cross_validate
from sklearn.svm import SVC

from xent_metrics.scoring import (
    d2_cross_entropy_scorer,
    get_scorer,
    make_cross_entropy_scorer,
    neg_cross_entropy_scorer,
)

CALLS: Counter[str] = Counter()


class CountingLogisticRegression(LogisticRegression):
    """LogisticRegression counting its predict_proba calls (cross_validate runs in this process: n_jobs=None)."""

    def predict_proba(self, X: Any) -> Any:
        CALLS["predict_proba"] += 1
        return super().predict_proba(X)


class CountingMargins(LogisticRegression):
    """LogisticRegression counting its decision_function calls (its predict_proba calls it too: not used here)."""

    def decision_function(self, X: Any) -> Any:
        CALLS["decision_function"] += 1
        return super().decision_function(X)


def _data(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    keep = y < num_classes
    return X[keep] * 0.3, y[keep]  # scaled: probabilities well away from 0 and 1, rounding exposed


CV = KFold(4, shuffle=True, random_state=3)


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("train", [False, True])
def test_one_predict_proba_per_split(num_classes: int, train: bool) -> None:
    X, y = _data(num_classes)
    scoring = {"ce": neg_cross_entropy_scorer, "d2": d2_cross_entropy_scorer, "ll": "neg_log_loss"}
    CALLS.clear()
    res = cross_validate(
        CountingLogisticRegression(C=0.3),
        X,
        y,
        cv=CV,
        scoring=scoring,
        return_train_score=train,
        return_estimator=True,
        return_indices=True,
    )
    assert CALLS == Counter(predict_proba=4 * (2 if train else 1))
    for k, (est, test) in enumerate(zip(res["estimator"], res["indices"]["test"], strict=True)):
        proba = LogisticRegression.predict_proba(est, X[test])
        assert_allclose(-res["test_ce"][k], log_loss(y[test], proba, labels=est.classes_), rtol=1e-13)
        assert_allclose(res["test_d2"][k], d2_log_loss_score(y[test], proba, labels=est.classes_), rtol=1e-12)
    assert_allclose(res["test_ce"], res["test_ll"], rtol=1e-13)
    for name, scorer in (("ce", neg_cross_entropy_scorer), ("d2", d2_cross_entropy_scorer)):
        alone = cross_validate(CountingLogisticRegression(C=0.3), X, y, cv=CV, scoring=scorer)["test_score"]
        np.testing.assert_array_equal(res[f"test_{name}"], alone)  # the shared response scores bit for bit as alone


@pytest.mark.parametrize("num_classes", [2, 3])
def test_one_decision_function_per_split(num_classes: int) -> None:
    X, y = _data(num_classes)
    scoring = {"ce": get_scorer("neg_cross_entropy_logits"), "d2": get_scorer("d2_cross_entropy_logits")}
    CALLS.clear()
    res = cross_validate(CountingMargins(C=0.3), X, y, cv=CV, scoring=scoring)
    assert CALLS == Counter(decision_function=4)
    for name, scorer in scoring.items():
        alone = cross_validate(CountingMargins(C=0.3), X, y, cv=CV, scoring=scorer)["test_score"]
        np.testing.assert_array_equal(res[f"test_{name}"], alone)


def test_binary_labels_call_the_estimator_and_score_right() -> None:
    """A binary fit with ``labels`` may pad: the scorer calls predict_proba itself, and the values stay right."""
    X, y = _data(2)
    scorer = make_cross_entropy_scorer(labels=[0, 1, 2])
    CALLS.clear()
    res = cross_validate(
        CountingLogisticRegression(C=0.3),
        X,
        y,
        cv=CV,
        scoring={"ce": scorer, "ll": "neg_log_loss"},
        return_estimator=True,
        return_indices=True,
    )
    assert CALLS == Counter(predict_proba=8)
    for k, (est, test) in enumerate(zip(res["estimator"], res["indices"]["test"], strict=True)):
        proba = np.c_[LogisticRegression.predict_proba(est, X[test]), np.zeros(len(test))]
        assert_allclose(-res["test_ce"][k], log_loss(y[test], proba, labels=[0, 1, 2]), rtol=1e-13)


@pytest.mark.parametrize(
    ("scorer", "name"),
    [
        (neg_cross_entropy_scorer, "neg_cross_entropy_logits"),
        (get_scorer("d2_cross_entropy"), "d2_cross_entropy_logits"),
    ],
)
def test_no_predict_proba_names_the_logits_scorer(scorer: Any, name: str) -> None:
    X, y = _data(3)
    model = SVC().fit(X, y)
    with pytest.raises(AttributeError, match=rf"SVC has no method 'predict_proba'.*get_scorer\('{name}'\)"):
        scorer(model, X, y)
    get_scorer(name)(model, X, y)  # the named scorer scores it


def test_no_method_at_all_gives_no_hint() -> None:
    class PredictOnly:
        classes_ = np.array([0, 1])

        def predict(self, X: Any) -> Any:
            return np.zeros(len(X))

    with pytest.raises(AttributeError, match=r"^PredictOnly has no method 'predict_proba'; cannot score it\.$"):
        neg_cross_entropy_scorer(PredictOnly(), np.zeros((2, 1)), [0, 1])


def test_routed_weights_with_the_shared_response() -> None:
    X, y = _data(3)
    weights = np.random.default_rng(0).uniform(0.1, 3.0, len(y))
    weights[::7] = 0.0
    with sklearn.config_context(enable_metadata_routing=True):
        scoring = {
            "ce": get_scorer("neg_cross_entropy").set_score_request(sample_weight=True),
            "d2": get_scorer("d2_cross_entropy").set_score_request(sample_weight=True),
            "ll": sklearn_get_scorer("neg_log_loss").set_score_request(sample_weight=True),
        }
        model = CountingLogisticRegression(C=0.3).set_fit_request(sample_weight=False)
        CALLS.clear()
        res = cross_validate(
            model,
            X,
            y,
            cv=CV,
            scoring=scoring,
            params={"sample_weight": weights},
            return_estimator=True,
            return_indices=True,
        )
    assert CALLS == Counter(predict_proba=4)
    for k, (est, test) in enumerate(zip(res["estimator"], res["indices"]["test"], strict=True)):
        proba, w = LogisticRegression.predict_proba(est, X[test]), weights[test]
        assert_allclose(-res["test_ce"][k], log_loss(y[test], proba, sample_weight=w), rtol=1e-13)
        assert_allclose(res["test_d2"][k], d2_log_loss_score(y[test], proba, sample_weight=w), rtol=1e-12)
    assert_allclose(res["test_ce"], res["test_ll"], rtol=1e-13)
