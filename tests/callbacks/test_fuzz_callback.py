"""Fuzz ``PerClassBCEMonitor``'s batch hooks with what a ``training_step`` / ``validation_step`` may return.

Outputs are mappings of generated multilabel batches (every dtype, NaN and +-inf, out-of-range values,
empty and 0-d tensors, strided and expanded layouts, numpy arrays, lists, complex and meta tensors,
wrong shapes), missing keys, or not mappings at all. The contract: a batch the functional
``multilabel_cross_entropy`` accepts is added (the epoch's per-label values equal the functional on the
concatenated accepted batches, 1e-12 relative); anything else raises a ``TypeError`` / ``ValueError``
naming the argument, and the monitor's sums are bit-for-bit as before.
"""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from helpers.fuzz import FLOATS, NAMED_ARGUMENT, Batch, Stream, batches, outcome, quiet, same_bits
from hypothesis import given, settings
from hypothesis import strategies as st

from xent_metrics.callbacks import PerClassBCEMonitor
from xent_metrics.functional import multilabel_cross_entropy

FUZZ = settings(max_examples=max(80, settings.default.max_examples))
#: Outcomes per entry point, printed in the terminal summary (see conftest.py).
FUZZ_OUTCOMES: Counter = Counter()
TRAINER = SimpleNamespace(sanity_checking=False)  # all the batch hooks read of the trainer
#: The monitor's own errors name its key arguments or the step whose output was wrong.
NAMED = re.compile(rf"{NAMED_ARGUMENT.pattern}|(preds|target)_key=|`(training|validation)_step`")


@st.composite
def outputs_of(draw: st.DrawFn, stream: Stream) -> tuple[object, Batch | None]:
    """What a step returns, and the ``(preds, target, None)`` batch in it (None when it is not a full mapping)."""
    preds, target, _ = draw(batches(stream))
    shape = draw(st.sampled_from(["dict"] * 6 + ["missing key", "tensor", "none", "tuple"]))
    if shape == "dict":
        return {"loss": torch.tensor(0.0), "preds": preds, "target": target}, (preds, target, None)
    if shape == "missing key":
        return {"loss": torch.tensor(0.0), "preds": preds}, None
    return {"tensor": preds, "none": None, "tuple": (preds, target)}[shape], None


def _expected(fmt: str, ignore: int | None, accepted: list[Batch], k: int) -> torch.Tensor:
    if not accepted:
        return torch.full((k,), float("nan"), dtype=torch.float64)
    preds = torch.cat([p for p, _, _ in accepted])
    target = torch.cat([t for _, t, _ in accepted])
    with quiet():
        return multilabel_cross_entropy(preds, target, input_format=fmt, ignore_index=ignore, average="none")


@FUZZ
@given(
    data=st.data(),
    k=st.integers(1, 4),
    fmt=st.sampled_from(["logits", "probs", "log_probs"]),
    ignore=st.sampled_from([None, -1]),
    stage=st.sampled_from(["train", "val"]),
)
def test_fuzz_batch_hooks(data: st.DataObject, k: int, fmt: str, ignore: int | None, stage: str) -> None:
    preds_dtype = data.draw(st.sampled_from(FLOATS * 3 + [torch.int64, torch.bool]))
    target_dtype = data.draw(st.sampled_from([torch.int64, torch.float32] + ([torch.bool] if ignore is None else [])))
    stream = Stream("multilabel", k, (), fmt, preds_dtype, target_dtype, False, False, ignore)
    monitor = PerClassBCEMonitor(num_labels=k, input_format=fmt, ignore_index=ignore, stages=[stage])
    hook: Any = monitor.on_train_batch_end if stage == "train" else monitor.on_validation_batch_end
    metric = monitor.metrics[stage]
    accepted: list[Batch] = []
    for index in range(data.draw(st.integers(1, 4))):
        outputs, batch = data.draw(outputs_of(stream))
        expected_err = None
        if batch is not None:
            _, expected_err = outcome(
                multilabel_cross_entropy, batch[0], batch[1], num_labels=k, input_format=fmt, ignore_index=ignore
            )
        before = metric.sums.clone()
        _, err = outcome(hook, TRAINER, None, outputs, None, index)
        if err is None:
            assert batch is not None and expected_err is None, f"accepted {outputs!r} ({expected_err!r})"
            accepted.append(batch)
            FUZZ_OUTCOMES[f"PerClassBCEMonitor.on_{stage}_batch_end: accepted"] += 1
            continue
        assert batch is None or expected_err is not None, f"rejected a valid batch: {err!r}"
        assert NAMED.search(str(err)), f"the error does not name the argument: {err}"
        assert same_bits(metric.sums, before), "a rejected batch changed the monitor's sums"
        FUZZ_OUTCOMES[f"PerClassBCEMonitor.on_{stage}_batch_end: rejected with a named error, state unchanged"] += 1
    with quiet():
        computed = metric.compute()
    np.testing.assert_allclose(computed.numpy(), _expected(fmt, ignore, accepted, k).numpy(), rtol=1e-12, atol=0)
    FUZZ_OUTCOMES[f"PerClassBCEMonitor.on_{stage}_batch_end: epoch values equal to the functional"] += 1


@pytest.mark.parametrize(
    ("outputs", "match"),
    [
        ({"preds": np.zeros((2, 2), np.float32), "target": torch.zeros(2, 2)}, r"`preds` must be a torch\.Tensor"),
        ({"preds": torch.zeros(2, 2), "target": [[0, 1], [1, 0]]}, r"`target` must be a torch\.Tensor"),
    ],
)
def test_non_tensor_outputs_raise_a_type_error_naming_them(outputs: dict, match: str) -> None:
    """Found by the fuzz: a numpy ``preds`` raised ``AttributeError: 'numpy.ndarray' ... no attribute 'detach'``."""
    monitor = PerClassBCEMonitor(num_labels=2, stages=["train"])
    with pytest.raises(TypeError, match=match):
        monitor.on_train_batch_end(TRAINER, None, outputs, None, 0)
    assert not monitor.metrics["train"].sums.any()
