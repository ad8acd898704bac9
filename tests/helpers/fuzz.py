"""hypothesis strategies and checks shared by the fuzz suites (``tests/*/test_fuzz_*.py``).

Values come from :func:`arrays` (a kind of data, sometimes corrupted with NaN, +-inf or far out-of-range
values) and are dressed by :func:`as_tensor` in a dtype and a layout: plain, strided, expanded (stride 0),
a numpy array, a Python list, complex, and (where the caller allows it) the meta device or 0-d.

Logits are never generated all inside ``[0, 1]`` (:func:`not_probability_rows`): such a batch may be
probability rows given as logits, which warn by design (tested in ``test_functional_errors.py``), and
:func:`quiet` lets that warning through as an error, so every fuzzer checks that real logits never raise it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
]
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
LAYOUTS = ["plain"] * 3 + ["strided", "expanded"] * 2 + ["numpy", "list", "complex"]
BAD_LAYOUTS = [*LAYOUTS, "meta", "meta", "0-d"]
Batch = tuple[Any, Any, Any]
#: An error message names the argument it is about, in backticks (the house style).
NAMED_ARGUMENT = re.compile(r"`(preds|target|sample_weight|weight|pos_weight|ignore_index|input_format)`")
#: The start of the warning for probability rows given as logits (never raised by fuzzed logits).
PROBS_AS_LOGITS = r"`preds` look like probabilities, not logits"


class Invalid(Exception):
    """A reference's verdict: this input must be rejected."""


@st.composite
def arrays(draw: st.DrawFn, shape: tuple[int, ...], kind: str, corrupt: bool = True) -> np.ndarray:
    """Values of a kind ("logits", "probs", "log_probs", "binary", "index:C"), sometimes corrupted."""
    size = int(np.prod(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "logits":
        values = rng.normal(scale=draw(st.sampled_from([1.0, 30.0, 1e4])), size=size)
    elif kind == "probs":
        values = rng.uniform(size=size)
    elif kind == "log_probs":
        values = np.log(rng.uniform(size=size))
    elif kind == "binary":
        values = rng.integers(0, 2, size=size).astype(float)
    else:
        values = rng.integers(0, int(kind.split(":")[1]), size=size).astype(float)
    if corrupt and size and draw(st.integers(0, 3)) == 0:  # corrupt a few entries
        bad = draw(st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 2.0, 1e30, -100.0, 0.5]))
        values[rng.integers(0, size, size=max(1, size // 5))] = bad
    return not_probability_rows(values).reshape(shape) if kind == "logits" else values.reshape(shape)


def not_probability_rows(values: np.ndarray) -> np.ndarray:
    """``values`` with its first entry moved below 0 when every value lies in ``[0, 1]`` (others untouched).

    Fuzzed logits are then never read as probability rows by the multiclass check, in any layout (the first
    entry is in the first row, which an expanded layout keeps).
    """
    flat = values.reshape(-1)
    if flat.size and bool(np.all((flat >= 0) & (flat <= 1))):
        flat[0] = -1.0 - flat[0]
    return values


@st.composite
def as_tensor(
    draw: st.DrawFn, values: np.ndarray, dtype: torch.dtype | None = None, layouts: list[str] | None = None
) -> object:
    """``values`` in ``dtype`` (drawn when None) and a layout drawn from ``layouts`` (default :data:`LAYOUTS`).

    Extra layouts a caller may allow: ``"meta"`` (the tensor on the meta device) and ``"0-d"`` (its first
    element as a 0-d tensor).
    """
    dtype = dtype or draw(st.sampled_from(DTYPES + FLOATS * 3))
    with np.errstate(invalid="ignore", over="ignore"):
        tensor = (
            torch.from_numpy(values).to(dtype)
            if dtype.is_floating_point
            else torch.from_numpy(np.asarray(np.nan_to_num(values, nan=7, posinf=7, neginf=-7))).to(dtype)
        )
    layout = draw(st.sampled_from(layouts or LAYOUTS))
    if layout == "strided" and tensor.ndim:
        doubled = torch.repeat_interleave(tensor, 2, dim=0)
        tensor = doubled[::2]
    elif layout == "expanded" and tensor.ndim and tensor.shape[0]:
        tensor = tensor[:1].expand(tensor.shape)
    elif layout == "numpy":
        return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
    elif layout == "list" and draw(st.booleans()):
        return tensor.tolist()
    elif layout == "complex" and draw(st.integers(0, 9)) == 0:
        return tensor.to(torch.complex64)
    elif layout == "meta":
        return tensor.to("meta")
    elif layout == "0-d" and tensor.numel():
        return tensor.reshape(-1)[0].clone()
    return tensor


@contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings (no-data and row-sum warnings are tested elsewhere) and numpy floating-point noise.

    The warning for probability rows given as logits stays an error: fuzzed logits never are such rows.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", message=PROBS_AS_LOGITS, category=UserWarning)
        yield


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Exception | None]:
    """Call ``fn`` quietly; return ``(value, None)`` or ``(None, the TypeError / ValueError it raised)``."""
    try:
        with quiet():
            return fn(*args, **kwargs), None
    except (TypeError, ValueError) as err:
        return None, err


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality of two float tensors, NaN positions (and payloads) included."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    as_int = {8: torch.int64, 4: torch.int32, 2: torch.int16}[a.element_size()]
    return torch.equal(a.reshape(-1).view(as_int), b.reshape(-1).view(as_int))


@dataclass
class Stream:
    """What every batch of one example shares: sizes, dtypes and the constructor options."""

    kind: str
    k: int  # classes, labels or vocabulary size
    extra: tuple[int, ...]  # trailing dimensions
    fmt: str
    preds_dtype: torch.dtype
    target_dtype: torch.dtype
    weighted: bool
    per_position: bool  # sample_weight of the target's shape, not (N,)
    ignore_index: int | None


def _shapes(stream: Stream, n: int) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """The preds shape, the target shape and the target kind of ``n`` samples."""
    k, extra = stream.k, stream.extra
    if stream.kind == "binary":
        return (n, *extra), (n, *extra), "binary"
    if stream.kind == "multilabel":
        return (n, k, *extra), (n, k, *extra), "binary"
    if stream.kind == "multiclass":
        return (n, k, *extra), (n, *extra), f"index:{k + 1}"  # index k is out of range, or ignored
    return (n, *extra, k), (n, *extra), f"index:{k + 1}"


@st.composite
def batches(draw: st.DrawFn, stream: Stream) -> Batch:
    """A batch of the stream, or (one time in three) one with a corrupted argument."""
    n = draw(st.integers(0, 6))
    preds_shape, target_shape, target_kind = _shapes(stream, n)
    if stream.kind == "binary" and not stream.extra and draw(st.integers(0, 5)) == 0:
        preds_shape = target_shape = ()  # a 0-d binary batch is one sample
    corrupt = draw(st.sampled_from(["none"] * 4 + ["preds", "target", "sample_weight", "shape"]))
    if corrupt == "shape":
        preds_shape = draw(st.sampled_from([preds_shape[:-1], (n + 1, *preds_shape[1:]), (*preds_shape, 2)]))
    preds_kind = stream.fmt if corrupt != "preds" else draw(st.sampled_from(["logits", "probs", "log_probs"]))
    values = draw(arrays(preds_shape, preds_kind, corrupt=corrupt == "preds"))
    if stream.fmt == "logits":  # probabilities, log-probabilities and corrupted values are logits here too
        values = not_probability_rows(values)
    preds = draw(
        as_tensor(values, stream.preds_dtype, ["plain", "strided", "expanded"])
        if corrupt != "preds"
        else as_tensor(values, draw(st.sampled_from([stream.preds_dtype, *DTYPES[:4]])), BAD_LAYOUTS)
    )
    values = draw(arrays(target_shape, target_kind, corrupt=corrupt == "target"))
    if stream.ignore_index is not None and values.size and draw(st.booleans()):
        values.reshape(-1)[: draw(st.integers(1, values.size))] = stream.ignore_index
    target_dtype = draw(st.sampled_from(DTYPES)) if corrupt == "target" else stream.target_dtype
    layouts = BAD_LAYOUTS if corrupt == "target" else ["plain", "strided", "expanded"]
    target = draw(as_tensor(values, target_dtype, layouts))
    weight = None
    if stream.weighted or corrupt == "sample_weight":
        weight_shape = target_shape if stream.per_position else target_shape[:1]
        values = draw(arrays(weight_shape, "probs", corrupt=corrupt == "sample_weight"))
        if corrupt == "sample_weight" and values.ndim and draw(st.booleans()):
            values = values[1:]
        layouts = BAD_LAYOUTS if corrupt == "sample_weight" else ["plain"]
        weight = draw(as_tensor(values, draw(st.sampled_from([torch.float64, torch.float32])), layouts))
    return preds, target, weight
