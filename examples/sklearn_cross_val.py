"""Cross-entropy scoring in scikit-learn: where it equals neg_log_loss, and the three places it does not.

Run: python examples/sklearn_cross_val.py   (about 5 s on two cores)
"""

import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_iris, make_multilabel_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xent_metrics.scoring import cross_entropy_loss, make_cross_entropy_scorer, neg_cross_entropy_scorer

BOTH = {"neg_cross_entropy": neg_cross_entropy_scorer, "neg_log_loss": "neg_log_loss"}


def same_where_log_loss_is_right() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    out = cross_validate(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring=BOTH)
    rel = np.max(np.abs(out["test_neg_cross_entropy"] / out["test_neg_log_loss"] - 1))
    print(f"1. binary, 5 folds: {out['test_neg_cross_entropy'].round(4)}  max rel. diff to neg_log_loss {rel:.1e}")
    search = GridSearchCV(model, {"logisticregression__C": [0.1, 1, 10]}, scoring=neg_cross_entropy_scorer)
    print(f"   GridSearchCV picks C={search.fit(X, y).best_params_['logisticregression__C']}")


def fold_lacking_a_class() -> None:
    X, y = load_iris(return_X_y=True)  # sorted by class: unshuffled folds lack classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neg_log_loss fails on every fold; scikit-learn warns and returns nan
        theirs = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=KFold(5), scoring="neg_log_loss")
    ours = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=KFold(5), scoring=neg_cross_entropy_scorer)
    print(f"2. test folds lacking a class: neg_log_loss {theirs}, ours {ours.round(3)}")


def multilabel() -> None:
    X, Y = make_multilabel_classification(n_samples=600, n_classes=5, random_state=0)
    forest = RandomForestClassifier(n_estimators=30, random_state=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")  # log_loss on an indicator
        out = cross_validate(forest, X, Y, cv=3, scoring=BOTH, return_estimator=True, return_indices=True)
    est, test = out["estimator"][0], out["indices"]["test"][0]
    per_label = [log_loss(Y[test, k], p, labels=[0, 1]) for k, p in enumerate(est.predict_proba(X[test]))]
    print(
        f"3. multilabel, fold 0: ours {out['test_neg_cross_entropy'][0]:.4f} = -mean per-label log_loss "
        f"{-np.mean(per_label):.4f}; neg_log_loss {out['test_neg_log_loss'][0]:.4f} drops the (1-y)log(1-p) terms"
    )


def margins() -> None:
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[::2], y[::2])
    from_logits = make_cross_entropy_scorer(input_format="logits", response_method="decision_function")
    print(
        f"4. from decision_function margins: {from_logits(model, X[1::2], y[1::2]):.6f}, "
        f"from predict_proba: {neg_cross_entropy_scorer(model, X[1::2], y[1::2]):.6f}; "
        f"a margin of -800 costs {cross_entropy_loss([1], [-800.0], labels=[0, 1], input_format='logits'):.0f}"
    )


if __name__ == "__main__":
    same_where_log_loss_is_right()
    fold_lacking_a_class()
    multilabel()
    margins()
