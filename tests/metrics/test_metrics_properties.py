"""hypothesis properties of the Metric classes: any batch split, any merge tree, any order, same result."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import torch
from helpers import cases
from hypothesis import given
from hypothesis import strategies as st
from torchmetrics import Metric

from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy, multilabel_normalized_entropy

RTOL = 1e-12


def _perplexity(p: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.exp(multiclass_cross_entropy(p.movedim(-1, 1), t, ignore_index=-100, sample_weight=w))


def _scaled(task: str, k: int) -> Callable[[int, torch.Generator], tuple]:
    """A valid batch of ``n`` samples drawn from ``g`` (language models: 3 positions), scores scaled by 4."""

    def draw(n: int, g: torch.Generator) -> tuple:
        preds, target = cases.batch(task, n, k, generator=g)
        return preds * 4, target

    return draw


# task -> (metric factory, functional twin, data maker(n, generator))
TASKS: dict[str, tuple[Callable[[], Metric], Callable[..., torch.Tensor], Callable[..., tuple]]] = {
    "binary": (
        functools.partial(cases.make, "BinaryCrossEntropy", ignore_index=-100, pos_weight=1.5),
        lambda p, t, w: binary_cross_entropy(p, t, ignore_index=-100, pos_weight=1.5, sample_weight=w),
        _scaled("binary", 1),
    ),
    "multiclass": (
        functools.partial(cases.make, "MulticlassCrossEntropy", 4, ignore_index=-100, label_smoothing=0.05),
        lambda p, t, w: multiclass_cross_entropy(p, t, ignore_index=-100, label_smoothing=0.05, sample_weight=w),
        _scaled("multiclass", 4),
    ),
    "multilabel-ne-macro": (
        functools.partial(
            cases.make, "MultilabelNormalizedEntropy", 3, ignore_index=-100, average="macro", label_smoothing=0.1
        ),
        lambda p, t, w: multilabel_normalized_entropy(
            p, t, ignore_index=-100, average="macro", label_smoothing=0.1, sample_weight=w
        ),
        _scaled("multilabel", 3),
    ),
    "perplexity": (
        functools.partial(cases.make, "Perplexity", ignore_index=-100),
        _perplexity,
        _scaled("lm", 5),
    ),
}


@st.composite
def split_data(draw: st.DrawFn) -> tuple[str, tuple, list[int]]:
    task = draw(st.sampled_from(sorted(TASKS)))
    n = draw(st.integers(2, 40))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    preds, target = TASKS[task][2](n, g)
    target[torch.rand(target.shape, generator=g) < draw(st.sampled_from([0.0, 0.3]))] = -100
    target[0], target[-1] = 1, 0  # every label / class column keeps some weight
    weight = torch.rand(n, generator=g) * draw(st.sampled_from([1.0, 100.0]))
    weight[0] = weight[-1] = 1.0
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return task, (preds, target, weight), [0, *cuts, n]


def _pieces(data: tuple, bounds: list[int]) -> list[tuple]:
    return [tuple(x[a:b] for x in data) for a, b in itertools.pairwise(bounds)]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=1e-300, equal_nan=True)


@given(split_data())
def test_any_batch_split_equals_the_functional_result_on_all_data(drawn: tuple) -> None:
    task, data, bounds = drawn
    make, functional, _ = TASKS[task]
    metric = make()
    for piece in _pieces(data, bounds):
        metric.update(*piece)
    _close(metric.compute(), functional(*data))


@given(split_data(), st.randoms(use_true_random=False))
def test_any_merge_order_and_sample_order_give_the_same_result(drawn: tuple, random: object) -> None:
    task, data, bounds = drawn
    make, functional, _ = TASKS[task]
    parts = []
    for piece in _pieces(data, bounds):
        part = make()
        part.update(*piece)
        parts.append(part)
    random.shuffle(parts)  # type: ignore[attr-defined]
    merged = parts[0]
    for part in parts[1:]:
        merged.merge_state(part)
    expected = functional(*data)
    _close(merged.compute(), expected)
    order = torch.randperm(data[0].shape[0])
    shuffled = make()
    shuffled.update(*(x[order] for x in data))
    _close(shuffled.compute(), expected)
