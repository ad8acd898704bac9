"""The Metric classes' life cycle on the reference harness's cases: merge of two halves, clone, pickle,
``state_dict`` resume mid-epoch, reset, and dtype casts that keep the float64 state."""

from __future__ import annotations

import pickle

import pytest
import torch
from helpers.cases import REFERENCE_CASES, Case
from helpers.harness import RTOL, close, feed


@pytest.fixture(params=REFERENCE_CASES, ids=[c.id for c in REFERENCE_CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def test_merge_clone_pickle_state_dict_reset(case: Case) -> None:
    first, second = case.batches[:3], case.batches[3:]
    full = case.make()
    feed(full, case.batches)
    expected = full.compute()

    head, tail = case.make(), case.make()
    feed(head, first)
    feed(tail, second)
    clone = head.clone()
    pickled = pickle.loads(pickle.dumps(head))
    resumed = case.make()
    resumed.load_state_dict(head.state_dict())

    head.merge_state(tail)
    close(head.compute(), expected)
    for copy in (clone, pickled, resumed):
        feed(copy, second)
        assert torch.equal(copy.sums, full.sums) or torch.allclose(copy.sums, full.sums, rtol=RTOL, atol=0)
        close(copy.compute(), expected)
    clone.update(*case.batches[0])  # a clone is independent of its source
    assert not torch.equal(clone.sums, full.sums)
    close(full.compute(), expected)

    full.reset()
    assert full.update_count == 0
    assert torch.equal(full.sums, torch.zeros_like(full.sums))
    feed(full, second)
    close(full.compute(), tail.compute())


def test_dtype_casts_keep_float64_state(case: Case) -> None:
    metric = case.make()
    feed(metric, case.batches)
    before = metric.sums.clone()
    value = metric.compute()
    for cast in (
        lambda m: m.to(torch.float16),
        lambda m: m.half(),
        lambda m: m.bfloat16(),
        lambda m: m.float(),
        lambda m: m.type(torch.float16),
        lambda m: m.set_dtype(torch.float16),
        lambda m: m.to("cpu", torch.float32),
    ):
        cast(metric)
        assert metric.sums.dtype == torch.float64
        assert torch.equal(metric.sums, before)
        assert metric.compute().dtype == torch.float64
    close(metric.compute(), value)
    metric.reset()
    assert metric.sums.dtype == torch.float64
