"""The D² scorer against scikit-learn's d2_log_loss_score scorer, and get_scorer's fresh, unshared scorers."""

import pickle

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose
from scipy.special import log_expit, logsumexp
from sklearn.datasets import load_breast_cancer, load_iris, make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import d2_log_loss_score, log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.multioutput import MultiOutputClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xent_metrics.scoring import (
    CrossEntropyScorer,
    d2_cross_entropy_scorer,
    get_scorer,
    get_scorer_names,
    make_cross_entropy_scorer,
    neg_cross_entropy_scorer,
)

TOL = {"rtol": 1e-12, "atol": 1e-12}
NAMES = ["d2_cross_entropy", "d2_cross_entropy_logits", "neg_cross_entropy", "neg_cross_entropy_log_probs"]
NAMES.append("neg_cross_entropy_logits")


def _logreg():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


@pytest.mark.parametrize("loader", [load_iris, load_breast_cancer])
def test_d2_scorer_equals_sklearns_in_cross_validate(loader):
    X, y = loader(return_X_y=True)
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    scoring = {"ours": d2_cross_entropy_scorer, "ref": "d2_log_loss_score"}
    for model in (_logreg(), GaussianNB()):
        out = cross_validate(model, X, y, cv=cv, scoring=scoring)
        assert_allclose(out["test_ours"], out["test_ref"], **TOL)


def test_d2_is_greater_is_better_in_grid_search():
    X, y = load_iris(return_X_y=True)
    grid = {"logisticregression__C": [0.003, 0.3, 30.0]}
    scoring = {"ours": d2_cross_entropy_scorer, "ref": "d2_log_loss_score"}
    search = GridSearchCV(_logreg(), grid, cv=3, scoring=scoring, refit="ours").fit(X, y)
    ref = GridSearchCV(_logreg(), grid, cv=3, scoring="d2_log_loss_score").fit(X, y)
    assert search.best_params_ == ref.best_params_ == {"logisticregression__C": 30.0}
    assert_allclose(search.cv_results_["mean_test_ours"], search.cv_results_["mean_test_ref"], **TOL)


def test_d2_logits_scorer_against_scipy():
    X, y = load_iris(return_X_y=True)
    model = _logreg().fit(X[::2], y[::2])
    z, yt = model.decision_function(X[1::2]), y[1::2]
    loss = np.sum(logsumexp(z, axis=1) - z[np.arange(len(yt)), yt])
    prior = np.bincount(yt) / len(yt)
    expected = 1 - loss / -np.sum(np.log(prior[yt]))
    assert_allclose(get_scorer("d2_cross_entropy_logits")(model, X[1::2], yt), expected, **TOL)
    Xb, yb = load_breast_cancer(return_X_y=True)
    binary = _logreg().fit(Xb[::2], yb[::2])
    m, yt = binary.decision_function(Xb[1::2]), yb[1::2]
    loss = -np.sum(np.where(yt == 1, log_expit(m), log_expit(-m)))
    rate = yt.mean()
    expected = 1 - loss / -np.sum(np.where(yt == 1, np.log(rate), np.log1p(-rate)))
    assert_allclose(get_scorer("d2_cross_entropy_logits")(binary, Xb[1::2], yt), expected, **TOL)


def test_d2_multilabel_scorer_is_per_column_sklearn():
    X, Y = make_multilabel_classification(n_samples=120, n_features=6, n_classes=3, random_state=0)
    model = MultiOutputClassifier(_logreg()).fit(X[:80], Y[:80])
    proba = model.predict_proba(X[80:])
    Yt = Y[80:]
    per_label = [d2_log_loss_score(Yt[:, k], p, labels=[0, 1]) for k, p in enumerate(proba)]
    macro = make_cross_entropy_scorer(d2=True, average="macro")
    assert_allclose(macro(model, X[80:], Yt), np.mean(per_label), **TOL)
    loss = sum(log_loss(Yt[:, k], p, labels=[0, 1], normalize=False) for k, p in enumerate(proba))
    null = sum(log_loss(Yt[:, k], np.full(len(Yt), Yt[:, k].mean()), normalize=False) for k in range(3))
    assert_allclose(d2_cross_entropy_scorer(model, X[80:], Yt), 1 - loss / null, **TOL)


def test_names_and_what_each_scores():
    assert get_scorer_names() == NAMES
    X, y = load_iris(return_X_y=True)
    model = _logreg().fit(X[::2], y[::2])
    Xt, yt = X[1::2], y[1::2]
    proba = model.predict_proba(Xt)  # LogisticRegression's proba is the softmax of its decision_function
    expected = {
        "neg_cross_entropy": -log_loss(yt, proba),
        "neg_cross_entropy_logits": -log_loss(yt, proba),
        "neg_cross_entropy_log_probs": -log_loss(yt, proba),
        "d2_cross_entropy": d2_log_loss_score(yt, proba),
        "d2_cross_entropy_logits": d2_log_loss_score(yt, proba),
    }
    for name in NAMES:
        scorer = get_scorer(name)
        assert isinstance(scorer, CrossEntropyScorer)
        assert_allclose(scorer(model, Xt, yt), expected[name], rtol=1e-9, err_msg=name)
    assert repr(get_scorer("neg_cross_entropy")) == repr(neg_cross_entropy_scorer)
    assert repr(get_scorer("d2_cross_entropy")) == repr(d2_cross_entropy_scorer)
    assert repr(d2_cross_entropy_scorer) == "make_cross_entropy_scorer(response_method='predict_proba', d2=True)"
    assert repr(pickle.loads(pickle.dumps(d2_cross_entropy_scorer))) == repr(d2_cross_entropy_scorer)


@pytest.mark.parametrize("name", NAMES)
def test_get_scorer_returns_an_unshared_scorer(name):
    first, second = get_scorer(name), get_scorer(name)
    assert first is not second
    shared = neg_cross_entropy_scorer if name.startswith("neg") else d2_cross_entropy_scorer
    assert first is not shared
    with sklearn.config_context(enable_metadata_routing=True):
        assert first.set_score_request(sample_weight=True) is first
        assert first.get_metadata_routing().score.requests == {"sample_weight": True}
        for other in (second, shared, get_scorer(name)):
            assert other.get_metadata_routing().score.requests == {"sample_weight": None}


def test_routed_weights_reach_a_d2_scorer_from_get_scorer(rng):
    X, y = load_iris(return_X_y=True)
    w = rng.uniform(0.1, 3.0, size=len(y))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        ours = get_scorer("d2_cross_entropy").set_score_request(sample_weight=True)
        ref = sklearn.metrics.get_scorer("d2_log_loss_score").set_score_request(sample_weight=True)
        est = GaussianNB().set_fit_request(sample_weight=False)
        out = cross_validate(est, X, y, cv=cv, params={"sample_weight": w}, scoring={"ours": ours, "ref": ref})
    assert_allclose(out["test_ours"], out["test_ref"], **TOL)


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("neg_log_loss", ValueError, r"'neg_log_loss' is not a valid scorer name.*\['d2_cross_entropy', .*logits'\]"),
        ("", ValueError, r"'' is not a valid scorer name"),
        (None, TypeError, r"`name` must be a scorer name \(str\), got NoneType"),
        (neg_cross_entropy_scorer, TypeError, r"got CrossEntropyScorer"),
    ],
)
def test_get_scorer_rejects_unknown_names(name, error, match):
    with pytest.raises(error, match=match):
        get_scorer(name)


def test_d2_option_must_be_a_bool_and_class_targets_take_micro_only():
    with pytest.raises(TypeError, match=r"`d2` must be a bool, got str 'yes'"):
        make_cross_entropy_scorer(d2="yes")
    X, y = load_iris(return_X_y=True)
    model = GaussianNB().fit(X, y)
    with pytest.raises(ValueError, match=r"`average` must be 'micro' for binary or multiclass"):
        make_cross_entropy_scorer(d2=True, average="macro")(model, X, y)
