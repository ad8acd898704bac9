"""State layouts: what a metric's ``sums`` mean, declared once, consulted by merge, load and compute groups.

A :class:`Layout` names three things:

- ``metric``: the class, with the options that must agree for two states to be pooled although they
  only read the sums (``Perplexity``'s ``units`` and ``num_bytes``);
- ``update``: the task and every option that changes what an update adds (class or label count,
  input format, class weights, ``ignore_index``, smoothing). ``average`` and ``validate_args`` only
  read the sums and ``fused`` only picks the kernel, so they are left out (but with ``error_bars=True``
  the error-bar rows depend on ``average``, and the metric names it in ``update``);
- ``shape``: the state's shape, ``(3, K)``; ``(4, 1)`` for a ``Perplexity(units="bits_per_byte")``
  constructed without ``num_bytes``, whose fourth row is the byte count its updates were given (bytes
  add, so it pools as the other rows do). Such a metric names ``num_bytes=per update`` in ``metric``:
  it never pools with one of a global ``num_bytes`` (``(3, 1)``, which pools only with an equal count).

One rule decides, for ``merge_state`` and ``load_state_dict`` alike, whether another state may be
pooled into a metric's (:meth:`Layout.pooled`): when the layouts are equal; and, the one exception, a
state of totals (``MulticlassCrossEntropy(average="micro")``, ``(3, 1)``) takes a per-class state
``(3, C)`` of the same class and update options as its column sums. The reverse is refused: totals
cannot be split into classes. Anything else raises a ``ValueError`` naming both layouts, before any
state changes. ``state_dict()`` saves the layout's text under ``"layout"``.

A state without a layout (a checkpoint saved before layouts were saved, or a plain ``{"sums": ...}``
dict given to ``merge_state``) is taken on its shape alone: it is pooled where its shape is the
receiving layout's (or, for a state of totals, its per-class shape). The one ambiguity left: such a
state of the right shape saved by another class or with other update options (say a
``BinaryCrossEntropy`` state loaded into a micro ``MulticlassCrossEntropy``, both ``(3, 1)``) cannot
be told apart, and loads.

``MetricCollection`` shares one update among the metrics of a compute group when their state names
and values agree. The name of each metric's second, empty and unsaved state is a digest of its
layout's ``update`` and ``shape`` (:meth:`Layout.group_tag`): metrics whose sums mean the same
(a per-class cross-entropy and a normalized entropy of the same options) share a group, and no two
whose updates or shapes differ ever do.
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch
from torch import Tensor

#: The ``state_dict`` key of the layout's text.
LAYOUT = "layout"
#: Options that never change what an update adds: they read the sums (``average``, ``validate_args``)
#: or pick the kernel (``fused``).
_NOT_UPDATE = ("average", "validate_args", "fused")
#: Weights of more classes than this are written as a digest in the layout's text.
_LISTED = 16
_FIX = (
    "Pool states of one class constructed with the same options (`average` may differ, but not with "
    "error_bars=True: the error-bar rows depend on it); a micro "
    "MulticlassCrossEntropy also takes per-class sums of the same options as their totals, never the reverse."
)


def update_text(task: str, options: object) -> str:
    """``task(option=value, ...)`` for every option that changes what an update adds; weights as float64 values."""
    parts = []
    for field in dataclasses.fields(options):  # type: ignore[arg-type]
        value = getattr(options, field.name)
        if field.name in _NOT_UPDATE or (field.name == "num_classes" and value is None):
            continue
        parts.append(f"{field.name}={_value_text(value)}")
    return f"{task}({', '.join(parts)})"


def _value_text(value: object) -> str:
    """``repr``, with a tensor as its float64 values (a digest of them past ``_LISTED`` values)."""
    if not isinstance(value, Tensor):
        return repr(value)
    values = value.detach().to("cpu", torch.float64)
    if values.numel() <= _LISTED:
        return repr(values.tolist())
    digest = hashlib.sha256(values.contiguous().numpy().tobytes()).hexdigest()[:16]
    return f"<{values.numel()} values, sha256 {digest}>"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Layout:
    """What a ``sums`` state means: the metric that reads it, what its updates add, and its shape.

    ``per_class`` is the shape of the per-class state whose column sums a state of totals holds
    (equal to ``shape`` for every other state).
    """

    metric: str
    update: str
    shape: tuple[int, ...]
    per_class: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.metric} over {self.update} with sums {self.shape}"

    def group_tag(self) -> str:
        """The name of the empty state that sets ``MetricCollection``'s compute groups: a digest of update and shape."""
        return "config_" + hashlib.sha256(f"{self.update}|{self.shape}".encode()).hexdigest()[:16]

    def pooled(self, value: object, saved: object, where: str, like: Tensor) -> Tensor:
        """``value``, saved with layout text ``saved`` (None: unknown), as this layout's sums, in ``like``'s dtype.

        Raises ``TypeError`` for a ``saved`` that is no text, ``ValueError`` (naming both layouts) for
        sums this layout does not take; nothing is changed either way.
        """
        if saved is not None and not isinstance(saved, str):
            raise TypeError(f"{where}'s layout must be the text a metric's `state_dict()` saves, got {saved!r}.")
        columns = saved is not None and self.per_class != self.shape and saved == str(self._per_class_layout())
        if saved is not None and saved != str(self) and not columns:
            raise ValueError(f"{where} holds the sums of {saved}; this metric is {self}. {_FIX}")
        shapes: tuple[tuple[int, ...], ...] = (self.per_class if columns else self.shape,)
        if saved is None:  # unknown: taken on its shape
            shapes = tuple(dict.fromkeys((self.shape, self.per_class)))
        if not isinstance(value, Tensor) or tuple(value.shape) not in shapes or not value.is_floating_point():
            raise ValueError(_shape_message(self, value, saved, where, shapes))
        value = value.detach().to(device=like.device, dtype=like.dtype)
        return value.sum(1, keepdim=True) if tuple(value.shape) != self.shape else value

    def _per_class_layout(self) -> Layout:
        """The per-class layout this state of totals sums."""
        return dataclasses.replace(self, shape=self.per_class)


def _shape_message(layout: Layout, value: object, saved: object, where: str, shapes: tuple) -> str:
    """The refusal of sums of the wrong type or shape, naming the layouts."""
    seen = f"shape {tuple(value.shape)} ({value.dtype})" if isinstance(value, Tensor) else type(value).__name__
    expected = " or ".join(str(shape) for shape in shapes)
    origin = f"its layout says {saved}" if saved is not None else "saved without a layout"
    return (
        f"{where} must be a floating tensor of shape {expected} for this metric, {layout}; got {seen} ({origin}). "
        "Was it saved by a metric with another number of classes or labels, or another task?"
    )
