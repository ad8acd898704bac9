"""The reference harness's float64 references (sklearn, scipy, torch) and its small checks.

Every reference takes numpy ``(z, y, w)``: scores, targets and optional sample weights, all the data
of a run; none uses the package.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.metrics import d2_log_loss_score, log_loss
from torchmetrics import Metric

RTOL = 1e-12


def close(actual: torch.Tensor, expected: object, rtol: float = RTOL) -> None:
    """``actual`` equals ``expected`` (anything numpy reads) to ``rtol``, ``nan`` where ``nan``."""
    expected_t = torch.as_tensor(np.asarray(expected, dtype=np.float64))
    torch.testing.assert_close(actual.double(), expected_t, rtol=rtol, atol=0.0, equal_nan=True)


def recorded(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    """Call ``fn`` and return its value with the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    return value, [str(w.message) for w in caught]


def feed(metric: Metric, batches: list) -> None:
    """``update`` the metric with every ``(preds, target, weight)`` batch."""
    for preds, target, weight in batches:
        metric.update(preds, target, weight)


def _ml_per_label(z: np.ndarray, y: np.ndarray, w: np.ndarray | None, ignore: int | None) -> tuple:
    """Per-column sklearn log_loss, per-column weight sums and per-column 1 - d2 (normalized entropy)."""
    losses, weights, ne = [], [], []
    for k in range(z.shape[1]):
        keep = np.ones(len(z), bool) if ignore is None else y[:, k] != ignore
        wk = np.ones(keep.sum()) if w is None else w[keep]
        p = expit(z[keep, k])
        losses.append(log_loss(y[keep, k], p, sample_weight=wk, labels=[0, 1]))
        weights.append(wk.sum())
        ne.append(1 - d2_log_loss_score(y[keep, k], np.c_[1 - p, p], sample_weight=wk, labels=[0, 1]))
    return np.array(losses), np.array(weights), np.array(ne)


def multilabel_ce_reference(average: str, ignore: int | None) -> Callable:
    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        losses, weights, _ = _ml_per_label(z, y, w, ignore)
        if average == "none":
            return losses
        if average == "macro":
            return losses.mean()
        return (losses * weights).sum() / weights.sum()

    return ref


def multilabel_pos_weight_reference(pos: np.ndarray) -> Callable:
    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        loss = -(pos * y * log_expit(z) + (1 - y) * log_expit(-z))
        return (loss * w[:, None]).sum() / (w.sum() * z.shape[1])  # type: ignore[index]

    return ref


def multilabel_ne_reference(average: str) -> Callable:
    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        losses, weights, ne = _ml_per_label(z, y, w, None)
        if average == "none":
            return ne
        return (losses * weights).sum() / (losses * weights / ne).sum()  # sum L_k / sum W_k H_k

    return ref


def _keep(y: np.ndarray, w: np.ndarray | None, ignore: int | None) -> tuple[np.ndarray, np.ndarray]:
    keep = np.ones(y.shape, bool) if ignore is None else y != ignore
    weight = np.ones(y.shape) if w is None else np.broadcast_to(w.reshape(w.shape + (1,) * (y.ndim - w.ndim)), y.shape)
    return keep, weight


def binary_reference(kind: str, ignore: int | None, pos: float = 1.0) -> Callable:
    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        keep, weight = _keep(y, w, ignore)
        if kind == "probs":  # sklearn on probabilities
            return log_loss(y[keep], z[keep], sample_weight=weight[keep], labels=[0, 1])
        if kind == "ne":
            p = expit(z[keep])
            return 1 - d2_log_loss_score(y[keep], np.c_[1 - p, p], sample_weight=weight[keep], labels=[0, 1])
        loss = -(pos * y * log_expit(z) + (1 - y) * log_expit(-z))  # scipy on logits
        return (loss * weight)[keep].sum() / weight[keep].sum()

    return ref


def multiclass_reference(
    kind: str, ignore: int | None, classes: int, class_weight: np.ndarray | None = None
) -> Callable:
    labels = list(range(classes))

    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        keep, weight = _keep(y, w, ignore)
        if kind == "micro":  # sklearn on softmax probabilities
            return log_loss(y[keep], softmax(z[keep], axis=1), sample_weight=weight[keep], labels=labels)
        if kind == "ne":
            probs = softmax(z[keep], axis=1)
            return 1 - d2_log_loss_score(y[keep], probs, sample_weight=weight[keep], labels=labels)
        nll = -np.take_along_axis(log_softmax(z[keep], axis=1), y[keep][:, None], axis=1)[:, 0]
        cw = np.ones(classes) if class_weight is None else class_weight
        wt = weight[keep] * cw[y[keep]]
        per_class = np.array([(nll * wt)[y[keep] == c].sum() / wt[y[keep] == c].sum() for c in labels])
        if kind == "weighted-micro":
            return (nll * wt).sum() / wt.sum()
        return per_class if kind == "none" else per_class.mean()

    return ref


def soft_reference(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
    loss = -(y * log_softmax(z, axis=1)).sum(axis=1)
    return (loss * w).sum() / w.sum()  # type: ignore[operator]


def torch_reference(**options: object) -> Callable:
    """torch's own F.cross_entropy in float64 (classes in dimension 1, mean over kept positions)."""

    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        assert w is None
        return F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y), **options).item()  # type: ignore[arg-type]

    return ref


def perplexity_reference(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
    vocab = z.shape[-1]
    nll = F.cross_entropy(
        torch.from_numpy(z).reshape(-1, vocab), torch.from_numpy(y).reshape(-1), ignore_index=-100, reduction="none"
    ).numpy()
    keep, weight = _keep(y, w, -100)
    return np.exp((nll * weight.reshape(-1))[keep.reshape(-1)].sum() / weight[keep].sum())
