"""State layouts: one rule for merge_state, load_state_dict and compute groups; saved with checkpoints.

The generated matrix of every pair is ``test_layout_matrix.py``; here are the cases the issue names
(micro totals and per-class sums meeting, another class count, another task), older checkpoints
without a saved layout (and the one ambiguity they keep), malformed inputs, and compute groups.
Expected values come from ``torch.nn.functional`` in float64.
"""

import io
import re

import pytest
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.aggregation import SumMetric

from xent_metrics import (
    BinaryCrossEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    Perplexity,
)

C = 5


def _data(seed: int = 12, n: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C, generator=g, dtype=torch.float64) * 2
    return z, torch.randperm(n, generator=g) % C, torch.rand(n, generator=g, dtype=torch.float64) + 0.1


def _micro(z: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return (F.cross_entropy(z, t, reduction="none") * s).sum() / s.sum()


def _per_class(z: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(z, t, reduction="none") * s
    return torch.stack([loss[t == c].sum() / s[t == c].sum() for c in range(C)])


def _fed(metric, z, t, s):  # type: ignore[no-untyped-def]
    metric.update(z, t, s)
    return metric


def _without_layout(state: dict) -> dict:
    """A checkpoint as saved before layouts were: the sums alone."""
    return {key: value for key, value in state.items() if key != "layout"}


def test_layouts_per_configuration_and_their_saved_text() -> None:
    assert MulticlassCrossEntropy(C).sums.shape == (3, 1)
    assert Perplexity().sums.shape == (3, 1)
    for metric in (MulticlassCrossEntropy(C, average="none"), MulticlassCrossEntropy(C, average="macro")):
        assert metric.sums.shape == (3, C)
    assert MulticlassNormalizedEntropy(C).sums.shape == (3, C)  # the class prior needs per-class mass
    text = MulticlassCrossEntropy(C, weight=torch.tensor([1.0, 0.3, 1.0, 1.0, 2.0]), ignore_index=-100).state_dict()
    assert text["layout"] == (
        "MulticlassCrossEntropy over multiclass(num_classes=5, input_format='logits', weight=[1.0, "
        f"{float(torch.tensor(0.3))!r}, 1.0, 1.0, 2.0], ignore_index=-100, label_smoothing=0.0) with sums (3, 1)"
    )  # the float32 weight 0.3 by its float64 value; average, validate_args and fused change no update
    assert str(MulticlassCrossEntropy(C, average="none", fused=True).layout) == str(
        MulticlassCrossEntropy(C, average="macro", validate_args=False).layout
    )
    long = MulticlassCrossEntropy(40, weight=torch.linspace(0.5, 2.0, 40)).state_dict()["layout"]
    assert re.search(r"weight=<40 values, sha256 [0-9a-f]{16}>", long)


# ------------------------------------------------------------------------------- the cases
def test_micro_takes_per_class_sums_as_totals_and_the_reverse_is_refused_unchanged() -> None:
    z, t, s = _data()
    micro = _fed(MulticlassCrossEntropy(C), z[:13], t[:13], s[:13])
    per_class = _fed(MulticlassCrossEntropy(C, average="none"), z[13:], t[13:], s[13:])
    before = per_class.sums.clone()
    with pytest.raises(ValueError, match=r"holds the sums of MulticlassCrossEntropy .* with sums \(3, 1\); this "
                       r"metric is MulticlassCrossEntropy .* with sums \(3, 5\)\. .*never the reverse"):
        per_class.merge_state(micro)
    assert torch.equal(per_class.sums, before)
    per_class.update(z[:13], t[:13], s[:13])  # later updates still add per class: no broadcast took place
    torch.testing.assert_close(per_class.compute(), _per_class(z, t, s), rtol=1e-12, atol=0)
    micro.merge_state(_fed(MulticlassCrossEntropy(C, average="macro"), z[13:], t[13:], s[13:]))
    assert micro.sums.shape == (3, 1)
    torch.testing.assert_close(micro.compute(), _micro(z, t, s), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda: MulticlassCrossEntropy(7, average="none"), id="another-class-count"),
        pytest.param(lambda: MultilabelCrossEntropy(C), id="another-task-same-width"),
        pytest.param(BinaryCrossEntropy, id="another-task-same-shape"),
        pytest.param(Perplexity, id="perplexity-same-shape"),
        pytest.param(lambda: MulticlassCrossEntropy(C, label_smoothing=0.1), id="another-update-option"),
        pytest.param(lambda: MulticlassNormalizedEntropy(C), id="another-class-same-options"),
    ],
)
def test_a_micro_metric_refuses_a_state_of_another_layout_naming_both(other) -> None:  # type: ignore[no-untyped-def]
    z, t, s = _data()
    micro = _fed(MulticlassCrossEntropy(C), z, t, s)
    before, state = micro.sums.clone(), other().state_dict()
    both = rf"holds the sums of {re.escape(state['layout'])}; this metric is {re.escape(str(micro.layout))}"
    with pytest.raises(ValueError, match=both):
        micro.load_state_dict(state)
    with pytest.raises(ValueError, match=both):
        micro.merge_state(other())
    assert torch.equal(micro.sums, before)
    torch.testing.assert_close(micro.compute(), _micro(z, t, s), rtol=1e-12, atol=0)


def test_a_merge_drops_the_cached_result() -> None:
    z, t, s = _data()
    metric = _fed(MulticlassCrossEntropy(C), z[:20], t[:20], s[:20])
    torch.testing.assert_close(metric.compute(), _micro(z[:20], t[:20], s[:20]), rtol=1e-12, atol=0)
    metric.merge_state(_fed(MulticlassCrossEntropy(C), z[20:], t[20:], s[20:]))
    torch.testing.assert_close(metric.compute(), _micro(z, t, s), rtol=1e-12, atol=0)


def test_merge_takes_a_state_dict_with_or_without_its_layout() -> None:
    z, t, s = _data()
    other = _fed(MulticlassCrossEntropy(C, average="none"), z[20:], t[20:], s[20:])
    for state in (other.state_dict(), _without_layout(other.state_dict()), other.metric_state):
        metric = _fed(MulticlassCrossEntropy(C), z[:20], t[:20], s[:20])
        metric.merge_state(state)
        torch.testing.assert_close(metric.compute(), _micro(z, t, s), rtol=1e-12, atol=0)


def test_merge_refuses_what_is_not_a_state_of_this_package() -> None:
    metric = MulticlassCrossEntropy(C)
    with pytest.raises(TypeError, match=r"`merge_state` takes a metric of this package .*, got SumMetric"):
        metric.merge_state(SumMetric())
    with pytest.raises(TypeError, match=r"`merge_state` takes a metric of this package .*, got list"):
        metric.merge_state([torch.zeros(3, 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs the sums of the incoming state under 'sums'.*\['loss_sum'\]"):
        metric.merge_state({"loss_sum": torch.zeros(1)})
    with pytest.raises(TypeError, match=r"layout must be the text a metric's `state_dict\(\)` saves, got 3"):
        metric.merge_state({"sums": torch.zeros(3, 1, dtype=torch.float64), "layout": 3})
    assert torch.equal(metric.sums, torch.zeros(3, 1, dtype=torch.float64))


def test_sums_that_contradict_their_saved_layout_are_refused() -> None:
    state = MulticlassCrossEntropy(C).state_dict()
    state["sums"] = torch.ones(3, C, dtype=torch.float64)  # per-class sums under a totals layout
    metric = MulticlassCrossEntropy(C)
    with pytest.raises(ValueError, match=r"shape \(3, 1\) for this metric, .*got shape \(3, 5\).*its layout says"):
        metric.load_state_dict(state)
    assert torch.equal(metric.sums, torch.zeros(3, 1, dtype=torch.float64))


# ------------------------------------------------------------------------------------- older checkpoints
def test_an_older_per_class_checkpoint_loads_into_a_micro_metric_as_its_totals() -> None:
    z, t, s = _data()
    old = _without_layout(_fed(MulticlassCrossEntropy(C, average="none"), z, t, s).state_dict())
    micro = MulticlassCrossEntropy(C)
    micro.load_state_dict(old)
    assert micro.sums.shape == (3, 1)
    torch.testing.assert_close(micro.compute(), _micro(z, t, s), rtol=1e-12, atol=0)
    same = MulticlassCrossEntropy(C, average="none")
    same.load_state_dict(old)
    torch.testing.assert_close(same.compute(), _per_class(z, t, s), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("receiver", "giver", "expected"),
    [
        pytest.param(lambda: MulticlassCrossEntropy(C), lambda: MulticlassCrossEntropy(7, average="none"),
                     r"\(3, 1\) or \(3, 5\)", id="micro-another-count"),
        pytest.param(lambda: MulticlassCrossEntropy(C, average="none"), lambda: MulticlassCrossEntropy(C),
                     r"\(3, 5\)", id="per-class-from-totals"),
        pytest.param(lambda: MultilabelCrossEntropy(3), lambda: MultilabelCrossEntropy(4), r"\(3, 3\)", id="labels"),
    ],
)
def test_an_older_checkpoint_of_another_shape_is_refused(receiver, giver, expected) -> None:  # type: ignore[no-untyped-def]
    metric = receiver()
    before = metric.sums.clone()
    shape = tuple(giver().sums.shape)
    pattern = rf"shape {expected} for this metric, .*got shape {re.escape(str(shape))}.*saved without a layout"
    with pytest.raises(ValueError, match=pattern):
        metric.load_state_dict(_without_layout(giver().state_dict()))
    assert torch.equal(metric.sums, before)


def test_the_one_ambiguity_an_older_checkpoint_of_the_same_shape_from_another_task_loads() -> None:
    """Documented in ``metrics/_layout.py``: without a saved layout, a state is taken on its shape alone."""
    binary = BinaryCrossEntropy()
    binary.update(torch.tensor([0.3, -1.2]), torch.tensor([1, 0]))
    micro = MulticlassCrossEntropy(C)
    micro.load_state_dict(_without_layout(binary.state_dict()))  # (3, 1) both: cannot be told apart
    assert torch.equal(micro.sums, binary.sums)
    with pytest.raises(ValueError, match="BinaryCrossEntropy"):  # with its layout, as saved now: refused
        MulticlassCrossEntropy(C).load_state_dict(binary.state_dict())


def test_the_layout_travels_through_a_weights_only_checkpoint_of_a_module() -> None:
    z, t, s = _data()
    model = torch.nn.ModuleDict({"xent": _fed(MulticlassCrossEntropy(C, average="none"), z, t, s)})
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["xent.layout"] == str(model["xent"].layout)
    resumed = torch.nn.ModuleDict({"xent": MulticlassCrossEntropy(C, average="macro")})
    resumed.load_state_dict(saved)
    torch.testing.assert_close(resumed["xent"].compute(), _per_class(z, t, s).mean(), rtol=1e-12, atol=0)
    other = torch.nn.ModuleDict({"xent": MulticlassCrossEntropy(C, average="none", ignore_index=-100)})
    with pytest.raises(ValueError, match=r"`state_dict\['xent.sums'\]` holds the sums of .*ignore_index=None"):
        other.load_state_dict(saved)
    assert torch.equal(other["xent"].sums, torch.zeros(3, C, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ compute groups
def test_compute_groups_share_only_sums_that_mean_the_same() -> None:
    """torchmetrics groups metrics whose state names and values agree after the first update; the layout names
    the tag state, so equal sums of other update options (w1, w2 on a first batch without class 4) stay apart."""
    w1, w2 = torch.tensor([1.0, 2.0, 0.5, 1.0, 1.0]), torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
    collection = MetricCollection(
        {
            "micro": MulticlassCrossEntropy(C),
            "none": MulticlassCrossEntropy(C, average="none"),
            "macro": MulticlassCrossEntropy(C, average="macro"),
            "ne": MulticlassNormalizedEntropy(C),
            "w1": MulticlassCrossEntropy(C, weight=w1, average="none"),
            "w2": MulticlassCrossEntropy(C, weight=w2, average="none"),
        }
    )
    z, t, s = _data()
    first = t != 4
    collection.update(z[first], t[first], s[first])
    assert torch.equal(collection["w1"].sums, collection["w2"].sums)  # equal values: only the layout tells them apart
    groups = sorted(sorted(g) for g in collection.compute_groups.values())
    assert groups == [["macro", "ne", "none"], ["micro"], ["w1"], ["w2"]]
    collection.update(z[~first], t[~first], s[~first])
    values = collection.compute()
    torch.testing.assert_close(values["micro"], _micro(z, t, s), rtol=1e-12, atol=0)
    torch.testing.assert_close(values["none"], _per_class(z, t, s), rtol=1e-12, atol=0)
    torch.testing.assert_close(values["macro"], _per_class(z, t, s).mean(), rtol=1e-12, atol=0)
    for name, weight in (("w1", w1), ("w2", w2)):
        loss = F.cross_entropy(z, t, weight=weight.double(), reduction="none") * s
        den = s * weight.double()[t]
        expected = torch.stack([loss[t == c].sum() / den[t == c].sum() for c in range(C)])
        torch.testing.assert_close(values[name], expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"units": "perplexity"}, {"units": "bits_per_token"}, id="units"),
        pytest.param(
            {"units": "bits_per_byte", "num_bytes": 10}, {"units": "bits_per_byte", "num_bytes": 11}, id="bytes"
        ),
    ],
)
def test_perplexities_of_other_units_or_byte_counts_never_merge(first: dict, second: dict) -> None:
    a, b = Perplexity(**first), Perplexity(**second)
    for receiver, giver in ((a, b), (b, a)):
        with pytest.raises(ValueError, match=rf"holds the sums of Perplexity\(units={giver.units!r}, "
                           rf"num_bytes={giver.num_bytes!r}\) .*this metric is Perplexity\(units={receiver.units!r}"):
            receiver.merge_state(giver)
