"""The scorer checks an estimator's response once: its own check names the estimator."""

import pytest


def test_the_scorer_checks_the_response_values_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scorer's own check names the estimator; cross_entropy_loss then only converts (no second min/max pass)."""
    import torch
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from xent_metrics.scoring import _inputs, neg_cross_entropy_scorer

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    calls: list[int] = []
    original = torch.aminmax
    monkeypatch.setattr(_inputs.torch, "aminmax", lambda *a, **k: calls.append(1) or original(*a, **k))
    neg_cross_entropy_scorer(model, X, y)
    assert calls == []
    from xent_metrics.scoring import cross_entropy_loss

    cross_entropy_loss(y, model.predict_proba(X))  # called directly, it checks (once)
    assert calls == [1]
