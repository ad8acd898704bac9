"""The scorer inside cross_val_score / cross_validate / GridSearchCV, against neg_log_loss and per-column log_loss."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose
from scipy.special import log_expit, logsumexp
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, make_multilabel_classification
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning, UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, log_loss, make_scorer
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score, cross_validate
from sklearn.multioutput import ClassifierChain, MultiOutputClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xent_metrics.scoring import CrossEntropyScorer, make_cross_entropy_scorer, neg_cross_entropy_scorer

RTOL = 1e-12


def _data(name):
    if name == "breast_cancer":
        return load_breast_cancer(return_X_y=True)
    if name == "iris":
        return load_iris(return_X_y=True)
    X, y = load_digits(return_X_y=True)
    return X[:500], y[:500]


MODELS = {
    "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "forest": lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    "knn": lambda: KNeighborsClassifier(n_neighbors=7),
    "gnb": lambda: GaussianNB(),
}


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris", "digits"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_equals_neg_log_loss_in_cross_validate(dataset, model):
    X, y = _data(dataset)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    out = cross_validate(
        MODELS[model](), X, y, cv=cv, scoring={"ours": neg_cross_entropy_scorer, "ref": "neg_log_loss"}
    )
    assert np.isfinite(out["test_ref"]).all()
    assert_allclose(out["test_ours"], out["test_ref"], rtol=RTOL)


def test_equals_neg_log_loss_in_grid_search_and_picks_the_same_model():
    X, y = load_iris(return_X_y=True)
    grid = {"logisticregression__C": [0.01, 0.1, 1.0]}
    search = GridSearchCV(
        MODELS["logreg"](), grid, cv=3, scoring={"ours": neg_cross_entropy_scorer, "ref": "neg_log_loss"}, refit="ours"
    )
    search.fit(X, y)
    res = search.cv_results_
    for split in ("split0", "split1", "split2", "mean"):
        assert_allclose(res[f"{split}_test_ours"], res[f"{split}_test_ref"], rtol=RTOL)
    assert search.best_index_ == int(np.argmax(res["mean_test_ref"]))


def test_string_labels_and_pandas_inputs():
    bunch = load_iris(as_frame=True)
    X, y = bunch.data, bunch.target.map(dict(enumerate(bunch.target_names)))  # DataFrame, Series of str
    out = cross_validate(
        GaussianNB(),
        X,
        y,
        cv=StratifiedKFold(3, shuffle=True, random_state=1),
        scoring={"ours": neg_cross_entropy_scorer, "ref": "neg_log_loss"},
    )
    assert_allclose(out["test_ours"], out["test_ref"], rtol=RTOL)


def test_test_fold_lacking_a_class_scores_against_classes_():
    X, y = load_iris(return_X_y=True)  # sorted by class: unshuffled 5-fold test folds hold one or two classes
    out = cross_validate(
        GaussianNB(), X, y, cv=KFold(5), scoring=neg_cross_entropy_scorer, return_estimator=True, return_indices=True
    )
    for est, test, score in zip(out["estimator"], out["indices"]["test"], out["test_score"], strict=True):
        assert len(np.unique(y[test])) < 3 and len(est.classes_) == 3
        assert_allclose(score, -log_loss(y[test], est.predict_proba(X[test]), labels=est.classes_), rtol=RTOL)
        with pytest.raises(ValueError, match=r"only one label|different number of classes"):  # neg_log_loss fails
            get_scorer("neg_log_loss")(est, X[test], y[test])


def test_training_fold_lacking_a_class():
    X, y = load_iris(return_X_y=True)
    train, test = np.arange(0, 100), np.arange(80, 150)  # training saw classes 0 and 1, the test fold has 2
    est = LogisticRegression(max_iter=1000).fit(X[train], y[train])
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] that LogisticRegression never saw.*labels="):
        neg_cross_entropy_scorer(est, X[test], y[test])
    proba = est.predict_proba(X[test])
    padded = np.column_stack([proba, np.zeros(len(test))])  # class 2: probability 0 (clipped to eps)
    expected = -log_loss(y[test], padded, labels=[0, 1, 2])
    assert_allclose(make_cross_entropy_scorer(labels=[0, 1, 2])(est, X[test], y[test]), expected, rtol=RTOL)
    margins = make_cross_entropy_scorer(labels=[0, 1, 2], input_format="logits", response_method="decision_function")
    with pytest.raises(ValueError, match="margins cannot be extended to unseen classes"):
        margins(est, X[test], y[test])
    single = DummyClassifier(strategy="prior").fit(X[:40], y[:40])  # saw class 0 only
    with pytest.raises(ValueError, match=r"DummyClassifier saw a single class \[0\]"):
        neg_cross_entropy_scorer(single, X[:10], y[:10])
    one_col = np.column_stack([np.ones(10), np.zeros((10, 2))])
    assert_allclose(
        make_cross_entropy_scorer(labels=[0, 1, 2])(single, X[:10], y[:10]),
        -log_loss(y[:10], one_col, labels=[0, 1, 2]),
        rtol=RTOL,
    )


def test_logits_from_decision_function_match_scipy_and_neg_log_loss():
    scorer = make_cross_entropy_scorer(input_format="logits", response_method="decision_function")
    X, y = load_breast_cancer(return_X_y=True)
    est = MODELS["logreg"]().fit(X[::2], y[::2])
    z = est.decision_function(X[1::2])
    yt = y[1::2]
    expected = np.mean(-(yt * log_expit(z) + (1 - yt) * log_expit(-z)))
    assert_allclose(scorer(est, X[1::2], yt), -expected, rtol=RTOL)
    assert_allclose(scorer(est, X[1::2], yt), get_scorer("neg_log_loss")(est, X[1::2], yt), rtol=1e-9)
    X, y = load_iris(return_X_y=True)
    est = MODELS["logreg"]().fit(X[::2], y[::2])
    z, yt = est.decision_function(X[1::2]), y[1::2]
    expected = np.mean(logsumexp(z, axis=1) - z[np.arange(len(yt)), yt])
    assert_allclose(scorer(est, X[1::2], yt), -expected, rtol=RTOL)


def test_log_probs_from_predict_log_proba():
    X, y = load_iris(return_X_y=True)
    est = GaussianNB().fit(X[::2], y[::2])
    log_p, yt = est.predict_log_proba(X[1::2]), y[1::2]
    scorer = make_cross_entropy_scorer(input_format="log_probs", response_method="predict_log_proba")
    assert_allclose(scorer(est, X[1::2], yt), np.mean(log_p[np.arange(len(yt)), yt]), rtol=RTOL)
    binary = GaussianNB().fit(X[:100:2], y[:100:2])
    log_p, yt = binary.predict_log_proba(X[1:100:2]), y[1:100:2]
    assert_allclose(scorer(binary, X[1:100:2], yt), np.mean(log_p[np.arange(len(yt)), yt]), rtol=RTOL)


def test_routed_sample_weight(rng):
    X, y = load_iris(return_X_y=True)
    w = rng.uniform(0.1, 3.0, size=len(y))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        ours = make_cross_entropy_scorer().set_score_request(sample_weight=True)
        ref = make_scorer(log_loss, greater_is_better=False, response_method="predict_proba")
        ref = ref.set_score_request(sample_weight=True)
        est = GaussianNB().set_fit_request(sample_weight=False)
        out = cross_validate(est, X, y, cv=cv, params={"sample_weight": w}, scoring={"ours": ours, "ref": ref})
        assert_allclose(out["test_ours"], out["test_ref"], rtol=RTOL)
        plain = cross_val_score(GaussianNB(), X, y, cv=cv, scoring=make_cross_entropy_scorer())
        assert not np.allclose(out["test_ours"], plain)  # the weights did arrive
        aliased = make_cross_entropy_scorer().set_score_request(sample_weight="w_eval")
        out2 = cross_validate(est, X, y, cv=cv, params={"w_eval": w}, scoring=aliased)
        assert_allclose(out2["test_score"], out["test_ours"], rtol=RTOL)
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):  # not requested: sklearn's error
            cross_validate(est, X, y, cv=cv, params={"sample_weight": w}, scoring=make_cross_entropy_scorer())
    with pytest.raises(RuntimeError, match="enable_metadata_routing=True"):
        make_cross_entropy_scorer().set_score_request(sample_weight=True)
    est = GaussianNB().fit(X, y)
    direct = make_cross_entropy_scorer()(est, X, y, sample_weight=w)
    assert_allclose(direct, -log_loss(y, est.predict_proba(X), sample_weight=w), rtol=RTOL)


def test_pickle_repr_and_n_jobs():
    scorer = make_cross_entropy_scorer(labels=[0, 1, 2], average="macro")
    assert repr(neg_cross_entropy_scorer) == "make_cross_entropy_scorer(response_method='predict_proba')"
    assert (
        repr(scorer) == "make_cross_entropy_scorer(response_method='predict_proba', labels=[0, 1, 2], average='macro')"
    )
    assert repr(eval(repr(scorer), {"make_cross_entropy_scorer": make_cross_entropy_scorer})) == repr(scorer)
    clone = pickle.loads(pickle.dumps(scorer))
    assert isinstance(clone, CrossEntropyScorer) and repr(clone) == repr(scorer)
    X, y = load_iris(return_X_y=True)
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    serial = cross_val_score(GaussianNB(), X, y, cv=cv, scoring=scorer)
    parallel = cross_val_score(GaussianNB(), X, y, cv=cv, scoring=scorer, n_jobs=2)
    assert_allclose(parallel, serial, rtol=RTOL)
    with sklearn.config_context(enable_metadata_routing=True):
        requested = copy.deepcopy(scorer).set_score_request(sample_weight=True)
    assert pickle.loads(pickle.dumps(requested)).get_metadata_routing().score.requests == {"sample_weight": True}


# ---------------------------------------------------------------- multilabel


@pytest.fixture(scope="module")
def multilabel():
    X, Y = make_multilabel_classification(n_samples=150, n_features=8, n_classes=4, random_state=0)
    return X, Y


def _mlp():
    return MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0)


MULTILABEL_MODELS = {
    "multioutput-logreg": lambda: MultiOutputClassifier(make_pipeline(StandardScaler(), LogisticRegression())),
    "forest": lambda: RandomForestClassifier(n_estimators=10, random_state=0),
    "knn": lambda: KNeighborsClassifier(n_neighbors=5),
    "mlp": _mlp,
    "chain": lambda: ClassifierChain(make_pipeline(StandardScaler(), LogisticRegression())),
}


def _per_column_reference(Y, proba):
    if isinstance(proba, list):  # per-output (n, 2) arrays: log_loss reads both columns
        return np.mean([log_loss(Y[:, k], p, labels=[0, 1]) for k, p in enumerate(proba)])
    return np.mean([log_loss(Y[:, k], proba[:, k], labels=[0, 1]) for k in range(Y.shape[1])])


@pytest.mark.parametrize("model", sorted(MULTILABEL_MODELS))
def test_multilabel_is_the_mean_of_per_column_log_loss(multilabel, model):
    X, Y = multilabel
    with warnings.catch_warnings():
        # MLP with max_iter=30 stops early on purpose (speed); the scores are still exact for its output.
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        out = cross_validate(
            MULTILABEL_MODELS[model](),
            X,
            Y,
            cv=KFold(3, shuffle=True, random_state=0),
            scoring=neg_cross_entropy_scorer,
            return_estimator=True,
            return_indices=True,
        )
    for est, test, score in zip(out["estimator"], out["indices"]["test"], out["test_score"], strict=True):
        assert_allclose(score, -_per_column_reference(Y[test], est.predict_proba(X[test])), rtol=RTOL)


def test_multilabel_output_that_saw_a_single_class(multilabel):
    X, Y = multilabel
    Y = Y.copy()
    Y[:100, 3] = 0  # the training part of output 3 is all 0: its estimator's classes_ is [0], its proba (n, 1)
    for est in (RandomForestClassifier(n_estimators=10, random_state=0), KNeighborsClassifier(5)):
        est.fit(X[:100], Y[:100])
        proba = est.predict_proba(X[100:])
        assert proba[3].shape == (50, 1) and Y[100:, 3].any()
        proba[3] = np.column_stack([proba[3][:, 0], np.zeros(50)])  # P(tag 3) = 0 for every sample
        expected = -_per_column_reference(Y[100:], proba)
        assert_allclose(neg_cross_entropy_scorer(est, X[100:], Y[100:]), expected, rtol=RTOL)


def test_multilabel_logits_from_a_classifier_chain(multilabel):
    X, Y = multilabel
    chain = ClassifierChain(make_pipeline(StandardScaler(), LogisticRegression())).fit(X[:100], Y[:100])
    z = chain.decision_function(X[100:])
    expected = np.mean(-(Y[100:] * log_expit(z) + (1 - Y[100:]) * log_expit(-z)))
    scorer = make_cross_entropy_scorer(task="multilabel", input_format="logits", response_method="decision_function")
    assert_allclose(scorer(chain, X[100:], Y[100:]), -expected, rtol=RTOL)


# ---------------------------------------------------------------- errors


class Broken:
    """A fitted-looking classifier whose predict_proba returns whatever it is given."""

    def __init__(self, out, classes=(0, 1)):
        self.out = out
        self.classes_ = [np.asarray(c) for c in classes] if np.ndim(classes[0]) else np.asarray(classes)

    def predict_proba(self, X):
        return self.out


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"task": "regression"}, ValueError, "`task` must be one of"),
        ({"input_format": "probas"}, ValueError, "`input_format` must be one of"),
        ({"average": "none"}, ValueError, r"`average` must be one of \['micro', 'macro'\]"),
        ({"response_method": ["predict_proba"]}, TypeError, "`response_method` must be a method name"),
        ({"response_method": "decision_function"}, ValueError, "returns logits.*Pass input_format='logits'"),
        ({"input_format": "logits"}, ValueError, "response_method='predict_proba' returns probs"),
    ],
)
def test_make_scorer_rejects_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_cross_entropy_scorer(**kwargs)


X4, Y4, YML = np.zeros((4, 2)), np.array([0, 1, 1, 0]), np.array([[0, 1], [1, 1], [1, 0], [0, 0]])


@pytest.mark.parametrize(
    ("scorer", "estimator", "y", "error", "match"),
    [
        (
            neg_cross_entropy_scorer,
            Broken(np.array([[0.5, 0.5], [np.nan, 1], [0, 1], [1, 0]])),
            Y4,
            ValueError,
            r"Broken.predict_proba\(X\) returned NaN or inf in 1 of 8",
        ),
        (
            neg_cross_entropy_scorer,
            Broken(np.array([["a", "b"]] * 4)),
            Y4,
            ValueError,
            r"Broken.predict_proba\(X\) returned non-numeric",
        ),
        (
            neg_cross_entropy_scorer,
            Broken(np.full((4, 3), 1 / 3)),
            Y4,
            ValueError,
            r"Broken.predict_proba\(X\) returned shape \(4, 3\); expected \(4, 2\)",
        ),
        (neg_cross_entropy_scorer, Broken(np.full((3, 2), 0.5)), Y4, ValueError, r"expected \(4, 2\) for 4 samples"),
        (neg_cross_entropy_scorer, Broken([np.full((4, 2), 0.5)]), YML, ValueError, "returned 1 arrays for 2 labels"),
        (
            neg_cross_entropy_scorer,
            Broken(np.full((4, 3), 0.5)),
            YML,
            ValueError,
            r"returned shape \(4, 3\); expected \(4, 2\)",
        ),
        (
            neg_cross_entropy_scorer,
            Broken([np.full((4, 2), 0.5), np.full((4, 2), np.inf)]),
            YML,
            ValueError,
            r"Broken.predict_proba\(X\)\[1\] returned NaN or inf",
        ),
        (
            make_cross_entropy_scorer(input_format="logits", response_method="decision_function"),
            Broken(None),
            Y4,
            AttributeError,
            "Broken has no method 'decision_function'",
        ),
        (
            neg_cross_entropy_scorer,
            Broken(np.full((4, 2), 0.5), classes=[[0, 1], [0, 1]]),
            Y4,
            ValueError,
            "no single `classes_` array",
        ),
        (
            make_cross_entropy_scorer(task="multilabel"),
            Broken(np.full((4, 2), 0.5)),
            Y4,
            ValueError,
            "task='multilabel' needs a multilabel indicator",
        ),
        (
            make_cross_entropy_scorer(task="binary"),
            Broken(np.full((4, 2), 0.5)),
            YML,
            ValueError,
            "task='binary' needs class labels",
        ),
        (
            make_cross_entropy_scorer(task="binary"),
            Broken(np.full((4, 3), 1 / 3), classes=[0, 1, 2]),
            Y4,
            ValueError,
            r"task='binary' needs exactly two classes, got \[0, 1, 2\]",
        ),
        (
            make_cross_entropy_scorer(labels=[0, 1]),
            Broken(np.full((4, 2), 0.5)),
            YML,
            ValueError,
            "a multilabel `y_true` takes the estimator's classes_",
        ),
        (
            make_cross_entropy_scorer(labels=[0, 1]),
            Broken(np.full((4, 3), 1 / 3), classes=[0, 1, 5]),
            Y4,
            ValueError,
            r"Broken.classes_ has class\(es\) \[5\] missing from labels \[0, 1\]",
        ),
        (
            neg_cross_entropy_scorer,
            Broken(np.full((4, 2), 0.5)),
            np.array([0.5, 1.5, 1, 0]),
            ValueError,
            "target type 'continuous'",
        ),
    ],
)
def test_scorer_errors_name_the_estimator(scorer, estimator, y, error, match):
    with pytest.raises(error, match=match):
        scorer(estimator, X4, y)
