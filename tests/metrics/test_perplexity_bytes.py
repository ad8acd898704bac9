"""``Perplexity(units="bits_per_byte")`` with the byte count given per update (``update(..., num_bytes=n)``).

The reference is lm-evaluation-harness' definition on all the data: the summed token NLL in nats
(``F.cross_entropy(..., reduction="sum")`` in float64) over ``ln 2`` and the total byte count.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from xent_metrics import Perplexity

B, L, V, D = 12, 7, 11, 5


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (B, L, V) with confident rows, token ids (B, L) with padding, per-sequence weights and bytes."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, L, V, generator=g, dtype=torch.float64) * 3
    z[torch.rand(B, L, V, generator=g) < 0.02] = 90.0  # confident, sometimes wrong, tokens
    t = torch.randint(0, V, (B, L), generator=g)
    t[torch.rand(B, L, generator=g) < 0.25] = -100
    w = torch.rand(B, generator=g, dtype=torch.float64) * 0.7 + 0.3
    w[3] = 0.0
    nbytes = torch.randint(0, 40, (B,), generator=g)  # an empty sequence may count 0 bytes
    return z, t, w, nbytes


def _reference(z: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None, nbytes: torch.Tensor) -> float:
    """Token NLL summed in nats (float64, F.cross_entropy), over ln 2 and the total bytes."""
    nll = F.cross_entropy(z.reshape(-1, z.shape[-1]).double(), t.reshape(-1), ignore_index=-100, reduction="none")
    if w is not None:
        nll = nll * w.double().repeat_interleave(t.shape[1])
    return nll.sum().item() / math.log(2) / int(nbytes.sum())


def _splits(seed: int) -> list[slice]:
    g = torch.Generator().manual_seed(seed)
    cuts = sorted(torch.randperm(B - 1, generator=g)[:3].add(1).tolist())
    bounds = [0, *cuts, B]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _fed(z: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None, nbytes: torch.Tensor, parts: list) -> Perplexity:
    metric = Perplexity(ignore_index=-100, units="bits_per_byte")
    for i, rows in enumerate(parts):  # bytes alternate between one count per sequence and the batch's int total
        counts = nbytes[rows] if i % 2 == 0 else int(nbytes[rows].sum())
        metric.update(z[rows], t[rows], None if w is None else w[rows], num_bytes=counts)
    return metric


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bits_per_byte_over_random_batch_splits_equal_the_reference_on_all_data(seed: int, weighted: bool) -> None:
    z, t, w, nbytes = _data(seed)
    weight = w if weighted else None
    metric = _fed(z, t, weight, nbytes, _splits(seed))
    assert metric.compute().item() == pytest.approx(_reference(z, t, weight, nbytes), rel=1e-12)
    assert metric.sums.shape == (4, 1) and metric.sums.dtype == torch.float64


def test_float32_logits_and_hidden_states_of_a_linear_head() -> None:
    z, t, _, nbytes = _data(4)
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    head_w, head_b = torch.randn(V, D, generator=g, dtype=torch.float64) * 0.3, torch.randn(V, generator=g) * 0.3
    metric = Perplexity(ignore_index=-100, units="bits_per_byte")
    for rows in _splits(4):
        metric.update(hidden[rows], t[rows], linear_weight=head_w, linear_bias=head_b.double(), num_bytes=nbytes[rows])
    expected = _reference(hidden @ head_w.T + head_b.double(), t, None, nbytes)
    assert metric.compute().item() == pytest.approx(expected, rel=1e-12)
    low = Perplexity(ignore_index=-100, units="bits_per_byte")
    low.update(z.float(), t, num_bytes=nbytes.to(torch.int32))
    assert low.compute().item() == pytest.approx(_reference(z.float(), t, None, nbytes), rel=1e-6)


def test_forward_returns_the_batch_bits_over_the_batch_bytes() -> None:
    z, t, _, nbytes = _data(6)
    metric = Perplexity(ignore_index=-100, units="bits_per_byte")
    first = metric(z[:5], t[:5], num_bytes=nbytes[:5])
    assert first.item() == pytest.approx(_reference(z[:5], t[:5], None, nbytes[:5]), rel=1e-12)
    metric(z[5:], t[5:], num_bytes=int(nbytes[5:].sum()))
    assert metric.compute().item() == pytest.approx(_reference(z, t, None, nbytes), rel=1e-12)


def test_merge_of_two_halves_a_state_dict_and_load_add_the_bytes() -> None:
    z, t, w, nbytes = _data(7)
    expected = _reference(z, t, w, nbytes)
    first, second = _fed(z, t, w, nbytes, [slice(0, 5)]), _fed(z, t, w, nbytes, [slice(5, B)])
    merged = _fed(z, t, w, nbytes, [slice(0, 5)])
    merged.merge_state(second)
    assert merged.compute().item() == pytest.approx(expected, rel=1e-12)
    from_dict = _fed(z, t, w, nbytes, [slice(0, 5)])
    from_dict.merge_state(second.state_dict())
    assert from_dict.compute().item() == pytest.approx(expected, rel=1e-12)
    loaded = Perplexity(ignore_index=-100, units="bits_per_byte")
    loaded.load_state_dict(merged.state_dict())
    assert loaded.compute().item() == pytest.approx(expected, rel=1e-12)
    assert first.compute().item() == pytest.approx(_reference(z[:5], t[:5], w[:5], nbytes[:5]), rel=1e-12)


@pytest.mark.parametrize("direction", ["global into per-update", "per-update into global"])
def test_global_and_per_update_byte_counts_never_pool_and_the_state_is_unchanged(direction: str) -> None:
    z, t, _, nbytes = _data(8)
    per_update = Perplexity(units="bits_per_byte", ignore_index=-100)
    per_update.update(z, t, num_bytes=nbytes)
    global_count = Perplexity(units="bits_per_byte", ignore_index=-100, num_bytes=int(nbytes.sum()))
    global_count.update(z, t)
    receiver, giver = (per_update, global_count) if direction.startswith("global") else (global_count, per_update)
    before = receiver.sums.clone()
    for incoming in (giver, giver.state_dict()):
        with pytest.raises(ValueError, match=r"holds the sums of Perplexity\(units='bits_per_byte', num_bytes="):
            receiver.merge_state(incoming)
        with pytest.raises(ValueError, match=r"holds the sums of Perplexity\(units='bits_per_byte', num_bytes="):
            receiver.load_state_dict(giver.state_dict())
    with pytest.raises(ValueError, match=r"must be a floating tensor of shape \((4|3), 1\)"):
        receiver.merge_state({"sums": giver.sums})  # no layout saved: the shape alone tells them apart
    assert torch.equal(receiver.sums, before)


def _bad_bytes_cases() -> list:
    return [
        pytest.param(-3, ValueError, r"`num_bytes` must hold byte counts >= 0, got int -3", id="negative-int"),
        pytest.param(torch.tensor([5, -1]), ValueError, r">= 0, got a tensor of shape \(2,\)", id="negative-entry"),
        pytest.param(
            torch.tensor([1, 2, 3]),
            ValueError,
            r"shape \(\) or \(2,\), one count per sequence, .*got a tensor of "
            r"shape \(3,\)",
            id="wrong-shape",
        ),
        pytest.param(torch.ones(2, 1, dtype=torch.long), ValueError, r"got a tensor of shape \(2, 1\)", id="2d"),
        pytest.param(torch.tensor([3.0, 4.0]), TypeError, r"integer tensor of byte counts .*torch.float32", id="float"),
        pytest.param(torch.tensor([True, False]), TypeError, r"integer byte counts, .*torch.bool", id="bool-tensor"),
        pytest.param(2.5, TypeError, r"must be an int or an integer tensor .*got float 2.5", id="float-number"),
        pytest.param(True, TypeError, r"got bool True", id="bool"),
        pytest.param("10", TypeError, r"got str '10'", id="str"),
    ]


@pytest.mark.parametrize(("num_bytes", "error", "match"), _bad_bytes_cases())
def test_a_rejected_num_bytes_names_the_argument_and_leaves_the_state_bitwise_unchanged(num_bytes, error, match):  # type: ignore[no-untyped-def]
    z, t, _, nbytes = _data(9)
    metric = Perplexity(units="bits_per_byte", ignore_index=-100)
    metric.update(z[2:], t[2:], num_bytes=nbytes[2:])
    before = metric.sums.clone()
    for call in (metric.update, metric.forward):
        with pytest.raises(error, match=match):
            call(z[:2], t[:2], num_bytes=num_bytes)
        assert torch.equal(metric.sums, before)
    assert metric.compute().item() == pytest.approx(_reference(z[2:], t[2:], None, nbytes[2:]), rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "num_bytes", "match"),
    [
        ({"units": "bits_per_byte"}, None, r"`num_bytes` is required in every `update` .*or construct the metric with"),
        ({"units": "bits_per_byte", "num_bytes": 100}, 7, r"constructed with num_bytes=100 .*got int 7"),
    ],
)
def test_mixing_global_and_per_update_bytes_is_refused(kwargs: dict, num_bytes: object, match: str) -> None:
    z, t, _, _ = _data(10)
    metric = Perplexity(**kwargs)
    before = metric.sums.clone()
    with pytest.raises(ValueError, match=match):
        metric.update(z[:2].clamp(-5, 5), t[:2].clamp(0), num_bytes=num_bytes)
    assert torch.equal(metric.sums, before)


def test_one_metric_collection_call_feeds_perplexity_and_bits_per_byte() -> None:
    z, t, _, nbytes = _data(13)
    metrics = MetricCollection(
        {
            "ppl": Perplexity(ignore_index=-100),
            "bpt": Perplexity(ignore_index=-100, units="bits_per_token"),
            "bpb": Perplexity(ignore_index=-100, units="bits_per_byte"),
        }
    )
    for rows in _splits(13):
        metrics.update(z[rows], t[rows], num_bytes=nbytes[rows])  # the other units leave it unread
    nll = F.cross_entropy(z.reshape(-1, V), t.reshape(-1), ignore_index=-100, reduction="sum").item()
    tokens = int((t != -100).sum())
    values = {name: value.item() for name, value in metrics.compute().items()}
    assert values["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-12)
    assert values["bpt"] == pytest.approx(nll / tokens / math.log(2), rel=1e-12)
    assert values["bpb"] == pytest.approx(_reference(z, t, None, nbytes), rel=1e-12)


def test_a_flat_batch_takes_a_total_and_refuses_per_sequence_counts() -> None:
    z, t, _, nbytes = _data(11)
    flat_z, flat_t = z.reshape(-1, V), t.reshape(-1)
    metric = Perplexity(units="bits_per_byte", ignore_index=-100)
    with pytest.raises(ValueError, match=r"`num_bytes` must have shape \(\) or \(\d+,\), one count per sequence"):
        metric.update(flat_z, flat_t, num_bytes=nbytes)
    metric.update(flat_z, flat_t, num_bytes=nbytes.sum())
    assert metric.compute().item() == pytest.approx(_reference(z, t, None, nbytes), rel=1e-12)


def test_tokens_without_any_byte_are_refused_at_compute_and_no_data_is_nan() -> None:
    z, t, _, _ = _data(12)
    metric = Perplexity(units="bits_per_byte", ignore_index=-100)
    metric.update(z, t, num_bytes=0)
    with pytest.raises(ValueError, match=r"updated with tokens but a total of 0 bytes"):
        metric.compute()
    empty = Perplexity(units="bits_per_byte")
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):
        assert empty.compute().isnan()


@pytest.mark.parametrize("units", ["perplexity", "bits_per_byte"])
def test_forward_refuses_an_unknown_keyword_and_changes_nothing(units: str) -> None:
    z, t, _, nbytes = _data(14)
    metric = Perplexity(ignore_index=-100, units=units)
    before = metric.sums.clone()
    with pytest.raises(TypeError, match=r"Perplexity.update\(\) got an unexpected keyword argument 'num_byte'"):
        metric(z, t, num_byte=nbytes)  # a typo of num_bytes
    assert torch.equal(metric.sums, before)
