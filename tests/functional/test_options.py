"""The options object of each task: frozen, checked once in a fixed order, shared by the function and the Metric.

And the measure that goes with it: from every public entry point the per-row / per-element loss kernel
is at most four calls away (counted on the live stack, so a new pass-through layer fails here).
"""

import dataclasses
import sys
from collections.abc import Callable

import pytest
import torch

from xent_metrics import (
    BinaryCrossEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    Perplexity,
)
from xent_metrics.functional import (
    binary_cross_entropy,
    binary_normalized_entropy,
    linear_cross_entropy,
    multiclass_cross_entropy,
    multiclass_normalized_entropy,
    multilabel_cross_entropy,
    multilabel_normalized_entropy,
)
from xent_metrics.functional.binary import BinaryTask
from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.functional.multilabel import MultilabelTask

# The loss kernels: per-row, per-element and per-token losses.
KERNELS = {"target_nll", "_fast_loss", "_general_loss", "_add_soft_block", "_token_losses"}


@pytest.mark.parametrize("options", [BinaryTask(), MultilabelTask(), MulticlassTask()])
def test_options_are_frozen(options: object) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.input_format = "probs"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: multiclass_cross_entropy(torch.zeros(2, 3), torch.zeros(2).long(), num_classes=0, average="x"),
            "num_classes",
        ),
        (lambda: multiclass_cross_entropy(torch.zeros(2, 3), torch.zeros(2).long(), average="x", fused=1), "average"),
        (lambda: MulticlassCrossEntropy(3, average="x", validate_args=1), "average"),
        (lambda: MulticlassCrossEntropy(3, validate_args=1, fused=1), "validate_args"),
        (lambda: MultilabelCrossEntropy(3, label_smoothing=2.0, validate_args=1), "label_smoothing"),
        (lambda: BinaryCrossEntropy(input_format="x", validate_args=1), "input_format"),
        (lambda: Perplexity(units="x", validate_args=1), "units"),
        (
            lambda: linear_cross_entropy(
                torch.zeros(2, 2), torch.zeros(3, 2), torch.zeros(2).long(), average="x", validate_args=1
            ),
            "validate_args",
        ),
    ],
    ids=[
        "mc-fn-count",
        "mc-fn-average",
        "mc-metric-average",
        "mc-metric-validate",
        "ml-metric",
        "bin-metric",
        "ppl",
        "linear",
    ],
)
def test_the_first_bad_argument_wins(build: Callable[[], object], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=rf"^`{match}`"):
        build()


def test_functions_read_validate_args_by_truth() -> None:
    preds, target = torch.tensor([0.9, 0.3], dtype=torch.float64), torch.tensor([1, 0])
    expected = -(torch.tensor(0.9, dtype=torch.float64).log() + torch.tensor(-0.3, dtype=torch.float64).log1p()) / 2
    got = binary_cross_entropy(preds, target, input_format="probs", validate_args=0)  # type: ignore[arg-type]
    torch.testing.assert_close(got, expected, rtol=1e-15, atol=0)


def test_one_options_object_holds_what_the_metric_exposes() -> None:
    weight = torch.tensor([0.3, 1.0, 2.0])
    metric = MulticlassCrossEntropy(3, weight=weight, ignore_index=-1, label_smoothing=0.1, average="macro")
    assert isinstance(metric.task, MulticlassTask)
    assert (metric.num_classes, metric.ignore_index, metric.label_smoothing, metric.average) == (3, -1, 0.1, "macro")
    assert metric.weight is metric.task.weight
    assert metric.weight.dtype == torch.float64 and torch.equal(metric.weight, weight.double())
    before = metric.task
    metric.weight = metric.weight * 2  # what a device move does: the options are replaced, not mutated
    assert metric.task is not before and torch.equal(before.weight, weight.double())
    torch.testing.assert_close(metric.weight, weight.double() * 2)
    # the replaced options are what an update reads (a new, non-proportional weight changes the micro value)
    micro = MulticlassCrossEntropy(3, weight=weight)
    micro.weight = torch.tensor([1.7, 0.3, 0.9], dtype=torch.float64)
    z = torch.tensor([[0.3, -1.2, 2.1], [1.1, 0.4, -0.7], [0.2, 0.9, 0.05], [-0.6, 1.3, 0.8]], dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1])
    micro.update(z, t)
    expected = torch.nn.functional.cross_entropy(z, t, weight=micro.weight)
    torch.testing.assert_close(micro.compute(), expected, rtol=1e-14, atol=0)


def test_config_tag_is_shared_by_cross_entropy_and_normalized_entropy_of_the_same_options() -> None:
    def tag(metric: object) -> str:
        return metric.__dict__["_config_state"]

    assert tag(MulticlassCrossEntropy(3, average="none")) == tag(MulticlassNormalizedEntropy(3, average="macro"))
    assert tag(MulticlassCrossEntropy(3)) != tag(MulticlassCrossEntropy(3, ignore_index=-1))
    assert tag(MulticlassCrossEntropy(3)) != tag(MulticlassCrossEntropy(3, weight=torch.tensor([1.0, 1.0, 2.0])))
    assert tag(BinaryCrossEntropy()) != tag(BinaryCrossEntropy(pos_weight=2.0))


def _calls_to_kernel(run: Callable[[], object], entry: str) -> int:
    """The most calls between a frame of ``entry`` and a loss kernel's frame while ``run`` runs."""
    depths: list[int] = []

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name in KERNELS:
            calls, caller = 0, frame
            while caller is not None and caller.f_code.co_name != entry:
                calls, caller = calls + 1, caller.f_back
            if caller is not None:
                depths.append(calls)

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    assert depths, f"no loss kernel ran under {entry}"
    return max(depths)


def _batches() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return {
        "binary": (torch.randn(8, generator=gen), torch.randint(0, 2, (8,), generator=gen)),
        "multiclass": (torch.randn(8, 4, generator=gen), torch.randint(0, 4, (8,), generator=gen)),
        "multilabel": (torch.randn(8, 3, generator=gen), torch.randint(0, 2, (8, 3), generator=gen)),
        "lm": (torch.randn(2, 3, 5, generator=gen), torch.randint(0, 5, (2, 3), generator=gen)),
    }


@pytest.mark.parametrize(
    ("task", "fn", "options"),
    [
        ("binary", binary_cross_entropy, {}),
        ("binary", binary_normalized_entropy, {"pos_weight": 2.0}),
        ("multiclass", multiclass_cross_entropy, {}),  # the per-step path
        ("multiclass", multiclass_cross_entropy, {"ignore_index": 1, "label_smoothing": 0.1}),  # blocks
        ("multiclass", multiclass_normalized_entropy, {"input_format": "log_probs"}),
        ("multilabel", multilabel_cross_entropy, {}),
        ("multilabel", multilabel_normalized_entropy, {"input_format": "log_probs"}),
    ],
)
def test_public_functions_reach_the_loss_kernel_in_at_most_four_calls(task: str, fn: Callable, options: dict) -> None:
    preds, target = _batches()[task]
    if options.get("input_format") == "log_probs":
        preds = torch.log_softmax(preds, 1) if task == "multiclass" else torch.nn.functional.logsigmoid(preds)
    assert _calls_to_kernel(lambda: fn(preds, target, **options), fn.__name__) <= 4


def test_linear_and_soft_targets_reach_the_loss_kernel_in_at_most_four_calls() -> None:
    gen = torch.Generator().manual_seed(1)
    hidden, head, target = torch.randn(6, 3, generator=gen), torch.randn(5, 3, generator=gen), torch.arange(6) % 5
    assert _calls_to_kernel(lambda: linear_cross_entropy(hidden, head, target), "linear_cross_entropy") <= 4
    soft = torch.softmax(torch.randn(4, 5, generator=gen), 1)
    run = lambda: multiclass_cross_entropy(torch.randn(4, 5, generator=gen), soft)  # noqa: E731
    assert _calls_to_kernel(run, "multiclass_cross_entropy") <= 4


@pytest.mark.parametrize(
    ("metric", "task"),
    [
        (BinaryCrossEntropy(), "binary"),
        (MulticlassCrossEntropy(4), "multiclass"),
        (MulticlassNormalizedEntropy(4, ignore_index=0), "multiclass"),
        (MultilabelCrossEntropy(3), "multilabel"),
        (Perplexity(), "lm"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_metric_update_reaches_the_loss_kernel_in_at_most_four_calls(metric: object, task: str) -> None:
    preds, target = _batches()[task]
    assert _calls_to_kernel(lambda: metric.update(preds, target), "update") <= 4  # type: ignore[attr-defined]


def test_hidden_state_update_reaches_the_loss_kernel_in_at_most_four_calls() -> None:
    gen = torch.Generator().manual_seed(2)
    hidden, head, target = torch.randn(2, 3, 4, generator=gen), torch.randn(5, 4, generator=gen), torch.arange(6) % 5
    metric = Perplexity()
    run = lambda: metric.update(hidden, target.view(2, 3), linear_weight=head)  # noqa: E731
    assert _calls_to_kernel(run, "update") <= 4


# ------------------------------------------------------------------------ average=None is "none"
def _per_class_ce(z: torch.Tensor, t: torch.Tensor, s: torch.Tensor, ignore: int) -> torch.Tensor:
    """torch float64: each class's weighted mean of ``F.cross_entropy`` over the rows of that true class."""
    keep = t != ignore
    nll = torch.nn.functional.cross_entropy(z[keep], t[keep], reduction="none")
    return torch.stack([(nll * s[keep])[t[keep] == c].sum() / s[keep][t[keep] == c].sum() for c in range(z.shape[1])])


def _entropy(prior: torch.Tensor) -> torch.Tensor:
    """The entropy of a class prior (a vector summing to 1)."""
    return -(prior * prior.log()).sum()


def _binary_entropy(rate: torch.Tensor) -> torch.Tensor:
    """Each label's entropy of its base rate, elementwise."""
    return -(rate * rate.log() + (1 - rate) * (-rate).log1p())


def test_average_none_is_none_in_every_function_against_torch_and_sklearn() -> None:
    from sklearn.metrics import log_loss

    gen = torch.Generator().manual_seed(71)
    z = torch.randn(40, 4, generator=gen, dtype=torch.float64) * 3
    z[0, 2] += 600.0  # a confident row
    t = torch.tensor([0, 1, 2, 3] * 10)
    t[5] = t[9] = -1  # ignored
    s = torch.rand(40, generator=gen, dtype=torch.float64)
    s[3] = 0.0  # a zero weight
    got = multiclass_cross_entropy(z, t, sample_weight=s, ignore_index=-1, average=None)
    expected = _per_class_ce(z, t, s, -1)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    keep = t != -1
    prior = torch.stack([s[keep][t[keep] == c].sum() for c in range(4)]) / s[keep].sum()
    ne = multiclass_normalized_entropy(z, t, sample_weight=s, ignore_index=-1, average=None)
    torch.testing.assert_close(ne, expected / _entropy(prior), rtol=1e-12, atol=0)
    head = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    hidden = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    lin = linear_cross_entropy(hidden, head, t, sample_weight=s, ignore_index=-1, average=None)
    torch.testing.assert_close(lin, _per_class_ce(hidden @ head.T, t, s, -1), rtol=1e-12, atol=0)
    p = torch.rand(40, 3, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    y = (torch.rand(40, 3, generator=gen) < 0.4).long()
    ml = multilabel_cross_entropy(p, y, input_format="probs", sample_weight=s, average=None)
    columns = [log_loss(y[:, k].numpy(), p[:, k].numpy(), sample_weight=s.numpy(), labels=[0, 1]) for k in range(3)]
    torch.testing.assert_close(ml, torch.tensor(columns, dtype=torch.float64), rtol=1e-12, atol=0)
    rate = (s[:, None] * y).sum(0) / s.sum()
    mlne = multilabel_normalized_entropy(p, y, input_format="probs", sample_weight=s, average=None)
    torch.testing.assert_close(mlne, ml / _binary_entropy(rate), rtol=1e-12, atol=0)


def test_average_none_is_none_in_every_metric_class_and_its_attribute() -> None:
    gen = torch.Generator().manual_seed(72)
    z = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 1, 2] * 10)
    y = (torch.rand(30, 3, generator=gen) < 0.5).long()
    ones = torch.ones(30, dtype=torch.float64)
    metrics = [
        (MulticlassCrossEntropy(3, average=None), t, _per_class_ce(z, t, ones, -1)),
        (MultilabelCrossEntropy(3, average=None), y, None),
    ]
    for metric, target, expected in metrics:
        assert metric.average == "none" and metric.task.average == "none"
        metric.update(z[:13], target[:13])
        metric.update(z[13:], target[13:])
        if expected is None:  # per label: torch's BCE with logits on each column
            expected = torch.stack(
                [torch.nn.functional.binary_cross_entropy_with_logits(z[:, k], y[:, k].double()) for k in range(3)]
            )
        torch.testing.assert_close(metric.compute(), expected, rtol=1e-12, atol=0)
    micro = MulticlassCrossEntropy(3)
    micro.average = None  # type: ignore[assignment]  # the attribute takes the same spelling
    assert micro.average == "none"
    ne = MulticlassNormalizedEntropy(3, average=None)
    ne.update(z, t)
    assert ne.compute().shape == (3,)


def test_average_none_in_scoring_and_its_refusal_by_the_scorer() -> None:
    import numpy as np
    from sklearn.metrics import d2_log_loss_score, log_loss

    from xent_metrics.scoring import cross_entropy_loss, d2_cross_entropy_score, make_cross_entropy_scorer

    rng = np.random.default_rng(73)
    proba = rng.dirichlet([1.0, 2.0, 0.5], size=30)
    y = np.array([0, 1, 2] * 10)
    got = cross_entropy_loss(y, proba, average=None)
    expected = [log_loss(y[y == c], proba[y == c], labels=[0, 1, 2]) for c in range(3)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    indicator = (rng.uniform(size=(30, 2)) < 0.4).astype(int)
    scores = rng.uniform(0.05, 0.95, size=(30, 2))
    got = d2_cross_entropy_score(indicator, scores, average=None)
    np.testing.assert_allclose(got, [d2_log_loss_score(indicator[:, k], scores[:, k]) for k in range(2)], rtol=1e-12)
    with pytest.raises(ValueError, match=r"`average` must be one of \['micro', 'macro'\], got None \(torchmetrics'"):
        make_cross_entropy_scorer(average=None)
