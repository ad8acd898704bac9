"""Error bars from the kernels' one pass: clusters summed block by block, checked against numpy per cluster.

The kernels add each position's weighted loss and weight to its cluster as they go
(:mod:`xent_metrics.functional._cluster_sums`). These tests shrink the blocks so that clusters span
several blocks, give ``cluster_ids`` in any order with repeats, ignored targets, zero weights (one on an
infinite loss, one on a whole document) and bytes per sequence, and compare each interval with the
clustered formula (``helpers.error_bars``) on per-cluster sums taken in numpy from
``torch.nn.functional`` losses in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from helpers.error_bars import clustered_reference

from xent_metrics import MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity
from xent_metrics.functional import _chunks

Z95 = scipy.stats.norm.ppf(0.975)
IDS = torch.tensor([5, 2, 5, -1, 2, 7, 5, 7, 9])  # 9 sequences, 5 documents, ids out of order and repeated


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so that a cluster's positions fall in several blocks."""
    monkeypatch.setattr(_chunks, "CHUNK_ELEMENTS", 24)
    monkeypatch.setattr(_chunks, "HEAD_BLOCK_BYTES", 7 * 8 * 5)


def _per_document(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``(B, ...)`` per-sequence values summed per document (numpy, in order of the sorted ids)."""
    return np.stack([values[ids == doc].sum(0) for doc in np.unique(ids)])


def _check(out: dict, value: float | np.ndarray, stderr: float | np.ndarray, to_units=lambda v: v) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(out["value"].numpy(), to_units(np.asarray(value)), rtol=1e-12)
    np.testing.assert_allclose(out["stderr"].numpy(), stderr, rtol=1e-9)
    np.testing.assert_allclose(out["low"].numpy(), to_units(np.asarray(value) - Z95 * np.asarray(stderr)), rtol=1e-9)
    np.testing.assert_allclose(out["high"].numpy(), to_units(np.asarray(value) + Z95 * np.asarray(stderr)), rtol=1e-9)


def _lm_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(9, 7, 5)`` log-probabilities with an infinite loss under a zero weight, targets with ignored 1s, weights."""
    g = torch.Generator().manual_seed(3)
    log_probs = (torch.randn(9, 7, 5, generator=g, dtype=torch.float64) * 1.7).log_softmax(-1)
    target = torch.randint(0, 5, (9, 7), generator=g)
    target[2, 4:] = 1
    target[6, :2] = 1
    weight = torch.rand(9, 7, generator=g, dtype=torch.float64) * 0.7 + 0.3
    log_probs[4, 3, target[4, 3]] = -torch.inf
    weight[4, 3] = 0.0
    weight[8] = 0.0  # document 9: no weight, not a cluster
    return log_probs, target, weight


def _nll(log_probs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-token weights (0 where ignored) and weighted losses (0 where the weight is 0), numpy ``(B, L)``."""
    nll = F.nll_loss(log_probs.movedim(-1, 1), target, reduction="none", ignore_index=1).numpy()
    x = (weight * (target != 1)).numpy()
    return x, x * np.where(x != 0, nll, 0.0)  # a zero weight removes an infinite loss


@pytest.mark.usefixtures("small_blocks")
def test_cluster_ids_in_any_order_with_ignored_tokens_zero_weights_and_small_blocks() -> None:
    log_probs, target, weight = _lm_batch()
    x, y = _nll(log_probs, target, weight)
    value, stderr = clustered_reference(_per_document(x.sum(1), IDS.numpy()), _per_document(y.sum(1), IDS.numpy()))
    ppl = Perplexity(input_format="log_probs", ignore_index=1, error_bars=True)
    ppl.update(log_probs[:4], target[:4], weight[:4], cluster_ids=IDS[:4])
    ppl.update(log_probs[4:], target[4:], weight[4:], cluster_ids=IDS[4:] + 100)  # documents within an update
    first, second = IDS[:4].numpy(), IDS[4:].numpy()
    halves = clustered_reference(
        np.concatenate([_per_document(x[:4].sum(1), first), _per_document(x[4:].sum(1), second)]),
        np.concatenate([_per_document(y[:4].sum(1), first), _per_document(y[4:].sum(1), second)]),
    )
    _check(ppl.compute_interval(), *halves, np.exp)
    ce = MulticlassCrossEntropy(5, input_format="log_probs", ignore_index=1, error_bars=True)
    ce.update(log_probs.movedim(-1, 1), target, weight, cluster_ids=IDS)
    _check(ce.compute_interval(), value, stderr)


@pytest.mark.usefixtures("small_blocks")
def test_per_class_intervals_of_documents() -> None:
    log_probs, target, weight = _lm_batch()
    x, y = _nll(log_probs, target, weight)
    onehot = np.eye(5)[target.numpy()]  # (B, L, C): each token's loss and weight on its class
    x_docs = _per_document((x[..., None] * onehot).sum(1), IDS.numpy())
    y_docs = _per_document((y[..., None] * onehot).sum(1), IDS.numpy())
    expected = np.array([clustered_reference(x_docs[:, k], y_docs[:, k]) if k != 1 else (np.nan, np.nan)
                         for k in range(5)])
    metric = MulticlassCrossEntropy(5, input_format="log_probs", ignore_index=1, average="none", error_bars=True)
    metric.update(log_probs.movedim(-1, 1), target, weight, cluster_ids=IDS)
    out = metric.compute_interval()
    np.testing.assert_allclose(out["value"].numpy(), expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(out["stderr"].numpy(), expected[:, 1], rtol=1e-9)
    rows = MulticlassCrossEntropy(5, input_format="log_probs", ignore_index=1, average="none", error_bars=True)
    flat = log_probs.reshape(-1, 5)
    rows.update(flat, target.reshape(-1), weight.reshape(-1))  # (N, C): one cluster per row, classes kept beside
    x_rows, y_rows = (x[..., None] * onehot).reshape(-1, 5), (y[..., None] * onehot).reshape(-1, 5)
    expected = np.array([clustered_reference(x_rows[:, k], y_rows[:, k]) if k != 1 else (np.nan, np.nan)
                         for k in range(5)])
    np.testing.assert_allclose(rows.compute_interval()["stderr"].numpy(), expected[:, 1], rtol=1e-9)


@pytest.mark.usefixtures("small_blocks")
def test_hidden_states_with_cluster_ids_ignored_tokens_and_small_head_blocks() -> None:
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(9, 7, 6, generator=g, dtype=torch.float64)
    head = torch.randn(8, 6, generator=g, dtype=torch.float64) * 0.6
    target = torch.randint(0, 8, (9, 7), generator=g)
    target[1, 2:] = -100
    target[3] = -100  # a sequence of pads: its document (-1) alone, no weight
    nll = F.cross_entropy((hidden @ head.T).movedim(-1, 1), target, reduction="none", ignore_index=-100).numpy()
    x = (target != -100).double().numpy()
    value, stderr = clustered_reference(_per_document(x.sum(1), IDS.numpy()), _per_document(nll.sum(1), IDS.numpy()))
    metric = Perplexity(ignore_index=-100, error_bars=True)
    metric.update(hidden, target, linear_weight=head, cluster_ids=IDS)
    _check(metric.compute_interval(), value, stderr, np.exp)
    tokens = Perplexity(ignore_index=-100, error_bars=True)  # (N, d): one cluster per token
    tokens.update(hidden.reshape(-1, 6), target.reshape(-1), linear_weight=head)
    _check(tokens.compute_interval(), *clustered_reference(x.reshape(-1), nll.reshape(-1)), np.exp)


def test_bits_per_byte_of_documents_add_their_sequences_bytes() -> None:
    log_probs, target, _ = _lm_batch()
    num_bytes = torch.tensor([9, 13, 4, 17, 11, 6, 10, 15, 7])
    ids = IDS.numpy()
    metric = Perplexity(input_format="log_probs", units="bits_per_byte", error_bars=True)
    finite = torch.where(torch.isinf(log_probs), -30.0, log_probs)  # no zero weight here to remove the inf
    nll = F.nll_loss(finite.movedim(-1, 1), target, reduction="none").numpy()
    value, stderr = clustered_reference(_per_document(num_bytes.double().numpy(), ids), _per_document(nll.sum(1), ids))
    metric.update(finite, target, num_bytes=num_bytes, cluster_ids=IDS)
    _check(metric.compute_interval(), value, stderr, lambda v: v / math.log(2))


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("average", ["micro", "none"])
def test_multilabel_rows_with_ignored_entries_and_zero_weights(average: str) -> None:
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(23, 4, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 2, (23, 4), generator=g)
    target[::5, 1] = -1
    target[7] = -1  # a row with every label ignored: no cluster
    weight = torch.rand(23, generator=g, dtype=torch.float64) + 0.2
    weight[3] = 0.0
    loss = F.binary_cross_entropy_with_logits(logits, target.clamp_min(0).double(), reduction="none").numpy()
    x = (weight[:, None] * (target != -1)).numpy()
    y = x * loss
    metric = MultilabelCrossEntropy(4, average=average, ignore_index=-1, error_bars=True)
    metric.update(logits[:10], target[:10], weight[:10])
    metric.update(logits[10:], target[10:], weight[10:])
    if average == "micro":
        _check(metric.compute_interval(), *clustered_reference(x.sum(1), y.sum(1)))
        return
    expected = np.array([clustered_reference(x[:, k], y[:, k]) for k in range(4)])
    _check(metric.compute_interval(), expected[:, 0], expected[:, 1])
    unit = MultilabelCrossEntropy(4, average="none", error_bars=True)  # the unit-weight path
    unit.update(logits, target.clamp_min(0))
    expected = np.array([clustered_reference(np.ones(23), loss[:, k]) for k in range(4)])
    _check(unit.compute_interval(), expected[:, 0], expected[:, 1])


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("average", ["micro", "none"])
def test_multilabel_k_dim_samples_are_the_clusters(average: str) -> None:
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(7, 3, 4, generator=g, dtype=torch.float64) * 1.3  # (N, K, L): a sample spans L positions
    target = torch.randint(0, 2, (7, 3, 4), generator=g)
    target[2, 1, :3] = -1
    weight = torch.rand(7, generator=g, dtype=torch.float64) + 0.1
    weight[5] = 0.0
    loss = F.binary_cross_entropy_with_logits(logits, target.clamp_min(0).double(), reduction="none").numpy()
    x = (weight[:, None, None] * (target != -1)).numpy()
    y = x * loss
    metric = MultilabelCrossEntropy(3, average=average, ignore_index=-1, error_bars=True)
    metric.update(logits, target, weight)
    if average == "micro":
        _check(metric.compute_interval(), *clustered_reference(x.sum((1, 2)), y.sum((1, 2))))
        return
    expected = np.array([clustered_reference(x[:, k].sum(1), y[:, k].sum(1)) for k in range(3)])
    _check(metric.compute_interval(), expected[:, 0], expected[:, 1])


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("average", ["micro", "none"])
def test_float32_multilabel_rows_read_the_kernels_float64_losses(average: str) -> None:
    """Float32 logits, unit weights: the clusters read the losses the kernel widened for its own column sums."""
    g = torch.Generator().manual_seed(12)
    logits = torch.randn(29, 5, generator=g) * 2.5
    target = torch.randint(0, 2, (29, 5), generator=g)
    target[::4, 2] = -1
    loss = F.binary_cross_entropy_with_logits(logits.double(), target.clamp_min(0).double(), reduction="none")
    x = (target != -1).double().numpy()
    y = x * loss.numpy()
    metric = MultilabelCrossEntropy(5, average=average, ignore_index=-1, error_bars=True)
    metric.update(logits[:11], target[:11])
    metric.update(logits[11:], target[11:])
    out = metric.compute_interval()
    if average == "micro":
        expected = np.array(clustered_reference(x.sum(1), y.sum(1)))
    else:
        expected = np.array([clustered_reference(x[:, k], y[:, k]) for k in range(5)]).T
    np.testing.assert_allclose(out["value"].numpy(), expected[0], rtol=1e-6)  # float32 losses
    np.testing.assert_allclose(out["stderr"].numpy(), expected[1], rtol=1e-5)
