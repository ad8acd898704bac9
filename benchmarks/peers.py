"""The implementations timed: ours (the public API) and the peers, each as ``inputs -> zero-argument call``.

Everything is imported inside the builders, so a child process imports only what its case needs, and a
missing optional peer is reported as skipped instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.spec import Call, Inputs

Builder = Callable[[Inputs], Call]


# ------------------------------------------------------------------------------------------------ ours
def ours_multiclass(fused: bool = False, **options: Any) -> Builder:
    """``multiclass_cross_entropy`` (the public function); ``validate_args=False`` unless given."""
    options.setdefault("validate_args", False)

    def build(x: Inputs) -> Call:
        import torch

        from xent_metrics.functional import multiclass_cross_entropy

        def call() -> Any:
            with torch.no_grad():
                return multiclass_cross_entropy(x["preds"], x["target"], fused=fused, **options)

        return call

    return build


def ours_multilabel(x: Inputs) -> Call:
    """Per-label BCE (``average="none"``: the per-label sums over their counts), no value checks."""
    import torch

    from xent_metrics.functional import multilabel_cross_entropy

    def call() -> Any:
        with torch.no_grad():
            return multilabel_cross_entropy(x["preds"], x["target"], average="none", validate_args=False)

    return call


def metric_update(cls_name: str, validate: bool, **kwargs: Any) -> Builder:
    def build(x: Inputs) -> Call:
        import xent_metrics.metrics as metrics

        metric = getattr(metrics, cls_name)(validate_args=validate, **kwargs).to(x["device"])
        return lambda: metric.update(x["preds"], x["target"])

    return build


def metric_forward(cls_name: str, validate: bool, **kwargs: Any) -> Builder:
    def build(x: Inputs) -> Call:
        import xent_metrics.metrics as metrics

        metric = getattr(metrics, cls_name)(validate_args=validate, **kwargs).to(x["device"])
        return lambda: metric(x["preds"], x["target"])

    return build


def ours_loss(x: Inputs) -> Call:
    from xent_metrics.scoring import cross_entropy_loss

    labels = list(range(x["probs"].shape[1]))
    return lambda: cross_entropy_loss(x["labels"], x["probs"], labels=labels)


def ours_scorer(x: Inputs) -> Call:
    from xent_metrics.scoring import make_cross_entropy_scorer

    scorer, estimator = make_cross_entropy_scorer(), fixed_proba_estimator(x)
    return lambda: scorer(estimator, x["X"], x["labels"])


# ----------------------------------------------------------------------------------------------- peers
def f_cross_entropy(x: Inputs) -> Call:
    import torch.nn.functional as F

    return lambda: F.cross_entropy(x["preds"], x["target"], reduction="sum")


def mean_metric_ce(x: Inputs) -> Call:
    import torch.nn.functional as F
    import torchmetrics

    metric = torchmetrics.MeanMetric().to(x["device"])
    return lambda: metric.update(F.cross_entropy(x["preds"], x["target"]), weight=x["preds"].shape[0])


def ignite_loss_ce(x: Inputs) -> Call:
    import torch.nn.functional as F
    from ignite.metrics import Loss

    metric = Loss(F.cross_entropy, device=x["device"])
    return lambda: metric.update((x["preds"], x["target"]))


def f_bce(x: Inputs) -> Call:
    import torch.nn.functional as F

    return lambda: F.binary_cross_entropy_with_logits(x["preds"], x["target"], reduction="none").sum(0)


def torcheval_ne(x: Inputs) -> Call:
    from torcheval.metrics import BinaryNormalizedEntropy

    # torcheval wants (num_tasks, n): the transposed copies are made here, outside the timed call.
    logits_t, target_t = x["preds"].T.contiguous(), x["target"].T.contiguous()
    metric = BinaryNormalizedEntropy(from_logits=True, num_tasks=x["preds"].shape[1], device=x["device"])
    return lambda: metric.update(logits_t, target_t)


def sklearn_log_loss(x: Inputs) -> Call:
    from sklearn.metrics import log_loss

    labels = list(range(x["probs"].shape[1]))
    return lambda: log_loss(x["labels"], x["probs"], labels=labels)


def sklearn_neg_log_loss(x: Inputs) -> Call:
    from sklearn.metrics import get_scorer

    scorer, estimator = get_scorer("neg_log_loss"), fixed_proba_estimator(x)
    return lambda: scorer(estimator, x["X"], x["labels"])


def fixed_proba_estimator(x: Inputs) -> Any:
    """A fitted classifier whose ``predict_proba`` returns the case's probabilities (no work of its own)."""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    class FixedProba(ClassifierMixin, BaseEstimator):
        def __init__(self, proba: Any = None) -> None:
            self.proba = proba

        def fit(self, X: Any, y: Any) -> FixedProba:
            self.classes_ = np.arange(self.proba.shape[1])
            return self

        def predict_proba(self, X: Any) -> Any:
            return self.proba

    return FixedProba(x["probs"]).fit(x["X"], x["labels"])
