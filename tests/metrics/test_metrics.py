"""Reference harness for the Metric classes: values against the functional twin and an independent reference.

Each case of ``helpers.cases.REFERENCE_CASES`` is a metric factory, a list of uneven batches, the
functional twin and an independent float64 reference (sklearn, torch, scipy) on all the data. Checked
here, per case: ``forward`` per batch against the functional result on that batch; the accumulated
``compute`` against the functional result on all the data concatenated and against the reference;
``update`` equals ``forward``; the dtype and shape of the state. Merge, clone, pickle, resume, reset
and dtype casts: test_metrics_lifecycle.py.
"""

from __future__ import annotations

import pytest
import torch
from helpers.cases import REFERENCE_CASES, Case, concat
from helpers.harness import close, recorded


@pytest.fixture(params=REFERENCE_CASES, ids=[c.id for c in REFERENCE_CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def test_forward_per_batch_then_compute_matches_functional_and_reference(case: Case) -> None:
    metric = case.make()
    for batch in case.batches:  # batch values, undefined ones (nan + the same warning) included
        value, messages = recorded(lambda batch=batch: metric(*batch))
        expected, expected_messages = recorded(lambda batch=batch: case.functional(*batch))
        close(value, expected)
        assert messages == expected_messages
    assert metric.update_count == len(case.batches)
    preds, target, weight = concat(case.batches)
    close(metric.compute(), case.functional(preds, target, weight))
    w = None if weight is None else weight.numpy()
    close(metric.compute(), case.reference(preds.numpy(), target.numpy(), w))


def test_update_equals_forward_and_state_is_float64(case: Case) -> None:
    by_update, by_forward = case.make(), case.make()
    for batch in case.batches:
        by_update.update(*batch)
        recorded(lambda batch=batch: by_forward(*batch))
    assert torch.equal(by_update.sums, by_forward.sums)
    assert by_update.sums.dtype == torch.float64
    totals_only = type(by_update).__name__ == "MulticlassCrossEntropy" and by_update.average == "micro"
    assert by_update.sums.shape == (3, 1 if totals_only else case.ndim_k)  # micro CE keeps (3, 1) totals
    assert list(by_update.state_dict()) == ["sums", "layout"]  # the sums, and the text of what they mean
