"""Reference harness for the Metric classes.

Each case is a metric factory, a list of uneven batches, the functional twin and an independent
float64 reference (sklearn, torch, scipy) on all the data. The harness checks, per case: ``forward``
per batch against the functional result on that batch; the accumulated ``compute`` against the
functional result on all the data concatenated and against the reference; merge of two halves;
clone; pickle; ``state_dict`` resume mid-epoch; reset; the dtype and shape of the state.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.metrics import d2_log_loss_score, log_loss
from torchmetrics import Metric

from xent_metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
    Perplexity,
)
from xent_metrics.functional import (
    binary_cross_entropy,
    binary_normalized_entropy,
    multiclass_cross_entropy,
    multiclass_normalized_entropy,
    multilabel_cross_entropy,
    multilabel_normalized_entropy,
)

RTOL = 1e-12
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def close(actual: torch.Tensor, expected: object, rtol: float = RTOL) -> None:
    expected_t = torch.as_tensor(np.asarray(expected, dtype=np.float64))
    torch.testing.assert_close(actual.double(), expected_t, rtol=rtol, atol=0.0, equal_nan=True)


@dataclass
class Case:
    """One metric configuration with its data, functional twin and independent reference."""

    id: str
    make: Callable[[], Metric]
    functional: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    batches: list[Batch]
    reference: Callable[[np.ndarray, np.ndarray, np.ndarray | None], object]
    ndim_k: int  # K, the second dimension of the state


def concat(batches: list[Batch]) -> Batch:
    preds = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    weights = [b[2] for b in batches]
    weight = None if weights[0] is None else torch.cat(weights)  # type: ignore[arg-type]
    return preds, target, weight


def split(total: int, sizes: list[int], *tensors: torch.Tensor | None) -> list[Batch]:
    assert sum(sizes) == total
    out, start = [], 0
    for size in sizes:
        out.append(tuple(None if t is None else t[start : start + size] for t in tensors))
        start += size
    return out  # type: ignore[return-value]


SIZES = [5, 0, 13, 6, 1, 12]  # uneven, with an empty batch; the 6-row batch is all ignored where ignoring
N = sum(SIZES)


# ------------------------------------------------------------------------------------------ references
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


def _ml_ce_reference(average: str, ignore: int | None) -> Callable:
    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        losses, weights, _ = _ml_per_label(z, y, w, ignore)
        if average == "none":
            return losses
        if average == "macro":
            return losses.mean()
        return (losses * weights).sum() / weights.sum()

    return ref


def _ml_logits_pos_weight_reference(pos: np.ndarray) -> Callable:
    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        loss = -(pos * y * log_expit(z) + (1 - y) * log_expit(-z))
        return (loss * w[:, None]).sum() / (w.sum() * z.shape[1])  # type: ignore[index]

    return ref


def _ml_ne_reference(average: str) -> Callable:
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


def _binary_reference(kind: str, ignore: int | None, pos: float = 1.0) -> Callable:
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


def _multiclass_reference(
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


def _soft_reference(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
    loss = -(y * log_softmax(z, axis=1)).sum(axis=1)
    return (loss * w).sum() / w.sum()  # type: ignore[operator]


def _torch_reference(**options: object) -> Callable:
    """torch's own F.cross_entropy in float64 (classes in dimension 1, mean over kept positions)."""

    def ref(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
        assert w is None
        return F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y), **options).item()  # type: ignore[arg-type]

    return ref


def _perplexity_reference(z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> object:
    vocab = z.shape[-1]
    nll = F.cross_entropy(
        torch.from_numpy(z).reshape(-1, vocab), torch.from_numpy(y).reshape(-1), ignore_index=-100, reduction="none"
    ).numpy()
    keep, weight = _keep(y, w, -100)
    return np.exp((nll * weight.reshape(-1))[keep.reshape(-1)].sum() / weight[keep].sum())


# ---------------------------------------------------------------------------------------------- cases
def _data(
    shape: tuple[int, ...], kind: str, ignore: int | None, weight_shape: tuple[int, ...] | None, seed: int
) -> list[Batch]:
    """Uneven batches of ``N`` rows: float64 scores of ``(N, *shape)``, targets, optional weights."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, *shape, generator=g, dtype=torch.float64) * 2
    if kind in ("binary", "probs"):
        y = torch.randint(0, 2, (N, *shape), generator=g)
    elif kind == "soft":
        y = torch.softmax(torch.randn(N, *shape, generator=g, dtype=torch.float64), dim=1)
    elif kind == "lm":  # (N, L, V) logits, (N, L) token ids, a few extreme logits
        y = torch.randint(0, shape[-1], (N, *shape[:-1]), generator=g)
        z[torch.rand(z.shape, generator=g) < 0.02] = 60.0
    else:  # class indices for (N, C, ...)
        y = torch.randint(0, shape[0], (N, *shape[1:]), generator=g)
    if kind == "probs":
        z = torch.sigmoid(z)
    if ignore is not None:
        y[torch.rand(y.shape, generator=g) < 0.2] = ignore
        y[18:24] = ignore  # the batch of 6 is entirely ignored
    w = None if weight_shape is None else torch.rand(N, *weight_shape, generator=g, dtype=torch.float64) * 3
    return split(N, SIZES, z, y, w)


def _multilabel_data(k: int, ignore: int | None, weighted: bool, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, k, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 2, (N, k), generator=g)
    if ignore is not None:
        y[torch.rand(N, k, generator=g) < 0.2] = ignore
        y[18:24] = ignore  # the batch of 6 is entirely ignored
    w = torch.rand(N, generator=g, dtype=torch.float64) * 3 if weighted else None
    return split(N, SIZES, z, y, w)


def _cases() -> list[Case]:
    pos = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    cw = torch.tensor([1.0, 0.5, 2.0, 3.0, 1.5], dtype=torch.float64)
    mc = multiclass_cross_entropy
    return (
        [
            Case(
                "binary-ce-probs-weighted",
                lambda: BinaryCrossEntropy(input_format="probs"),
                lambda p, t, w: binary_cross_entropy(p, t, input_format="probs", sample_weight=w),
                _data((), "probs", None, (), seed=10),
                _binary_reference("probs", None),
                1,
            ),
            Case(
                "binary-ce-logits-ignore-pos-weight",
                lambda: BinaryCrossEntropy(pos_weight=2.0, ignore_index=-1),
                lambda p, t, w: binary_cross_entropy(p, t, pos_weight=2.0, ignore_index=-1, sample_weight=w),
                _data((2,), "binary", -1, (), seed=11),
                _binary_reference("logits", -1, pos=2.0),
                1,
            ),
            Case(
                "binary-ne-ignore",
                lambda: BinaryNormalizedEntropy(ignore_index=-1),
                lambda p, t, w: binary_normalized_entropy(p, t, ignore_index=-1, sample_weight=w),
                _data((), "binary", -1, (), seed=12),
                _binary_reference("ne", -1),
                1,
            ),
            Case(
                "multiclass-ce-micro-ignore-weighted",
                lambda: MulticlassCrossEntropy(5, ignore_index=-1),
                lambda p, t, w: mc(p, t, ignore_index=-1, sample_weight=w),
                _data((5,), "class", -1, (), seed=20),
                _multiclass_reference("micro", -1, 5),
                5,
            ),
            *[
                Case(
                    f"multiclass-ce-{avg}-class-weight",
                    lambda avg=avg: MulticlassCrossEntropy(5, weight=cw, average=avg.removeprefix("weighted-")),
                    lambda p, t, w, avg=avg: mc(
                        p, t, weight=cw, sample_weight=w, average=avg.removeprefix("weighted-")
                    ),
                    _data((5,), "class", None, (), seed=21),
                    _multiclass_reference(avg, None, 5, cw.numpy()),
                    5,
                )
                for avg in ("weighted-micro", "macro", "none")
            ],
            Case(
                "multiclass-ce-positions-label-smoothing",
                lambda: MulticlassCrossEntropy(4, ignore_index=-100, label_smoothing=0.1),
                lambda p, t, w: mc(p, t, ignore_index=-100, label_smoothing=0.1),
                _data((4, 3), "class", -100, None, seed=22),
                _torch_reference(ignore_index=-100, label_smoothing=0.1),
                4,
            ),
            Case(
                "multiclass-ce-soft-targets",
                lambda: MulticlassCrossEntropy(3),
                lambda p, t, w: mc(p, t, sample_weight=w),
                _data((3,), "soft", None, (), seed=23),
                _soft_reference,
                3,
            ),
            Case(
                "multiclass-ne-ignore",
                lambda: MulticlassNormalizedEntropy(5, ignore_index=-1),
                lambda p, t, w: multiclass_normalized_entropy(p, t, ignore_index=-1, sample_weight=w),
                _data((5,), "class", -1, (), seed=24),
                _multiclass_reference("ne", -1, 5),
                5,
            ),
            *[
                Case(
                    f"perplexity-{name}",
                    lambda: Perplexity(ignore_index=-100),
                    lambda p, t, w: torch.exp(mc(p.movedim(-1, 1), t, ignore_index=-100, sample_weight=w)),
                    _data((4, 6), "lm", -100, weight_shape, seed=30),
                    _perplexity_reference,
                    1,
                )
                for name, weight_shape in (("unweighted", None), ("token-weights", (4,)), ("sequence-weights", ()))
            ],
        ]
        + [
            Case(
                f"multilabel-ce-{avg}-ignore",
                lambda avg=avg: MultilabelCrossEntropy(4, average=avg, ignore_index=-1),
                lambda p, t, w, avg=avg: multilabel_cross_entropy(p, t, average=avg, ignore_index=-1, sample_weight=w),
                _multilabel_data(4, -1, True, seed=1),
                _ml_ce_reference(avg, -1),
                4,
            )
            for avg in ("micro", "macro", "none")
        ]
        + [
            Case(
                "multilabel-ce-pos-weight",
                lambda: MultilabelCrossEntropy(3, pos_weight=pos),
                lambda p, t, w: multilabel_cross_entropy(p, t, pos_weight=pos, sample_weight=w),
                _multilabel_data(3, None, True, seed=2),
                _ml_logits_pos_weight_reference(pos.numpy()),
                3,
            ),
            *[
                Case(
                    f"multilabel-ne-{avg}",
                    lambda avg=avg: MultilabelNormalizedEntropy(3, average=avg),
                    lambda p, t, w, avg=avg: multilabel_normalized_entropy(p, t, average=avg, sample_weight=w),
                    _multilabel_data(3, None, True, seed=3),
                    _ml_ne_reference(avg),
                    3,
                )
                for avg in ("micro", "none")
            ],
        ]
    )


CASES = _cases()


def recorded(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    """Call ``fn`` and return its value with the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    return value, [str(w.message) for w in caught]


def _feed(metric: Metric, batches: list[Batch]) -> None:
    for preds, target, weight in batches:
        metric.update(preds, target, weight)


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


# --------------------------------------------------------------------------------------------- harness
def test_forward_per_batch_then_compute_matches_functional_and_reference(case: Case) -> None:
    metric = case.make()
    for batch in case.batches:  # batch values, undefined ones (nan + the same warning) included
        value, messages = recorded(lambda batch=batch: metric(*batch))
        expected, expected_messages = recorded(lambda batch=batch: case.functional(*batch))
        close(value, expected)
        assert messages == expected_messages
    assert metric.update_count == len(case.batches)
    preds, target, weight = concat(case.batches)
    close(metric.compute(), case.functional(preds, target, weight))
    w = None if weight is None else weight.numpy()
    close(metric.compute(), case.reference(preds.numpy(), target.numpy(), w))


def test_update_equals_forward_and_state_is_float64(case: Case) -> None:
    by_update, by_forward = case.make(), case.make()
    for batch in case.batches:
        by_update.update(*batch)
        recorded(lambda batch=batch: by_forward(*batch))
    assert torch.equal(by_update.sums, by_forward.sums)
    assert by_update.sums.dtype == torch.float64
    totals_only = type(by_update).__name__ == "MulticlassCrossEntropy" and by_update.average == "micro"
    assert by_update.sums.shape == (3, 1 if totals_only else case.ndim_k)  # micro CE keeps (3, 1) totals
    assert list(by_update.state_dict()) == ["sums"]


def test_merge_clone_pickle_state_dict_reset(case: Case) -> None:
    first, second = case.batches[:3], case.batches[3:]
    full = case.make()
    _feed(full, case.batches)
    expected = full.compute()

    head, tail = case.make(), case.make()
    _feed(head, first)
    _feed(tail, second)
    clone = head.clone()
    pickled = pickle.loads(pickle.dumps(head))
    resumed = case.make()
    resumed.load_state_dict(head.state_dict())

    head.merge_state(tail)
    close(head.compute(), expected)
    for copy in (clone, pickled, resumed):
        _feed(copy, second)
        assert torch.equal(copy.sums, full.sums) or torch.allclose(copy.sums, full.sums, rtol=RTOL, atol=0)
        close(copy.compute(), expected)
    clone.update(*case.batches[0])  # a clone is independent of its source
    assert not torch.equal(clone.sums, full.sums)
    close(full.compute(), expected)

    full.reset()
    assert full.update_count == 0
    assert torch.equal(full.sums, torch.zeros_like(full.sums))
    _feed(full, second)
    close(full.compute(), tail.compute())


def test_dtype_casts_keep_float64_state(case: Case) -> None:
    metric = case.make()
    _feed(metric, case.batches)
    before = metric.sums.clone()
    value = metric.compute()
    for cast in (
        lambda m: m.to(torch.float16),
        lambda m: m.half(),
        lambda m: m.bfloat16(),
        lambda m: m.float(),
        lambda m: m.type(torch.float16),
        lambda m: m.set_dtype(torch.float16),
        lambda m: m.to("cpu", torch.float32),
    ):
        cast(metric)
        assert metric.sums.dtype == torch.float64
        assert torch.equal(metric.sums, before)
        assert metric.compute().dtype == torch.float64
    close(metric.compute(), value)
    metric.reset()
    assert metric.sums.dtype == torch.float64
