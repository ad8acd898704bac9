"""hypothesis-driven oracle cases: shapes, options, dtypes and one confident row drawn (and shrunk) by hypothesis.

The seeded sweeps cover the option product evenly; here hypothesis explores shapes and margins freely and
shrinks a failure to a small case. The examples per test scale with the profile (ORACLE_PROFILE=long: 12x).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_cases import AVERAGES, DTYPES, FORMATS, LAYOUTS, as_format, layout_of, quiet_macro, sigmoid_format
from oracle_refs import RTOL, SCALE, bce_elements, bce_mean, check, mc_hard, mc_soft, report

from xent_metrics.functional import multiclass_cross_entropy, multilabel_cross_entropy

EXAMPLES = 120 * SCALE


def _logits(seed: int, shape: tuple[int, ...], margin: float) -> np.ndarray:
    """0.3-ish logits; sample 0's first class (at every position) leads the others by ``margin`` nats."""
    rng = np.random.default_rng(seed)
    z = rng.normal(loc=0.3, scale=rng.choice([0.3, 2.1]), size=shape)
    z[0, 0] = np.delete(z[0], 0, axis=0).max(axis=0) + margin
    return z


@st.composite
def multiclass_cases(draw: st.DrawFn) -> dict:
    C = draw(st.sampled_from([2, 3, 7, 16, 127, 128, 129]))
    shape = (draw(st.integers(1, 9)), C, *draw(st.sampled_from([(), (2,), (1, 3), (2, 2)])))
    dtype = draw(st.sampled_from(DTYPES))
    top = 690.0  # every dtype: float32's exp range ends at 88 nats, the contract does not
    return dict(
        seed=draw(st.integers(0, 2**32 - 1)), shape=shape, dtype=dtype, fmt=draw(st.sampled_from(FORMATS)),
        margin=draw(st.floats(-top, top, allow_nan=False)), soft=draw(st.booleans()),
        weight=draw(st.booleans()), sample_weight=draw(st.sampled_from([None, "sample", "position"])),
        ignore_index=draw(st.sampled_from([None, -100, 1])), label_smoothing=draw(st.sampled_from([0.0, 0.05, 0.3])),
        average=draw(st.sampled_from(AVERAGES)), layout=draw(st.sampled_from(LAYOUTS)),
    )


def _weights(rng, kind, positions):
    if kind is None:
        return None
    s = torch.tensor(rng.uniform(0.05, 2.3, size=positions[:1] if kind == "sample" else positions))
    s.view(-1)[-1] = 0.0 if s.numel() > 1 else s.view(-1)[-1]
    return s


@settings(max_examples=EXAMPLES)
@given(case=multiclass_cases())
def test_multiclass_any_case(case: dict) -> None:
    shape, C, fmt, layout = case["shape"], case["shape"][1], case["fmt"], case["layout"]
    rng = np.random.default_rng(case["seed"])
    preds = layout_of(torch.tensor(as_format(_logits(case["seed"], shape, case["margin"]), fmt), dtype=case["dtype"]),
                      layout)
    positions = shape[:1] + shape[2:]
    w = torch.tensor(rng.uniform(0.2, 2.3, size=C)) if case["weight"] else None
    s = _weights(rng, case["sample_weight"], positions)
    eps, ls, average = torch.finfo(preds.dtype).eps, case["label_smoothing"], case["average"]
    if case["soft"]:
        y = layout_of(torch.tensor(rng.uniform(size=shape)), layout)
        ii, want = None, mc_soft(preds.double(), y, fmt, eps, w, s, ls, average)
    else:
        y = torch.tensor(rng.integers(0, C, size=positions))
        y.view(-1)[0] = 0  # the confident position keeps its true class
        ii = case["ignore_index"]
        if ii is not None and not bool((y != ii).any()):
            ii = None
        want = mc_hard(preds.double(), y, fmt, eps, w, s, ii, ls, average)
    if bool(want.isnan().all()):
        return  # every weight zero or every target ignored (the package refuses or warns: its own tests cover that)
    with quiet_macro():
        got = multiclass_cross_entropy(preds, y, input_format=fmt, weight=w, sample_weight=s, ignore_index=ii,
                                       label_smoothing=ls, average=average)
    failures: list[str] = []
    check(failures, "hypothesis multiclass", got, want, RTOL[preds.dtype], f"{case}", preds.dtype)
    report(failures)


@st.composite
def multilabel_cases(draw: st.DrawFn) -> dict:
    dtype = draw(st.sampled_from(DTYPES))
    top = 700.0  # every dtype: past 690 nats a loss below 1e-300 is held to 1e-300 absolute
    return dict(
        seed=draw(st.integers(0, 2**32 - 1)), dtype=dtype, fmt=draw(st.sampled_from(FORMATS)),
        shape=(draw(st.integers(1, 9)), draw(st.integers(1, 6)), *draw(st.sampled_from([(), (3,), (2, 2)]))),
        margin=draw(st.floats(-top, top, allow_nan=False)), soft=draw(st.booleans()),
        pos_weight=draw(st.sampled_from([None, "tensor"])), sample_weight=draw(st.sampled_from([None, "sample"])),
        ignore_index=draw(st.sampled_from([None, -1])), label_smoothing=draw(st.sampled_from([0.0, 0.1])),
        average=draw(st.sampled_from(AVERAGES)), layout=draw(st.sampled_from(LAYOUTS)),
    )


@settings(max_examples=EXAMPLES)
@given(case=multilabel_cases())
def test_multilabel_any_case(case: dict) -> None:
    shape, fmt, layout = case["shape"], case["fmt"], case["layout"]
    rng = np.random.default_rng(case["seed"])
    z = rng.normal(loc=0.3, scale=rng.choice([0.3, 2.1]), size=shape)
    z.flat[0] = case["margin"]
    preds = layout_of(torch.tensor(sigmoid_format(z, fmt), dtype=case["dtype"]), layout)
    y = torch.tensor(rng.uniform(size=shape)) if case["soft"] else torch.tensor(rng.integers(0, 2, size=shape))
    ii = None if case["soft"] else case["ignore_index"]
    if ii is not None:
        y = torch.where(torch.tensor(rng.uniform(size=shape) < 0.2), ii, y)
    pw = torch.tensor(rng.uniform(0.2, 2.3, size=shape[1])) if case["pos_weight"] else None
    s = _weights(rng, case["sample_weight"], shape[:1])
    eps, ls, average = torch.finfo(preds.dtype).eps, case["label_smoothing"], case["average"]
    pw_b = None if pw is None else pw.reshape((1, -1) + (1,) * (len(shape) - 2))
    loss = bce_elements(preds.double(), torch.where(y == ii, 0, y) if ii is not None else y, fmt, eps, pw_b, ls)
    want = bce_mean(loss, y, s, ii, average, label_dim=1)
    if bool(want.isnan().all()):
        return  # every entry ignored
    with quiet_macro():
        got = multilabel_cross_entropy(preds, y, input_format=fmt, pos_weight=pw, sample_weight=s, ignore_index=ii,
                                       label_smoothing=ls, average=average)
    failures: list[str] = []
    check(failures, "hypothesis multilabel", got, want, RTOL[preds.dtype], f"{case}", preds.dtype)
    report(failures)
