"""Properties of the sums: batch-split, order and weight invariances, task equivalences."""

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy, multilabel_cross_entropy
from xent_metrics.functional._bce import bce_sums
from xent_metrics.functional._chunks import row_slices
from xent_metrics.functional._softmax_ce import softmax_ce_sums
from xent_metrics.functional.binary import BinaryTask
from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.functional.multilabel import MultilabelTask

FORMATS = ["logits", "probs", "log_probs"]


def _data(seed: int, n: int, k: int, task: str, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=gen, dtype=torch.float64) * 3
    if task == "binary":
        z = z[:, 0]
    if fmt == "probs":
        z = torch.softmax(z, 1) if task == "multiclass" else torch.sigmoid(z)
    elif fmt == "log_probs":
        z = torch.log_softmax(z, 1) if task == "multiclass" else torch.nn.functional.logsigmoid(z)
    if task == "multiclass":
        y = torch.randint(0, k, (n,), generator=gen)
    else:
        y = torch.randint(0, 2, z.shape, generator=gen)
    return z, y


UPDATE = {  # the (3, K) sums of a validated batch
    "binary": lambda z, y, sample_weight, **kw: bce_sums(z[:, None], y[:, None], BinaryTask(**kw), sample_weight),
    "multiclass": lambda z, y, sample_weight, **kw: softmax_ce_sums(z, y, MulticlassTask(**kw), sample_weight),
    "multilabel": lambda z, y, sample_weight, **kw: bce_sums(z, y, MultilabelTask(**kw), sample_weight),
}


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 60),
    k=st.integers(2, 6),
    task=st.sampled_from(sorted(UPDATE)),
    fmt=st.sampled_from(FORMATS),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    smoothing=st.sampled_from([0.0, 0.1]),
)
def test_any_batch_split_gives_the_same_sums(seed, n, k, task, fmt, cuts, smoothing) -> None:
    z, y = _data(seed, n, k, task, fmt)
    gen = torch.Generator().manual_seed(seed + 1)
    w = torch.rand(n, generator=gen, dtype=torch.float64)
    whole = UPDATE[task](z, y, input_format=fmt, sample_weight=w, label_smoothing=smoothing)
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    parts = sum(
        UPDATE[task](z[a:b], y[a:b], input_format=fmt, sample_weight=w[a:b], label_smoothing=smoothing)
        for a, b in itertools.pairwise(bounds)
    )
    torch.testing.assert_close(parts, whole, rtol=1e-12, atol=1e-12)
    perm = torch.randperm(n, generator=gen)
    shuffled = UPDATE[task](z[perm], y[perm], input_format=fmt, sample_weight=w[perm], label_smoothing=smoothing)
    torch.testing.assert_close(shuffled, whole, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 2**31), n=st.integers(2, 40), task=st.sampled_from(sorted(UPDATE)))
def test_weight_invariances(seed: int, n: int, task: str) -> None:
    fn = {
        "binary": binary_cross_entropy,
        "multiclass": multiclass_cross_entropy,
        "multilabel": multilabel_cross_entropy,
    }[task]
    z, y = _data(seed, n, 4, task, "logits")
    gen = torch.Generator().manual_seed(seed)
    plain = fn(z, y)
    torch.testing.assert_close(fn(z, y, sample_weight=torch.ones(n, dtype=torch.float64)), plain, rtol=1e-12, atol=0)
    reps = torch.randint(0, 4, (n,), generator=gen)
    reps[0] = 1  # keep some weight
    repeated = fn(z.repeat_interleave(reps, 0), y.repeat_interleave(reps, 0))
    torch.testing.assert_close(fn(z, y, sample_weight=reps.double()), repeated, rtol=1e-12, atol=1e-15)
    kept = reps > 0
    torch.testing.assert_close(fn(z, y, sample_weight=kept.double()), fn(z[kept], y[kept]), rtol=1e-12, atol=1e-15)


@given(seed=st.integers(0, 2**31), n=st.integers(1, 30), k=st.integers(1, 5), fmt=st.sampled_from(FORMATS))
def test_multilabel_column_equals_binary(seed: int, n: int, k: int, fmt: str) -> None:
    z, y = _data(seed, n, k, "multilabel", fmt)
    per_label = multilabel_cross_entropy(z, y, input_format=fmt, average="none")
    for j in range(k):
        torch.testing.assert_close(
            per_label[j], binary_cross_entropy(z[:, j], y[:, j], input_format=fmt), rtol=1e-12, atol=0
        )


@given(seed=st.integers(0, 2**31), n=st.integers(1, 30))
def test_two_class_multiclass_equals_binary(seed: int, n: int) -> None:
    z, y = _data(seed, n, 2, "multiclass", "logits")
    binary = binary_cross_entropy(z[:, 1] - z[:, 0], y)
    torch.testing.assert_close(multiclass_cross_entropy(z, y), binary, rtol=1e-12, atol=1e-15)
    p = torch.softmax(z, 1)
    torch.testing.assert_close(
        multiclass_cross_entropy(p, y, input_format="probs"),
        binary_cross_entropy(p[:, 1], y, input_format="probs"),
        rtol=1e-12,
        atol=1e-15,
    )


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_result_does_not_depend_on_chunk_size(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    z, y = _data(3, 97, 5, "multiclass", "logits")
    zl, yl = _data(4, 97, 5, "multilabel", "logits")
    expected = (multiclass_cross_entropy(z, y, average="none"), multilabel_cross_entropy(zl, yl, average="none"))
    import xent_metrics.functional._chunks as chunks

    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk)
    assert len(list(row_slices(97, 5))) > 1 or chunk >= 485
    torch.testing.assert_close(multiclass_cross_entropy(z, y, average="none"), expected[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(multilabel_cross_entropy(zl, yl, average="none"), expected[1], rtol=1e-12, atol=0)


def test_perfect_predictions_cost_nothing() -> None:
    y = torch.arange(8) % 4
    logits = torch.nn.functional.one_hot(y, 4).double() * 800
    assert multiclass_cross_entropy(logits, y).item() == pytest.approx(0.0, abs=1e-300)
    assert multiclass_cross_entropy(logits.softmax(1), y, input_format="probs").item() < 1e-15
    yb = torch.tensor([1, 0, 1])
    assert binary_cross_entropy((yb.double() * 2 - 1) * 100, yb).item() < 1e-40


@given(c=st.integers(2, 50), n=st.integers(1, 20))
def test_uniform_logits_give_log_c(c: int, n: int) -> None:
    value = multiclass_cross_entropy(torch.full((n, c), 3.7, dtype=torch.float64), torch.arange(n) % c)
    assert value.item() == pytest.approx(math.log(c), rel=1e-14)
