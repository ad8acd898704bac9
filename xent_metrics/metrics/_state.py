"""The ``sums`` state every Metric class of this package holds, and the checks its subclasses share.

Every class holds **one** state, ``sums``: the ``(3, K)`` float64 tensor of loss, weight and target
sums of :mod:`xent_metrics.functional._sums`, reduced by ``"sum"`` and saved in ``state_dict``
(:func:`add_sums_state`), in the dtype :func:`state_dtype` gives. A subclass of
:class:`~._base.SumsMetric` calls these functions from ``__init__`` and its ``_batch_sums``; the
behaviour the classes share (``update``, ``forward``, ``compute``, device moves, checkpoints) is
methods of :class:`~._base.SumsMetric`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchmetrics import Metric

from xent_metrics.functional import _validation
from xent_metrics.functional._sums import NUM_SUMS

if TYPE_CHECKING:
    from xent_metrics.metrics._base import SumsMetric

STATE = "sums"


def _float64_supported(device: torch.device) -> bool:
    """Whether ``device`` can hold float64 tensors (Apple's MPS cannot)."""
    return device.type != "mps"


def state_dtype(device: torch.device | str) -> torch.dtype:
    """Return float64, or float32 with a warning on a device without float64."""
    device = torch.device(device)
    if _float64_supported(device):
        return torch.float64
    warnings.warn(
        f"Device {device} does not support float64: the metric sums fall back to float32, which loses "
        "precision after about 1e7 samples. Keep the metric and its inputs on a float64-capable device "
        "(e.g. the CPU) for exact sums.",
        UserWarning,
        stacklevel=3,
    )
    return torch.float32


def add_sums_state(
    metric: SumsMetric, width: int, dtype: torch.dtype, per_class: int | None = None, *, rows: int = NUM_SUMS
) -> None:
    """Register the ``(rows, width)`` state, summed across processes and saved in ``state_dict``, and its group tag.

    ``rows`` is 3 (loss, weight and target sums) but for a ``Perplexity`` counting bytes per update,
    whose fourth row holds the byte count, so that it travels in the same ``all_reduce``.

    ``per_class`` is the class count of the per-class state whose column sums a state of totals
    (``width=1``) holds. The layout (:attr:`~._base.SumsMetric.layout`) is then declared; it names a
    second, empty and unsaved state (:meth:`~._layout.Layout.group_tag`): ``MetricCollection`` puts
    two metrics in one compute group (and then updates only the first) when their state *names* and
    values agree after the first update, so metrics whose updates or shapes differ never share one,
    while a per-class CE and an NE of the same options still do.
    """
    metric._widths = (width, width if per_class is None else per_class)
    metric._rows = rows
    default = torch.zeros(rows, width, dtype=dtype, device=metric.device)
    metric.add_state(STATE, default, dist_reduce_fx="sum", persistent=True)
    tag = metric.layout.group_tag()
    metric.add_state(tag, torch.zeros(0, dtype=dtype, device=metric.device), dist_reduce_fx="sum", persistent=False)
    metric._config_state = tag


def check_required_count(name: str, value: object) -> None:
    """``num_classes`` / ``num_labels`` size the state, so they are required (None is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"`{name}` must be a positive int (it sizes the metric state), got {type(value).__name__} {value!r}."
        )


def fixed_weight(name: str, value: object, size: int, device: torch.device, dtype: torch.dtype) -> Tensor | None:
    """Check a per-class / per-label weight once, at construction, and keep it in the state dtype."""
    if value is None:
        return None
    weight = _validation.check_class_weight(name, value, size, value, validate_values=True)  # type: ignore[arg-type]
    assert weight is not None
    return weight.detach().to(device=device, dtype=dtype).clone()


def check_device(metric: Metric, preds: Tensor) -> None:
    """Inputs must live where the state does (metadata only: no host sync)."""
    if isinstance(preds, Tensor) and preds.device != metric.sums.device:
        raise ValueError(
            f"`preds` is on device {preds.device} but the metric state is on {metric.sums.device}; move the "
            f"metric with `metric.to({str(preds.device)!r})` (a LightningModule attribute moves by itself)."
        )
