"""The one case module: the Metric classes, their options and valid batches, for every suite.

Modelled on torchmetrics' ``unittests/_inputs.py``. A suite names a class (``NAMES``), builds it with
:func:`make` (the class count where the class takes one, and any constructor options), and draws a
valid batch for its task with :func:`batch`. The reference harness of ``tests/metrics`` takes its
configurations from :data:`REFERENCE_CASES`: a factory, uneven batches, the functional twin and an
independent float64 reference (``helpers.harness``) each.

The fuzz suites, ``tests/metrics/test_checkpoints.py`` and ``tests/oracle/`` keep their own tables:
they are frozen (they pass untouched across refactors) and use only the public API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchmetrics import Metric

from helpers import harness as ref
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

# ------------------------------------------------------------------------------------ classes, options
#: Every Metric class by name, with its task: ``binary``, ``multiclass``, ``multilabel`` or ``lm``.
CLASSES: dict[str, tuple[type[Metric], str]] = {
    "BinaryCrossEntropy": (BinaryCrossEntropy, "binary"),
    "BinaryNormalizedEntropy": (BinaryNormalizedEntropy, "binary"),
    "MulticlassCrossEntropy": (MulticlassCrossEntropy, "multiclass"),
    "MulticlassNormalizedEntropy": (MulticlassNormalizedEntropy, "multiclass"),
    "MultilabelCrossEntropy": (MultilabelCrossEntropy, "multilabel"),
    "MultilabelNormalizedEntropy": (MultilabelNormalizedEntropy, "multilabel"),
    "Perplexity": (Perplexity, "lm"),
}
NAMES = sorted(CLASSES)
#: The classes with an ``average`` option, and its values.
AVERAGED = [name for name in CLASSES if name.startswith("Multi")]
AVERAGES = ("micro", "macro", "none")


def kind(name: str) -> str:
    """The task of the class called ``name``."""
    return CLASSES[name][1]


def make(name: str, k: int = 3, **options: object) -> Metric:
    """The class called ``name`` with ``options``; ``k`` classes or labels where its constructor takes a count."""
    cls, task = CLASSES[name]
    return cls(k, **options) if task in ("multiclass", "multilabel") else cls(**options)


# --------------------------------------------------------------------------------------------- batches
def shapes(task: str, n: int, k: int = 3, positions: tuple[int, ...] = ()) -> tuple[tuple[int, ...], ...]:
    """``(preds shape, target shape)`` of ``n`` samples with ``k`` classes / labels / vocabulary entries.

    ``positions`` are extra dimensions per sample (sequence positions); a language-model batch has
    ``(n, *positions, k)`` logits (vocabulary last), 3 positions unless told.
    """
    if task == "binary":
        return (n, *positions), (n, *positions)
    if task == "multiclass":
        return (n, k, *positions), (n, *positions)
    if task == "multilabel":
        return (n, k, *positions), (n, k, *positions)
    if task == "lm":
        positions = positions or (3,)
        return (n, *positions, k), (n, *positions)
    raise ValueError(f"unknown task {task!r}")


def batch(
    task: str,
    n: int,
    k: int = 3,
    positions: tuple[int, ...] = (),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A valid batch: standard normal scores and uniformly drawn integer targets, in that order from ``generator``."""
    preds_shape, target_shape = shapes(task, n, k, positions)
    preds = torch.randn(preds_shape, generator=generator, dtype=dtype)
    high = 2 if task in ("binary", "multilabel") else k
    return preds, torch.randint(0, high, target_shape, generator=generator)


# ----------------------------------------------------------------------------- uneven batches of a run
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
SIZES = [5, 0, 13, 6, 1, 12]  # uneven, with an empty batch; the 6-row batch is all ignored where ignoring
N = sum(SIZES)


def split(total: int, sizes: list[int], *tensors: torch.Tensor | None) -> list[Batch]:
    """Cut each tensor into consecutive row blocks of ``sizes`` (``None`` stays ``None``)."""
    assert sum(sizes) == total
    out, start = [], 0
    for size in sizes:
        out.append(tuple(None if t is None else t[start : start + size] for t in tensors))
        start += size
    return out  # type: ignore[return-value]


def concat(batches: list[Batch]) -> Batch:
    """The batches joined back into one."""
    preds = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    weights = [b[2] for b in batches]
    weight = None if weights[0] is None else torch.cat(weights)  # type: ignore[arg-type]
    return preds, target, weight


def uneven_batches(
    shape: tuple[int, ...], task: str, ignore: int | None, weight_shape: tuple[int, ...] | None, seed: int
) -> list[Batch]:
    """``SIZES`` batches of float64 scores ``(N, *shape)`` (scaled by 2), targets and optional weights.

    ``task`` is ``binary``, ``probs`` (binary probabilities), ``class`` (class indices, classes in
    dimension 1), ``soft`` (probability targets), ``multilabel`` or ``lm`` (vocabulary last, 2% of the
    logits at 60). With ``ignore``, a fifth of the targets and the whole 6-row batch are ignored.
    """
    g = torch.Generator().manual_seed(seed)
    k = shape[-1] if task == "lm" else (shape[0] if shape else 1)
    rest = shape[:-1] if task == "lm" else shape[1:]
    if task == "soft":
        z = torch.randn(N, *shape, generator=g, dtype=torch.float64)
        y = torch.softmax(torch.randn(N, *shape, generator=g, dtype=torch.float64), dim=1)
    elif task in ("binary", "probs"):
        z, y = batch("binary", N, positions=shape, generator=g, dtype=torch.float64)
    else:
        z, y = batch({"class": "multiclass"}.get(task, task), N, k, rest, generator=g, dtype=torch.float64)
    z = z * 2
    if task == "lm":
        z[torch.rand(z.shape, generator=g) < 0.02] = 60.0
    if task == "probs":
        z = torch.sigmoid(z)
    if ignore is not None:
        y[torch.rand(y.shape, generator=g) < 0.2] = ignore
        y[18:24] = ignore  # the batch of 6 is entirely ignored
    w = None if weight_shape is None else torch.rand(N, *weight_shape, generator=g, dtype=torch.float64) * 3
    return split(N, SIZES, z, y, w)


# ------------------------------------------------------------------------------------ reference cases
@dataclass
class Case:
    """One metric configuration with its data, functional twin and independent reference."""

    id: str
    make: Callable[[], Metric]
    functional: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    batches: list[Batch]
    reference: Callable[..., object]
    ndim_k: int  # K, the second dimension of the state


def _binary_cases() -> list[Case]:
    return [
        Case(
            "binary-ce-probs-weighted",
            lambda: BinaryCrossEntropy(input_format="probs"),
            lambda p, t, w: binary_cross_entropy(p, t, input_format="probs", sample_weight=w),
            uneven_batches((), "probs", None, (), seed=10),
            ref.binary_reference("probs", None),
            1,
        ),
        Case(
            "binary-ce-logits-ignore-pos-weight",
            lambda: BinaryCrossEntropy(pos_weight=2.0, ignore_index=-1),
            lambda p, t, w: binary_cross_entropy(p, t, pos_weight=2.0, ignore_index=-1, sample_weight=w),
            uneven_batches((2,), "binary", -1, (), seed=11),
            ref.binary_reference("logits", -1, pos=2.0),
            1,
        ),
        Case(
            "binary-ne-ignore",
            lambda: BinaryNormalizedEntropy(ignore_index=-1),
            lambda p, t, w: binary_normalized_entropy(p, t, ignore_index=-1, sample_weight=w),
            uneven_batches((), "binary", -1, (), seed=12),
            ref.binary_reference("ne", -1),
            1,
        ),
    ]


def _multiclass_cases() -> list[Case]:
    cw = torch.tensor([1.0, 0.5, 2.0, 3.0, 1.5], dtype=torch.float64)
    mc = multiclass_cross_entropy
    return [
        Case(
            "multiclass-ce-micro-ignore-weighted",
            lambda: MulticlassCrossEntropy(5, ignore_index=-1),
            lambda p, t, w: mc(p, t, ignore_index=-1, sample_weight=w),
            uneven_batches((5,), "class", -1, (), seed=20),
            ref.multiclass_reference("micro", -1, 5),
            5,
        ),
        *[
            Case(
                f"multiclass-ce-{avg}-class-weight",
                lambda avg=avg: MulticlassCrossEntropy(5, weight=cw, average=avg.removeprefix("weighted-")),
                lambda p, t, w, avg=avg: mc(p, t, weight=cw, sample_weight=w, average=avg.removeprefix("weighted-")),
                uneven_batches((5,), "class", None, (), seed=21),
                ref.multiclass_reference(avg, None, 5, cw.numpy()),
                5,
            )
            for avg in ("weighted-micro", "macro", "none")
        ],
        Case(
            "multiclass-ce-positions-label-smoothing",
            lambda: MulticlassCrossEntropy(4, ignore_index=-100, label_smoothing=0.1),
            lambda p, t, w: mc(p, t, ignore_index=-100, label_smoothing=0.1),
            uneven_batches((4, 3), "class", -100, None, seed=22),
            ref.torch_reference(ignore_index=-100, label_smoothing=0.1),
            4,
        ),
        Case(
            "multiclass-ce-soft-targets",
            lambda: MulticlassCrossEntropy(3),
            lambda p, t, w: mc(p, t, sample_weight=w),
            uneven_batches((3,), "soft", None, (), seed=23),
            ref.soft_reference,
            3,
        ),
        Case(
            "multiclass-ne-ignore",
            lambda: MulticlassNormalizedEntropy(5, ignore_index=-1),
            lambda p, t, w: multiclass_normalized_entropy(p, t, ignore_index=-1, sample_weight=w),
            uneven_batches((5,), "class", -1, (), seed=24),
            ref.multiclass_reference("ne", -1, 5),
            5,
        ),
        *[
            Case(
                f"perplexity-{name}",
                lambda: Perplexity(ignore_index=-100),
                lambda p, t, w: torch.exp(mc(p.movedim(-1, 1), t, ignore_index=-100, sample_weight=w)),
                uneven_batches((4, 6), "lm", -100, weight_shape, seed=30),
                ref.perplexity_reference,
                1,
            )
            for name, weight_shape in (("unweighted", None), ("token-weights", (4,)), ("sequence-weights", ()))
        ],
    ]


def _multilabel_cases() -> list[Case]:
    pos = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    ml, mlne = multilabel_cross_entropy, multilabel_normalized_entropy
    return [
        *[
            Case(
                f"multilabel-ce-{avg}-ignore",
                lambda avg=avg: MultilabelCrossEntropy(4, average=avg, ignore_index=-1),
                lambda p, t, w, avg=avg: ml(p, t, average=avg, ignore_index=-1, sample_weight=w),
                uneven_batches((4,), "multilabel", -1, (), seed=1),
                ref.multilabel_ce_reference(avg, -1),
                4,
            )
            for avg in AVERAGES
        ],
        Case(
            "multilabel-ce-pos-weight",
            lambda: MultilabelCrossEntropy(3, pos_weight=pos),
            lambda p, t, w: ml(p, t, pos_weight=pos, sample_weight=w),
            uneven_batches((3,), "multilabel", None, (), seed=2),
            ref.multilabel_pos_weight_reference(pos.numpy()),
            3,
        ),
        *[
            Case(
                f"multilabel-ne-{avg}",
                lambda avg=avg: MultilabelNormalizedEntropy(3, average=avg),
                lambda p, t, w, avg=avg: mlne(p, t, average=avg, sample_weight=w),
                uneven_batches((3,), "multilabel", None, (), seed=3),
                ref.multilabel_ne_reference(avg),
                3,
            )
            for avg in ("micro", "none")
        ],
    ]


#: The reference harness's configurations (tests/metrics/test_metrics.py, test_metrics_lifecycle.py).
REFERENCE_CASES = _binary_cases() + _multiclass_cases() + _multilabel_cases()
