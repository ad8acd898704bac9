"""``error_bars=True`` and ``compute_interval`` on the Metric classes, against numpy formulas written here.

Per-token losses come from ``torch.nn.functional`` in float64; the clustered standard error from
:func:`_reference` (the delta method for a ratio with the ``G / (G - 1)`` correction), never from the
package; a cluster bootstrap and a seeded coverage simulation check the formula itself.
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
import torchmetrics
from helpers.error_bars import clustered_reference

import xent_metrics
from xent_metrics import BinaryCrossEntropy, MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity

Z95 = scipy.stats.norm.ppf(0.975)


def _check(out: dict, value: float, stderr: float, to_units=lambda v: v, rel: float = 1e-9) -> None:
    assert float(out["value"]) == pytest.approx(to_units(value), rel=1e-12)
    assert float(out["stderr"]) == pytest.approx(stderr, rel=rel)
    assert float(out["low"]) == pytest.approx(to_units(value - Z95 * stderr), rel=1e-9)
    assert float(out["high"]) == pytest.approx(to_units(value + Z95 * stderr), rel=1e-9)


def _update_in_parts(metric, cuts: list[int], *tensors: torch.Tensor | None, **kw: object) -> None:
    size = tensors[0].shape[0]
    for lo, hi in zip([0, *cuts], [*cuts, size], strict=True):
        metric.update(*[None if t is None else t[lo:hi] for t in tensors], **kw)


def test_multiclass_micro_per_sample_with_weights_ignore_index_and_class_weight() -> None:
    preds = torch.randn(90, 5, dtype=torch.float64) * 2
    target = torch.randint(0, 5, (90,))
    target[::7] = -100
    weight = torch.rand(90, dtype=torch.float64) * 0.7 + 0.3
    class_weight = torch.tensor([0.3, 1.0, 2.0, 0.7, 1.3])
    metric = MulticlassCrossEntropy(num_classes=5, weight=class_weight, ignore_index=-100, error_bars=True)
    _update_in_parts(metric, [13, 13, 50], preds, target, weight)
    keep = target != -100
    nll = F.cross_entropy(preds.double(), target.clamp_min(0), reduction="none").numpy()
    x = (weight * class_weight.double()[target.clamp_min(0)] * keep).numpy()
    value, stderr = clustered_reference(x, x * nll)
    _check(metric.compute_interval(), value, stderr)
    assert float(metric.compute()) == pytest.approx(value, rel=1e-12)


def test_sequences_are_the_clusters_of_k_dim_and_lm_inputs() -> None:
    logits = torch.randn(12, 9, 7, dtype=torch.float64) * 1.5  # (B, L, V)
    target = torch.randint(0, 7, (12, 9))
    nll = F.cross_entropy(logits.double().movedim(-1, 1), target, reduction="none").numpy()  # (B, L)
    value, stderr = clustered_reference(np.full(12, 9.0), nll.sum(1))
    ce = MulticlassCrossEntropy(num_classes=7, error_bars=True)
    _update_in_parts(ce, [5], logits.movedim(-1, 1), target)
    _check(ce.compute_interval(), value, stderr)
    ppl = Perplexity(error_bars=True)
    _update_in_parts(ppl, [3, 8], logits, target)
    _check(ppl.compute_interval(), value, stderr, math.exp)
    bits = Perplexity(units="bits_per_token", error_bars=True)
    bits.update(logits, target)
    _check(bits.compute_interval(), value, stderr, lambda v: v / math.log(2))


def test_cluster_ids_group_the_sequences_of_a_document() -> None:
    logits = torch.randn(10, 6, 5, dtype=torch.float64)
    target = torch.randint(0, 5, (10, 6))
    target[2, 3:] = 1  # pads ignored below
    documents = [torch.tensor([3, 3, 8, 1, 1, 1]), torch.tensor([0, 9, 9, 0])]
    nll = F.cross_entropy(logits.double().movedim(-1, 1), target, reduction="none", ignore_index=1).numpy()
    kept = (target != 1).double().numpy()
    ids = torch.cat([documents[0], documents[1] + 100]).numpy()
    x = np.array([kept[ids == d].sum() for d in np.unique(ids)])
    y = np.array([nll[ids == d].sum() for d in np.unique(ids)])
    value, stderr = clustered_reference(x, y)
    metrics = (Perplexity(ignore_index=1, error_bars=True), MulticlassCrossEntropy(5, ignore_index=1, error_bars=True))
    for metric in metrics:
        moved = metric.__class__ is MulticlassCrossEntropy
        for rows, doc in ((slice(0, 6), documents[0]), (slice(6, 10), documents[1])):
            preds = logits[rows].movedim(-1, 1) if moved else logits[rows]
            metric.update(preds, target[rows], cluster_ids=doc)
        _check(metric.compute_interval(), value, stderr, math.exp if not moved else (lambda v: v))


def test_hidden_states_equal_the_logits_path() -> None:
    hidden = torch.randn(6, 5, 8, dtype=torch.float64)
    head = torch.randn(11, 8, dtype=torch.float64) * 0.4
    target = torch.randint(0, 11, (6, 5))
    nll = F.cross_entropy((hidden @ head.T).movedim(-1, 1), target, reduction="none").numpy()
    value, stderr = clustered_reference(np.full(6, 5.0), nll.sum(1))
    metric = Perplexity(error_bars=True)
    metric.update(hidden[:4], target[:4], linear_weight=head)
    metric.update(hidden[4:], target[4:], linear_weight=head, cluster_ids=torch.tensor([0, 1]))
    _check(metric.compute_interval(), value, stderr, math.exp)


def test_bits_per_byte_take_the_sequences_bytes_as_denominators() -> None:
    logits = torch.randn(8, 4, 6, dtype=torch.float64)
    target = torch.randint(0, 6, (8, 4))
    num_bytes = torch.tensor([9, 13, 4, 17, 11, 6, 10, 15])
    nll = F.cross_entropy(logits.double().movedim(-1, 1), target, reduction="none").numpy().sum(1)
    value, stderr = clustered_reference(num_bytes.double().numpy(), nll)
    metric = Perplexity(units="bits_per_byte", error_bars=True)
    metric.update(logits[:3], target[:3], num_bytes=num_bytes[:3])
    metric.update(logits[3:], target[3:], num_bytes=num_bytes[3:])
    _check(metric.compute_interval(), value, stderr, lambda v: v / math.log(2))
    assert float(metric.compute()) == pytest.approx(value / math.log(2), rel=1e-12)
    with pytest.raises(ValueError, match=r"`num_bytes` as one count per sequence, an integer tensor of shape \(3,\)"):
        metric.update(logits[:3], target[:3], num_bytes=40)
    glob = Perplexity(units="bits_per_byte", num_bytes=int(num_bytes.sum()), error_bars=True)
    glob.update(logits, target)
    tokens = clustered_reference(np.full(8, 4.0), nll)
    per_byte = 32 / int(num_bytes.sum())
    _check(glob.compute_interval(), tokens[0] * per_byte, tokens[1] * per_byte, lambda v: v / math.log(2))


def test_per_class_and_macro_intervals() -> None:
    preds = torch.randn(120, 4, dtype=torch.float64)
    target = torch.randint(0, 4, (120,))
    nll = F.cross_entropy(preds.double(), target, reduction="none").numpy()
    t = target.numpy()
    per_class = [clustered_reference(np.ones((t == k).sum()), nll[t == k]) for k in range(4)]
    none = MulticlassCrossEntropy(4, average="none", error_bars=True)
    _update_in_parts(none, [40, 77], preds, target)
    out = none.compute_interval()
    for k in range(4):
        _check({key: v[k] for key, v in out.items()}, *per_class[k])
    macro = MulticlassCrossEntropy(4, average="macro", error_bars=True)
    macro.update(preds, target)
    value = np.mean([v for v, _ in per_class])
    _check(macro.compute_interval(), value, math.sqrt(sum(s * s for _, s in per_class)) / 4)
    spanning = MulticlassCrossEntropy(4, average="macro", error_bars=True)
    spanning.update(torch.randn(3, 4, 5, dtype=torch.float64), torch.randint(0, 4, (3, 5)))
    with pytest.raises(ValueError, match="average='macro' has an interval only where each cluster falls in one column"):
        spanning.compute_interval()


def test_binary_and_multilabel() -> None:
    logits = torch.randn(50, 3, dtype=torch.float64)
    target = torch.randint(0, 2, (50, 3))
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double(), reduction="none").numpy()
    micro = MultilabelCrossEntropy(3, error_bars=True)
    _update_in_parts(micro, [20], logits, target)
    _check(micro.compute_interval(), *clustered_reference(np.full(50, 3.0), bce.sum(1)))
    none = MultilabelCrossEntropy(3, average="none", error_bars=True)
    none.update(logits, target)
    out = none.compute_interval()
    for k in range(3):
        _check({key: v[k] for key, v in out.items()}, *clustered_reference(np.ones(50), bce[:, k]))
    binary = BinaryCrossEntropy(error_bars=True)
    binary.update(logits[:, 0], target[:, 0])
    _check(binary.compute_interval(), *clustered_reference(np.ones(50), bce[:, 0]))
    macro = MultilabelCrossEntropy(3, average="macro", error_bars=True)
    macro.update(logits, target)
    with pytest.raises(ValueError, match="average='macro' has an interval only"):
        macro.compute_interval()


@pytest.mark.parametrize("name", [f"{task}NormalizedEntropy" for task in ("Binary", "Multiclass", "Multilabel")])
def test_normalized_entropy_names_its_limitation(name: str) -> None:
    cls = getattr(xent_metrics, name)
    args = () if name.startswith("Binary") else (3,)
    with pytest.raises(ValueError, match=r"error_bars=True is not available for .*NormalizedEntropy: normalized"):
        cls(*args, error_bars=True)


def test_argument_and_usage_errors() -> None:
    with pytest.raises(TypeError, match="error_bars"):
        MulticlassCrossEntropy(3, error_bars="yes")
    with pytest.raises(ValueError, match=r"compute_interval\(\) needs the error-bar rows: construct the metric with"):
        MulticlassCrossEntropy(3).compute_interval()
    metric = MulticlassCrossEntropy(3, error_bars=True)
    metric.update(torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0]))
    before = metric.sums.clone()
    with pytest.raises(ValueError, match=r"`cluster_ids` must have shape \(4,\)"):
        metric.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), cluster_ids=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="must lie strictly between 0 and 1"):
        metric.compute_interval(1.5)
    assert torch.equal(metric.sums, before) and metric._update_count == 1
    with pytest.raises(TypeError, match="cluster_ids"):
        MulticlassCrossEntropy(3).update(torch.randn(2, 3), torch.tensor([0, 1]), cluster_ids=torch.tensor([0, 0]))


def test_default_state_is_untouched_and_layouts_do_not_mix() -> None:
    plain, bars = MulticlassCrossEntropy(3), MulticlassCrossEntropy(3, error_bars=True)
    assert tuple(plain.sums.shape) == (3, 1) and tuple(bars.sums.shape) == (8, 1)
    assert type(plain).update is MulticlassCrossEntropy.update
    preds, target = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 3, (10,))
    plain.update(preds, target)
    bars.update(preds, target)
    assert torch.allclose(bars.sums[:3], plain.sums, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="with error bars"):
        MulticlassCrossEntropy(3).load_state_dict(bars.state_dict())
    with pytest.raises(ValueError, match="with error bars"):
        MulticlassCrossEntropy(3, error_bars=True).load_state_dict(plain.state_dict())
    with pytest.raises(ValueError, match=r"floating tensor of shape \(8, 1\)"):
        MulticlassCrossEntropy(3, error_bars=True).load_state_dict({"sums": plain.sums})
    with pytest.raises(ValueError, match="with error bars"):
        MulticlassCrossEntropy(3, error_bars=True).merge_state(plain)
    per_class = MulticlassCrossEntropy(3, average="none", error_bars=True)
    with pytest.raises(ValueError, match="with error bars"):
        bars.merge_state(per_class)
    macro = MulticlassCrossEntropy(3, average="macro", error_bars=True)
    per_class.update(preds, target)
    before = macro.sums.clone()
    with pytest.raises(ValueError, match=r"average='none'.*average='macro'.*may differ, but not with error_bars"):
        macro.merge_state(per_class)
    assert torch.equal(macro.sums, before)
    MulticlassCrossEntropy(3, average="macro").merge_state(MulticlassCrossEntropy(3, average="none"))  # no error bars


def test_state_dict_merge_forward_clone_and_pickle_keep_the_rows() -> None:
    preds, target = torch.randn(30, 4, 3, dtype=torch.float64), torch.randint(0, 4, (30, 3))
    whole = MulticlassCrossEntropy(4, error_bars=True)
    whole.update(preds, target)
    expected = whole.compute_interval()
    first, second = MulticlassCrossEntropy(4, error_bars=True), MulticlassCrossEntropy(4, error_bars=True)
    batch_value = first(preds[:11], target[:11])  # forward: the batch's value, the rows accumulated
    assert float(batch_value) == pytest.approx(float(F.cross_entropy(preds[:11].double(), target[:11])), rel=1e-12)
    second.update(preds[11:], target[11:])
    first.merge_state(second)
    loaded = MulticlassCrossEntropy(4, error_bars=True)
    loaded.load_state_dict(first.state_dict())
    for metric in (first, loaded, copy.deepcopy(loaded), pickle.loads(pickle.dumps(loaded))):
        out = metric.compute_interval()
        assert float(out["value"]) == pytest.approx(float(expected["value"]), rel=1e-12)
        assert float(out["stderr"]) == pytest.approx(float(expected["stderr"]), rel=1e-9)
    revived = pickle.loads(pickle.dumps(loaded))
    revived.update(preds[:2], target[:2])  # still the error-bar update after unpickling
    assert float(revived.sums[3 + 1, 0]) == 32


def test_cluster_bootstrap_agrees() -> None:
    gen = np.random.default_rng(5)
    effects = torch.randn(40, 1, 6, dtype=torch.float64) * 1.5  # per sequence: tokens correlated within
    logits = torch.randn(40, 16, 6, dtype=torch.float64) + effects
    target = torch.randint(0, 6, (40, 16))
    metric = Perplexity(error_bars=True)
    metric.update(logits, target)
    stderr = float(metric.compute_interval()["stderr"])
    y = F.cross_entropy(logits.double().movedim(-1, 1), target, reduction="none").numpy().sum(1)
    draws = gen.integers(0, 40, (4000, 40))
    boot = y[draws].sum(1) / (16 * 40)
    assert stderr == pytest.approx(boot.std(ddof=1), rel=0.06)


def _coverage(clustered: bool, reps: int = 400) -> float:
    """The share of seeded data sets (40 sequences of 30 tokens, correlated within) whose 95% interval holds the truth.

    Per-token loss ``exp(s_c + t_ct)`` with ``s_c, t_ct ~ N(0, 0.3^2)``: the expected loss is
    ``exp(0.3^2 / 2 + 0.3^2 / 2)``; preds are the probabilities ``exp(-loss)`` of the positive class.
    """
    gen = torch.Generator().manual_seed(11)
    truth = math.exp(0.09)
    hits = 0
    for _ in range(reps):
        loss = torch.exp(
            0.3 * torch.randn(40, 1, generator=gen, dtype=torch.float64)
            + 0.3 * torch.randn(40, 30, generator=gen, dtype=torch.float64)
        )
        probs, target = torch.exp(-loss), torch.ones(40, 30, dtype=torch.long)
        metric = BinaryCrossEntropy(input_format="probs", error_bars=True)
        if clustered:
            metric.update(probs, target)
            out = metric.compute_interval()
            low, high = float(out["low"]), float(out["high"])
        else:  # one token per cluster: the i.i.d. interval, written here
            flat = loss.reshape(-1).numpy()
            half = Z95 * flat.std(ddof=1) / math.sqrt(flat.size)
            low, high = flat.mean() - half, flat.mean() + half
        hits += low <= truth <= high
    return hits / reps


def test_seeded_coverage_of_clustered_and_token_level_intervals() -> None:
    clustered, token_level = _coverage(True), _coverage(False)
    assert 0.93 <= clustered <= 0.97, clustered
    assert token_level < 0.8, token_level


@pytest.mark.parametrize("input_format", ["logits", "probs", "log_probs"])
def test_rows_equal_the_same_rows_as_sequences(input_format: str) -> None:
    """(N, C) rows (one cluster per row, classes kept beside) and the same rows as (N, C, 1) sequences."""
    logits = torch.randn(40, 5, dtype=torch.float64) * 3
    preds = {"logits": logits, "probs": logits.softmax(1), "log_probs": logits.log_softmax(1)}[input_format]
    target = torch.randint(0, 5, (40,))
    target[3] = 2
    weight = torch.rand(40, dtype=torch.float64)
    weight[5] = 0.0
    for average in ("micro", "none", "macro"):
        options = {"input_format": input_format, "average": average, "ignore_index": 2, "error_bars": True}
        rows, sequences = MulticlassCrossEntropy(5, **options), MulticlassCrossEntropy(5, **options)
        rows.update(preds, target, weight)
        sequences.update(preds[:, :, None], target[:, None], weight)
        for key, value in rows.compute_interval().items():
            torch.testing.assert_close(value, sequences.compute_interval()[key], rtol=1e-12, atol=0.0, equal_nan=True)
    labels = torch.randint(0, 2, (40, 3))
    for average in ("micro", "none"):
        rows, sequences = (MultilabelCrossEntropy(3, average=average, error_bars=True) for _ in range(2))
        rows.update(logits[:, :3], labels, weight)
        sequences.update(logits[:, :3, None], labels[:, :, None], weight)
        for key, value in rows.compute_interval().items():
            torch.testing.assert_close(value, sequences.compute_interval()[key], rtol=1e-12, atol=0.0)


def test_label_smoothing_and_soft_targets_are_clustered_per_row() -> None:
    preds = torch.randn(30, 4, dtype=torch.float64)
    target = torch.randint(0, 4, (30,))
    metric = MulticlassCrossEntropy(4, label_smoothing=0.2, error_bars=True)
    metric.update(preds, target)
    nll = F.cross_entropy(preds, target, label_smoothing=0.2, reduction="none").numpy()
    _check(metric.compute_interval(), *clustered_reference(np.ones(30), nll))
    soft = torch.rand(30, 4, dtype=torch.float64).softmax(1)
    metric = MulticlassCrossEntropy(4, error_bars=True)
    metric.update(preds, soft)
    nll = F.cross_entropy(preds, soft, reduction="none").numpy()
    _check(metric.compute_interval(), *clustered_reference(np.ones(30), nll))


def test_paired_difference_is_the_clustered_formula_on_the_differences() -> None:
    logits_a = torch.randn(14, 6, 5, dtype=torch.float64) + torch.randn(14, 1, 5, dtype=torch.float64)
    logits_b = logits_a + 0.4 * torch.randn(14, 6, 5, dtype=torch.float64)
    target = torch.randint(0, 5, (14, 6))
    docs = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 5, 5, 6, 6, 6, 7])
    nll = [F.cross_entropy(lg.movedim(-1, 1), target, reduction="none").numpy() for lg in (logits_a, logits_b)]
    d = np.array([(nll[0][docs == k] - nll[1][docs == k]).sum() for k in range(8)])
    x = np.array([(docs == k).sum() * 6.0 for k in range(8)])
    value, stderr = clustered_reference(x, d)
    paired = xent_metrics.PairedDifference(Perplexity(units="bits_per_token"))
    paired.update(logits_a[:6], logits_b[:6], target[:6], cluster_ids=docs[:6])
    paired.update(logits_a[6:], logits_b[6:], target[6:], cluster_ids=docs[6:])
    _check(paired.compute_interval(), value, stderr, lambda v: v / math.log(2))
    assert float(paired.compute()) == pytest.approx(value / math.log(2), rel=1e-12)
    ce = [MulticlassCrossEntropy(5) for _ in range(2)]
    for metric, logits in zip(ce, (logits_a, logits_b), strict=True):
        metric.update(logits.movedim(-1, 1), target)
    assert value == pytest.approx(float(ce[0].compute() - ce[1].compute()), rel=1e-12)
    with pytest.raises(TypeError, match="`metric` must be a cross-entropy Metric of this package, got MeanMetric"):
        xent_metrics.PairedDifference(torchmetrics.MeanMetric())
    with pytest.raises(ValueError, match="PairedDifference needs a cross-entropy metric with average='micro'"):
        xent_metrics.PairedDifference(MulticlassCrossEntropy(5, average="none"))
    with pytest.raises(ValueError, match="PairedDifference needs a cross-entropy metric with average='micro'"):
        xent_metrics.PairedDifference(xent_metrics.BinaryNormalizedEntropy())


def test_paired_difference_of_two_heads_on_hidden_states() -> None:
    hidden_a, hidden_b = torch.randn(7, 5, 4, dtype=torch.float64), torch.randn(7, 5, 3, dtype=torch.float64)
    weight_a, weight_b = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64) * 0.3
    bias_a = torch.randn(6, dtype=torch.float64)
    target = torch.randint(0, 6, (7, 5))
    target[1, 2] = -100
    docs = torch.tensor([0, 0, 1, 2, 2, 3, 4])
    logits = [hidden_a @ weight_a.T + bias_a, hidden_b @ weight_b.T]  # model B: a head without bias, a smaller d
    nll = [F.cross_entropy(lg.movedim(-1, 1), target, ignore_index=-100, reduction="none").numpy() for lg in logits]
    d = np.array([(nll[0][docs == k] - nll[1][docs == k]).sum() for k in range(5)])
    x = np.array([(target[docs == k] != -100).sum().item() * 1.0 for k in range(5)])
    paired = xent_metrics.PairedDifference(Perplexity(ignore_index=-100))
    heads = {"linear_weight_a": weight_a, "linear_bias_a": bias_a, "linear_weight_b": weight_b}
    paired.update(hidden_a[:3], hidden_b[:3], target[:3], cluster_ids=docs[:3], **heads)
    paired.update(hidden_a[3:], hidden_b[3:], target[3:], cluster_ids=docs[3:], **heads)
    _check(paired.compute_interval(), *clustered_reference(x, d))
    before = paired.sums.clone()
    with pytest.raises(ValueError, match=r"model B \(`preds_b`\): `linear_weight` must have shape \(V, 3\)"):
        paired.update(hidden_a, hidden_b, target, linear_weight_a=weight_a, linear_weight_b=weight_a)
    with pytest.raises(TypeError, match=r"got both `linear_weight` .* and `linear_weight_b`"):
        paired.update(hidden_a, hidden_a, target, linear_weight=weight_a, linear_weight_b=weight_a)
    assert torch.equal(paired.sums, before)
    flat = xent_metrics.PairedDifference(MulticlassCrossEntropy(6, ignore_index=-100))  # (N, d), one shared head
    weight = torch.rand(35, dtype=torch.float64) + 0.2
    flat.update(hidden_a.reshape(35, 4), hidden_a.reshape(35, 4) * 0.5, target.reshape(35), weight,
                linear_weight=weight_a, linear_bias=bias_a)
    logits = [hidden_a.reshape(35, 4) * scale @ weight_a.T + bias_a for scale in (1.0, 0.5)]
    nll = [F.cross_entropy(lg, target.reshape(35), ignore_index=-100, reduction="none").numpy() for lg in logits]
    x = (weight * (target.reshape(35) != -100)).numpy()
    _check(flat.compute_interval(), *clustered_reference(x, x * (nll[0] - nll[1])))


def test_paired_difference_pools_by_its_layout() -> None:
    logits, target = torch.randn(6, 4, 5, dtype=torch.float64), torch.randint(0, 5, (6, 4))
    halves = [xent_metrics.PairedDifference(Perplexity()) for _ in range(3)]
    halves[0].update(logits[:2], logits[:2].flip(-1), target[:2])
    halves[1].update(logits[2:], logits[2:].flip(-1), target[2:])
    halves[2].update(logits, logits.flip(-1), target)
    merged = halves[0].clone()
    merged.merge_state(halves[1])
    torch.testing.assert_close(merged.sums, halves[2].sums, rtol=1e-12, atol=1e-12)
    loaded = xent_metrics.PairedDifference(Perplexity())
    loaded.load_state_dict(halves[2].state_dict())
    assert torch.equal(loaded.sums, halves[2].sums)
    bits = xent_metrics.PairedDifference(Perplexity(units="bits_per_token"))
    before = bits.sums.clone()
    both = (
        r"holds the sums of PairedDifference\(Perplexity\(units='perplexity'.*"
        r"this metric is PairedDifference\(Perplexity\(units='bits_per_token'"
    )
    with pytest.raises(ValueError, match=both):
        bits.merge_state(halves[0])
    with pytest.raises(ValueError, match=both):
        bits.load_state_dict(halves[0].state_dict())
    with pytest.raises(ValueError, match=r"holds the sums of Perplexity\(.* \(3, 1\); this metric is PairedDiff"):
        bits.merge_state(Perplexity())
    assert torch.equal(bits.sums, before)
    cross_entropy = xent_metrics.PairedDifference(MulticlassCrossEntropy(5, ignore_index=0))
    with pytest.raises(ValueError, match=r"over multiclass\(.*ignore_index=0.* for models A and B"):
        cross_entropy.merge_state(xent_metrics.PairedDifference(MulticlassCrossEntropy(5)))


def test_metric_collection_routes_cluster_ids_and_keeps_layouts_apart() -> None:
    logits, target = torch.randn(6, 4, 5, dtype=torch.float64), torch.randint(0, 5, (6, 4))
    docs = torch.tensor([0, 0, 1, 1, 2, 2])
    collection = torchmetrics.MetricCollection({
        "bars": Perplexity(error_bars=True),
        "plain": Perplexity(),
        "bits": Perplexity(units="bits_per_token", error_bars=True),
    })
    collection.update(logits, target, cluster_ids=docs)
    alone = Perplexity(error_bars=True)
    alone.update(logits, target, cluster_ids=docs)
    assert float(collection["bars"].sums[3 + 1, 0]) == 3  # three documents
    assert torch.equal(collection["bars"].sums, alone.sums)
    assert tuple(collection["plain"].sums.shape) == (3, 1)
    out = collection["bars"].compute_interval()
    assert float(out["stderr"]) == pytest.approx(float(alone.compute_interval()["stderr"]), rel=1e-15)
    assert float(collection["bits"].compute_interval()["stderr"]) == pytest.approx(float(out["stderr"]), rel=1e-15)
