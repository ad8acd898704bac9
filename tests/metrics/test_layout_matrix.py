"""A generated matrix of state layouts: every pair is merged and loaded both ways, refused or exact.

Within each class, every ``average`` (``units`` for ``Perplexity``) and each option that changes an
update is paired deterministically with the configurations one step away (another reading option,
or another update option) and with itself; every cross-class pair of default configurations is added.
Each pair is merged (``merge_state``) and loaded (``load_state_dict(state_dict())``) both ways: a
refusal leaves the receiving state bit for bit as it was and names both layouts; an acceptance gives
the receiver's value on the union of the data (merge) or on the giver's data (load), to 1e-12 against
float64 references computed here with ``torch.nn.functional`` (never with the package).

Which pairs are compatible is the rule of the issue, spelt out in :func:`compatible`: one class, the
same update options, and for ``Perplexity`` the same units and byte count; a micro
``MulticlassCrossEntropy`` takes a per-class state, never the reverse.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import cases
from torchmetrics import Metric

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
C, K, V, ROWS = 4, 3, 5, 15
EPS = torch.finfo(torch.float64).eps
CLASSES = cases.CLASSES  # name: (class, task)
#: Per task, each option that changes an update (one at a time) and its constructor keywords.
OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "binary": {
        "default": {},
        "probs": {"input_format": "probs"},
        "pos_weight": {"pos_weight": 0.3},
        "ignore": {"ignore_index": -1},
        "smoothing": {"label_smoothing": 0.1},
    },
    "multiclass": {
        "default": {},
        "probs": {"input_format": "probs"},
        "weight": {"weight": torch.tensor([0.3, 1.7, 1.0, 0.6])},
        "ignore": {"ignore_index": -100},
        "smoothing": {"label_smoothing": 0.1},
        "count": {"num_classes": C + 1},
    },
    "multilabel": {
        "default": {},
        "probs": {"input_format": "probs"},
        "weight": {"pos_weight": torch.tensor([0.3, 2.0, 1.1])},
        "ignore": {"ignore_index": -1},
        "smoothing": {"label_smoothing": 0.1},
        "count": {"num_labels": K + 1},
    },
    "lm": {"default": {}, "probs": {"input_format": "probs"}, "ignore": {"ignore_index": -100}},
}
#: Per task, the options that only read the sums: ``average``, or ``Perplexity``'s units and byte count.
READS: dict[str, dict[str, dict[str, Any]]] = {
    "binary": {"-": {}},
    "multiclass": {a: {"average": a} for a in ("micro", "macro", "none")},
    "multilabel": {a: {"average": a} for a in ("micro", "macro", "none")},
    "lm": {
        "perplexity": {},
        "bits_per_token": {"units": "bits_per_token"},
        "bytes1000": {"units": "bits_per_byte", "num_bytes": 1000},
        "bytes777": {"units": "bits_per_byte", "num_bytes": 777},
    },
}


@dataclass(frozen=True)
class Config:
    """One configuration: a class, a reading option and an update option (by their names above)."""

    name: str
    read: str
    option: str

    @property
    def task(self) -> str:
        return CLASSES[self.name][1]

    @property
    def keywords(self) -> dict[str, Any]:
        count = {"multiclass": {"num_classes": C}, "multilabel": {"num_labels": K}}.get(self.task, {})
        return {**count, **READS[self.task][self.read], **OPTIONS[self.task][self.option]}

    def make(self) -> Metric:
        return CLASSES[self.name][0](**self.keywords)

    def __str__(self) -> str:
        return f"{self.name}[{self.read},{self.option}]"


def compatible(receiver: Config, giver: Config) -> bool:
    """The issue's rule: one class and update option; same units; micro CE takes per-class, never the reverse."""
    if receiver.name != giver.name or receiver.option != giver.option:
        return False
    if receiver.task == "lm":
        return receiver.read == giver.read
    if receiver.name == "MulticlassCrossEntropy":
        return receiver.read == "micro" or giver.read != "micro"
    return True


def _pairs() -> list[tuple[Config, Config]]:
    pairs = []
    for name, (_, task) in CLASSES.items():
        configs = [Config(name, r, o) for r in READS[task] for o in OPTIONS[task]]
        for a, b in itertools.combinations_with_replacement(configs, 2):
            if (a.read == b.read) + (a.option == b.option) >= 1:  # itself, or one step away
                pairs.append((a, b))
    defaults = [Config(name, next(iter(READS[task])), "default") for name, (_, task) in CLASSES.items()]
    pairs += list(itertools.combinations(defaults, 2))
    return pairs


PAIRS = _pairs()


# --------------------------------------------------------------------------------------------- batches
@functools.cache
def batches(config: Config, seed: int) -> tuple[Batch, ...]:
    """Two batches of ``ROWS`` rows that fit ``config``: float64 scores (or probabilities), targets, sample weights.

    Cached: the same tensors every time (nothing writes them).
    """
    g = torch.Generator().manual_seed(seed)
    kw = config.keywords
    count = kw.get("num_classes", kw.get("num_labels", C))
    out = []
    for _ in range(2):
        z = torch.randn(*_score_shape(config.task, count), generator=g, dtype=torch.float64) * 2
        target = _targets(config.task, count, g)
        if "ignore_index" in kw:
            target.view(-1)[torch.randperm(target.numel(), generator=g)[:2]] = kw["ignore_index"]
        if kw.get("input_format") == "probs":
            z = torch.sigmoid(z) if config.task in ("binary", "multilabel") else torch.softmax(z, dim=-1)
        out.append((z, target, torch.rand(ROWS, generator=g, dtype=torch.float64) + 0.1))
    return tuple(out)


def _score_shape(task: str, count: int) -> tuple[int, ...]:
    return {"binary": (ROWS,), "multiclass": (ROWS, count), "multilabel": (ROWS, count), "lm": (ROWS, 3, V)}[task]


def _targets(task: str, count: int, g: torch.Generator) -> torch.Tensor:
    """Targets in which every class (each label's 0 and 1) occurs, so no per-class value is undefined."""
    if task == "multilabel":
        return torch.stack([torch.randperm(ROWS, generator=g) % 2 for _ in range(count)], dim=1)
    if task == "lm":
        return torch.randint(0, V, (ROWS, 3), generator=g)
    return torch.randperm(ROWS, generator=g) % (2 if task == "binary" else count)


# ------------------------------------------------------------------------------------------ references
def reference(config: Config, data: tuple[Batch, ...]) -> torch.Tensor:
    """The value of ``config`` on all of ``data``, in float64, from ``torch.nn.functional``."""
    z, target, s = (torch.cat([b[i] for b in data]) for i in range(3))
    kw = config.keywords
    if config.task == "multiclass":
        return _multiclass(config.name, kw, z, target, s)
    if config.task == "lm":
        return _perplexity(kw, z, target, s)
    if config.task == "binary":
        z, target = z[:, None], target[:, None]
    return _bce(config.name, kw, z, target, s)


def _per_class(num: torch.Tensor, den: torch.Tensor, average: str) -> torch.Tensor:
    if average == "micro":
        return num.sum() / den.sum()
    return num / den if average == "none" else (num / den).mean()


def _bce(name: str, kw: dict, z: torch.Tensor, target: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per-label loss, weight and target sums of F.binary_cross_entropy(_with_logits); CE or NE from them."""
    kept = target != kw.get("ignore_index", -1)
    ls = kw.get("label_smoothing", 0.0)
    y = torch.where(kept, target, 0).double() * (1 - ls) + ls / 2
    if kw.get("input_format") == "probs":
        loss = F.binary_cross_entropy(z.clamp(EPS, 1 - EPS), y, reduction="none")
    else:
        pos = kw.get("pos_weight")
        pos = None if pos is None else torch.as_tensor(pos, dtype=torch.float64)
        loss = F.binary_cross_entropy_with_logits(z, y, pos_weight=pos, reduction="none")
    w = torch.where(kept, s[:, None].expand_as(loss), 0.0)
    num, den, mass = (w * loss).sum(0), w.sum(0), (w * y).sum(0)
    average = kw.get("average", "micro")
    if name.endswith("CrossEntropy"):
        return _per_class(num, den, average)
    rate = mass / den
    entropy = -(rate * torch.log(rate) + (1 - rate) * torch.log1p(-rate))
    return _per_class(num, den * entropy, average)


def _multiclass(name: str, kw: dict, z: torch.Tensor, target: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy per sample, attributed to its true class; NE over the entropy of the (smoothed) prior."""
    count, ii, ls = kw["num_classes"], kw.get("ignore_index", -100), kw.get("label_smoothing", 0.0)
    weight = kw.get("weight")
    weight = torch.ones(count, dtype=torch.float64) if weight is None else weight.double()
    scores = torch.log(z.clamp(EPS, 1 - EPS)) if kw.get("input_format") == "probs" else z
    loss = F.cross_entropy(scores, target, weight=weight, ignore_index=ii, label_smoothing=ls, reduction="none")
    kept = (target != ii).double()
    y = torch.where(target != ii, target, 0)
    onehot = F.one_hot(y, count).double() * kept[:, None]
    num = (onehot * (s * loss)[:, None]).sum(0)
    den = (onehot * (s * weight[y])[:, None]).sum(0)
    ce = _per_class(num, den, kw.get("average", "micro"))
    if name == "MulticlassCrossEntropy":
        return ce
    prior = (((1 - ls) * onehot + ls / count * kept[:, None]) * s[:, None]).sum(0)
    prior = prior / prior.sum()
    return ce / -(prior * torch.log(prior)).sum()


def _perplexity(kw: dict, z: torch.Tensor, target: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    ii = kw.get("ignore_index", -100)
    scores = torch.log(z.clamp(EPS, 1 - EPS)) if kw.get("input_format") == "probs" else z
    loss = F.cross_entropy(scores.reshape(-1, V), target.reshape(-1), ignore_index=ii, reduction="none")
    w = torch.where(target != ii, s[:, None], 0.0).reshape(-1)
    total = (w * loss).sum()
    units = kw.get("units", "perplexity")
    if units == "bits_per_byte":
        return total / (kw["num_bytes"] * math.log(2))
    ce = total / w.sum()
    return torch.exp(ce) if units == "perplexity" else ce / math.log(2)


# ------------------------------------------------------------------------------------------------ tests
@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread (a busy 2-core runner otherwise spends the time waking the second)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _fed(config: Config, seed: int) -> Metric:
    """``config``'s metric fed its batches of ``seed``; cached: a receiver takes a deep copy, a giver is only read."""
    metric = config.make()
    for preds, target, weight in batches(config, seed):
        metric.update(preds, target, weight)
    return metric


def outcome(receiver: Config, giver: Config, how: str) -> str:
    """Merge or load ``giver``'s state into ``receiver``'s; check it and return "exact" or "refused"."""
    mine, theirs = batches(receiver, seed=1), batches(giver, seed=2)
    metric, other = copy.deepcopy(_fed(receiver, 1)), _fed(giver, 2)
    given = other.sums.clone()
    before = metric.sums.clone()
    def act() -> None:
        metric.merge_state(other) if how == "merge" else metric.load_state_dict(other.state_dict())

    if not compatible(receiver, giver):
        with pytest.raises(ValueError) as refusal:
            act()
        assert metric.sums.dtype == before.dtype and torch.equal(metric.sums, before), "a refusal changed the state"
        assert re.search(re.escape(str(metric.layout)), str(refusal.value)), "the receiving layout is not named"
        assert re.search(re.escape(str(other.layout)), str(refusal.value)), "the incoming layout is not named"
        return "refused"
    act()
    assert torch.equal(other.sums, given), "the giver changed"
    expected = reference(receiver, mine + theirs if how == "merge" else theirs)
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-12, atol=0)
    return "exact"


OUTCOMES: Counter[str] = Counter()


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}~{b}" for a, b in PAIRS])
def test_each_pair_merges_and_loads_both_ways_exactly_or_is_refused_unchanged(first: Config, second: Config) -> None:
    for receiver, giver in ((first, second), (second, first)):
        for how in ("merge", "load"):
            OUTCOMES[outcome(receiver, giver, how)] += 1


def test_the_matrix_has_both_outcomes_in_every_class_and_is_sized_for_ci() -> None:
    assert 300 <= len(PAIRS) <= 500
    for name in CLASSES:
        within = [(a, b) for a, b in PAIRS if a.name == b.name == name]
        assert any(compatible(a, b) for a, b in within) and not all(compatible(a, b) for a, b in within), name
    one_way = [(a, b) for a, b in PAIRS if compatible(a, b) != compatible(b, a)]
    assert one_way and all(a.name == "MulticlassCrossEntropy" for a, _ in one_way)  # micro <- per-class only


def test_the_references_are_those_of_torch_on_a_worked_case() -> None:
    """The reference helpers agree with F.cross_entropy's own mean where that mean is defined (a guard on them)."""
    config = Config("MulticlassCrossEntropy", "micro", "weight")
    data = batches(config, seed=3)
    z, target = torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data])
    ones = tuple((b[0], b[1], torch.ones(ROWS, dtype=torch.float64)) for b in data)
    expected = F.cross_entropy(z, target, weight=config.keywords["weight"].double())
    torch.testing.assert_close(reference(config, ones), expected, rtol=1e-14, atol=0)
