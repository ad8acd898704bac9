"""The hidden-state path of ``Perplexity`` and ``MulticlassCrossEntropy``; bits per token and per byte."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from xent_metrics import MulticlassCrossEntropy, MulticlassNormalizedEntropy, Perplexity

V, D = 23, 5
LENGTHS = [7, 3, 12]  # three batches of (2, L) tokens


def _batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for length in LENGTHS:
        target = torch.randint(0, V, (2, length), generator=g)
        target[torch.rand(target.shape, generator=g) < 0.2] = -100
        hidden = torch.randn(2, length, D, generator=g, dtype=torch.float64) * 1.7
        out.append((hidden, target, torch.rand(2, length, generator=g, dtype=torch.float64)))
    return out


def _head(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, D, generator=g, dtype=torch.float64), torch.randn(V, generator=g, dtype=torch.float64) * 0.3


def _token_losses(batches: list, head: tuple, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token float64 losses of all batches (F.cross_entropy on the full logits), their targets and weights."""
    logits = torch.cat([F.linear(h, *head).reshape(-1, V) for h, _, _ in batches])
    target = torch.cat([t.reshape(-1) for _, t, _ in batches])
    weight = torch.cat([w.reshape(-1) for _, _, w in batches])
    loss = F.cross_entropy(logits, target, ignore_index=-100, reduction="none", **kwargs)  # type: ignore[arg-type]
    return loss, target, weight


def test_perplexity_from_hidden_states_over_batches() -> None:
    batches, head = _batches(), _head()
    metric = Perplexity(ignore_index=-100)
    values = [metric(h, t, w, linear_weight=head[0], linear_bias=head[1]) for h, t, w in batches]  # forward
    loss, target, weight = _token_losses(batches, head)
    keep = target != -100
    expected = torch.exp((loss * weight)[keep].sum() / weight[keep].sum())
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-12, atol=0.0)
    first = _token_losses(batches[:1], head)
    w0 = first[2] * (first[1] != -100)
    torch.testing.assert_close(values[0], torch.exp((first[0] * w0).sum() / w0.sum()), rtol=1e-12, atol=0.0)
    assert metric.sums.shape == (3, 1)


def test_multiclass_from_hidden_states_with_every_option() -> None:
    batches, head = _batches(2), _head(3)
    cw = torch.linspace(0.3, 1.9, V, dtype=torch.float64)
    metric = MulticlassCrossEntropy(V, ignore_index=-100, weight=cw, label_smoothing=0.15, average="none")
    for h, t, w in batches:
        metric.update(h, t, w[:, 0], linear_weight=head[0], linear_bias=head[1])  # one weight per sequence
    seq_w = torch.cat([w[:, :1].expand_as(w).reshape(-1) for _, _, w in batches])
    loss, target, _ = _token_losses(batches, head, weight=cw, label_smoothing=0.15)
    keep = target != -100
    cls = target[keep]
    num = torch.zeros(V, dtype=torch.float64).index_add_(0, cls, (loss * seq_w)[keep])
    den = torch.zeros(V, dtype=torch.float64).index_add_(0, cls, (seq_w * cw[target.clamp(min=0)])[keep])
    torch.testing.assert_close(metric.compute(), num / den, rtol=1e-12, atol=0.0, equal_nan=True)


def test_hidden_and_logits_paths_give_the_same_sums() -> None:
    batches, head = _batches(4), _head(5)
    for make in (lambda: Perplexity(ignore_index=-100), lambda: MulticlassNormalizedEntropy(V, ignore_index=-100)):
        from_hidden, from_logits = make(), make()
        for h, t, w in batches:
            from_hidden.update(h, t, w, linear_weight=head[0], linear_bias=head[1])
            logits = F.linear(h, *head)
            if isinstance(from_logits, Perplexity):
                from_logits.update(logits, t, w)
            else:
                from_logits.update(logits.movedim(-1, 1), t, w)
        torch.testing.assert_close(from_hidden.sums, from_logits.sums, rtol=1e-12, atol=1e-300)


# --------------------------------------------------------------------------- bits per token and per byte
def _lm_eval_bits_per_byte(items: list[tuple[float, int]]) -> float:
    """lm-evaluation-harness' definition (lm_eval/api/metrics.py: ``bits_per_byte`` over ``weighted_mean``).

    ``items`` are ``(loglikelihood, bytes)`` per document, the loglikelihood in nats summed over its
    tokens and bytes ``len(doc.encode("utf-8"))`` (its ``count_bytes``).
    """
    a, b = zip(*items, strict=True)
    return -(sum(a) / sum(b)) / math.log(2)


def _lm_eval_weighted_perplexity(items: list[tuple[float, int]]) -> float:
    a, b = zip(*items, strict=True)
    return math.exp(-(sum(a) / sum(b)))


DOCS = ["naïve café", "Zürich — über", "plain ascii text"]  # multi-byte UTF-8: more bytes than characters


def _char_model() -> tuple[list[torch.Tensor], list[torch.Tensor], tuple[torch.Tensor, torch.Tensor], list[str]]:
    vocab = sorted(set("".join(DOCS)))
    g = torch.Generator().manual_seed(6)
    head = (torch.randn(len(vocab), D, generator=g, dtype=torch.float64), torch.zeros(len(vocab), dtype=torch.float64))
    targets = [torch.tensor([vocab.index(c) for c in doc]) for doc in DOCS]
    hidden = [torch.randn(len(doc), D, generator=g, dtype=torch.float64) for doc in DOCS]
    return hidden, targets, head, vocab


def test_bits_per_byte_and_per_token_follow_lm_evaluation_harness() -> None:
    hidden, targets, head, _ = _char_model()
    items_bytes, items_tokens = [], []
    for h, t, doc in zip(hidden, targets, DOCS, strict=True):
        loglik = torch.log_softmax(F.linear(h, *head), dim=1).gather(1, t[:, None]).sum().item()
        items_bytes.append((loglik, len(doc.encode("utf-8"))))
        items_tokens.append((loglik, len(doc)))
    total_bytes = sum(len(doc.encode("utf-8")) for doc in DOCS)
    assert total_bytes > sum(len(doc) for doc in DOCS)
    metrics = {
        "bits_per_byte": Perplexity(units="bits_per_byte", num_bytes=total_bytes),
        "bits_per_token": Perplexity(units="bits_per_token"),
        "perplexity": Perplexity(),
    }
    for metric in metrics.values():
        for h, t in zip(hidden, targets, strict=True):
            metric.update(h, t, linear_weight=head[0], linear_bias=head[1])
    assert metrics["bits_per_byte"].compute().item() == pytest.approx(_lm_eval_bits_per_byte(items_bytes), rel=1e-12)
    bits_per_token = _lm_eval_bits_per_byte(items_tokens)  # the same formula over token counts
    assert metrics["bits_per_token"].compute().item() == pytest.approx(bits_per_token, rel=1e-12)
    ppl = _lm_eval_weighted_perplexity(items_tokens)
    assert metrics["perplexity"].compute().item() == pytest.approx(ppl, rel=1e-12)
    assert 2 ** metrics["bits_per_token"].compute().item() == pytest.approx(ppl, rel=1e-12)


def test_bits_with_no_data_are_nan_with_a_warning() -> None:
    for metric in (Perplexity(units="bits_per_byte", num_bytes=9), Perplexity(units="bits_per_token")):
        with pytest.warns(UserWarning, match="No samples with non-zero weight"):
            assert metric.compute().isnan()


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"units": "nats"}, ValueError, r"`units` must be one of \['perplexity', 'bits_per_token', 'bits_per_byte'\]"),
        ({"units": "bits_per_token", "num_bytes": 10}, ValueError, r"`num_bytes` .* goes with units='bits_per_byte'"),
        ({"num_bytes": 10}, ValueError, r"got units='perplexity' and num_bytes=10"),
        ({"units": "bits_per_byte", "num_bytes": 0}, ValueError, r"`num_bytes` must be a positive int, got 0"),
        ({"units": "bits_per_byte", "num_bytes": 1.5}, TypeError, r"`num_bytes` must be an int or None, got float"),
    ],
)
def test_perplexity_unit_errors(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Perplexity(**kwargs)


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "match"),
    [
        (lambda: Perplexity(), {"linear_bias": torch.zeros(V)}, ValueError, r"`linear_bias` was given without"),
        (
            lambda: MulticlassCrossEntropy(V, input_format="probs"),
            {"linear_weight": torch.zeros(V, D)},
            ValueError,
            r"`linear_weight` turns `preds` \(hidden states\) into logits, but this metric reads input_format='probs'",
        ),
        (
            lambda: MulticlassCrossEntropy(V + 1),
            {"linear_weight": torch.zeros(V, D)},
            ValueError,
            r"`linear_weight` has 23 rows \(shape \(23, 5\)\) but num_classes=24",
        ),
        (lambda: Perplexity(), {"linear_weight": torch.zeros(V, D + 1)}, ValueError, r"must have shape \(V, 5\)"),
        (lambda: Perplexity(), {"linear_weight": torch.zeros(V, D).double()}, TypeError, r"has dtype torch.float64"),
    ],
)
def test_a_rejected_hidden_state_update_changes_nothing(make: object, kwargs: dict, error: type, match: str) -> None:
    metric = make()  # type: ignore[operator]
    hidden, target = torch.randn(2, 4, D), torch.randint(0, V, (2, 4))
    if metric.input_format == "logits":  # some data first: the state to keep is not all zeros
        metric.update(hidden, target, linear_weight=torch.randn(getattr(metric, "num_classes", V), D))
    before, count = metric.sums.clone(), metric._update_count
    with pytest.raises(error, match=match):
        metric.update(hidden, target, **kwargs)
    with pytest.raises(error, match=match):
        metric(hidden, target, **kwargs)
    assert torch.equal(metric.sums, before) and metric._update_count == count
