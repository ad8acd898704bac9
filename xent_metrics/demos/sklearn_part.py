"""The scikit-learn part of the demo: ``cross_val_score`` on the digit tags, our scorer beside ``neg_log_loss``.

On a multilabel indicator target scikit-learn's ``log_loss`` sums ``-y log p`` over the tags and drops
the ``(1 - y) log(1 - p)`` terms (scikit-learn issue #10157): a model is never charged for a tag it
wrongly switches on. ``neg_cross_entropy_scorer`` scores the mean per-tag binary cross-entropy, the
same number as averaging ``log_loss`` column by column. A constant "every tag on" predictor makes
the difference plain: ``neg_log_loss`` calls it perfect.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, cross_validate
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neighbors import KNeighborsClassifier

from xent_metrics.demos.tags import digit_tags
from xent_metrics.scoring import neg_cross_entropy_scorer


def _models(num_tags: int) -> dict[str, object]:
    return {
        "MultiOutput(LogisticRegression)": MultiOutputClassifier(LogisticRegression(max_iter=1000)),
        "KNeighborsClassifier(10)": KNeighborsClassifier(n_neighbors=10),
        "RandomForestClassifier(50)": RandomForestClassifier(n_estimators=50, min_samples_leaf=3, random_state=0),
        "Dummy: every tag on": DummyClassifier(strategy="constant", constant=np.ones((num_tags, 1))),
    }


def _positive_column(proba: object) -> np.ndarray:
    """``(n, K)`` probabilities of tag = 1 from multi-output ``predict_proba`` (all outputs saw both classes)."""
    return np.column_stack([p[:, 1] for p in proba]) if isinstance(proba, list) else np.asarray(proba)


def sklearn_demo_results(n_splits: int = 3) -> list[dict[str, float | str]]:
    """Cross-validate the demo models; return, per model, both scores and the two hand-made references.

    ``"ours"`` and ``"neg_log_loss"`` are ``cross_validate`` means; ``"per_tag_log_loss"`` (mean of
    per-column ``log_loss``) should equal ``-ours`` and ``"positive_terms_only"`` (the mean over
    samples of ``sum_k -y log p``) should equal ``-neg_log_loss``: that is the whole difference.
    """
    X, Y, _ = digit_tags()
    cv = KFold(n_splits=n_splits, shuffle=True, random_state=0)
    scoring = {"ours": neg_cross_entropy_scorer, "neg_log_loss": "neg_log_loss"}
    rows: list[dict[str, float | str]] = []
    for name, model in _models(Y.shape[1]).items():
        with warnings.catch_warnings():
            # log_loss on an indicator matrix sees rows that do not sum to 1: the point of this demo.
            warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")
            out = cross_validate(model, X, Y, cv=cv, scoring=scoring, return_estimator=True, return_indices=True)
        per_tag, positive_only = [], []
        for est, test in zip(out["estimator"], out["indices"]["test"], strict=True):
            proba = _positive_column(est.predict_proba(X[test]))
            per_tag.append(np.mean([log_loss(Y[test, k], proba[:, k], labels=[0, 1]) for k in range(Y.shape[1])]))
            eps = np.finfo(proba.dtype).eps
            positive_only.append(np.mean(-(Y[test] * np.log(np.clip(proba, eps, 1 - eps))).sum(axis=1)))
        rows.append(
            {
                "model": name,
                "ours": float(np.mean(out["test_ours"])),
                "neg_log_loss": float(np.mean(out["test_neg_log_loss"])),
                "per_tag_log_loss": float(np.mean(per_tag)),
                "positive_terms_only": float(np.mean(positive_only)),
            }
        )
    return rows


def run_sklearn_demo(n_splits: int = 3) -> str:
    """Return a printable table: our scorer beside ``neg_log_loss`` on the digit tags, and why they differ.

    Parameters
    ----------
    n_splits : int, default=3
        Folds of the (shuffled) ``KFold``.

    Returns
    -------
    str
        The table and a short explanation.
    """
    _, Y, names = digit_tags()
    return format_sklearn_demo(sklearn_demo_results(n_splits), Y.shape, names, n_splits)


def format_sklearn_demo(
    rows: list[dict[str, float | str]], shape: tuple[int, ...], names: list[str], n_splits: int
) -> str:
    """Format :func:`sklearn_demo_results` as the demo's table and explanation."""
    header = f"{'model':<32} {'neg_cross_entropy':>18} {'neg_log_loss':>14}   best by"
    best = {
        "neg_cross_entropy": max(rows, key=lambda r: r["ours"])["model"],
        "neg_log_loss": max(rows, key=lambda r: r["neg_log_loss"])["model"],
    }
    lines = [
        f"cross_val_score on the digit tags: {shape[0]} images, {shape[1]} tags, {n_splits}-fold CV, mean score "
        "(higher is better)",
        f"tags: {', '.join(names)}",
        "",
        header,
        "-" * (len(header) + 12),
    ]
    for r in rows:
        picked = " and ".join(scorer for scorer, model in best.items() if model == r["model"])
        lines.append(f"{r['model']:<32} {r['ours']:>18.4f} {r['neg_log_loss']:>14.4f}   {picked}".rstrip())
    ours_gap = max(abs(float(r["ours"]) + float(r["per_tag_log_loss"])) for r in rows)
    theirs_gap = max(abs(float(r["neg_log_loss"]) + float(r["positive_terms_only"])) for r in rows)
    lines += [
        "",
        "neg_cross_entropy is minus the mean per-tag binary cross-entropy, the mean of per-column log_loss",
        f"(checked here to {ours_gap:.0e}). neg_log_loss on an indicator matrix is minus the mean over images of",
        f"sum_k -y_k log p_k (checked to {theirs_gap:.0e}): it drops every (1 - y) log(1 - p) term (scikit-learn",
        "issue #10157), so a tag wrongly switched on costs nothing. The constant 'every tag on' predictor gets a",
        "perfect 0 and would win a GridSearchCV on neg_log_loss.",
    ]
    return "\n".join(lines)
