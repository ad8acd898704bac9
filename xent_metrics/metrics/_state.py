"""The ``sums`` state every Metric class of this package holds, and the checks its subclasses share.

Every class holds **one** state, ``sums``: the ``(3, K)`` float64 tensor of loss, weight and target
sums of :mod:`xent_metrics.functional._sums`, reduced by ``"sum"`` and saved in ``state_dict``
(:meth:`~._base.SumsMetric._add_sums_state`), in the dtype :func:`state_dtype` gives. The checks of
``__init__`` arguments that size or fix the state live here; the behaviour the classes share
(``update``, ``forward``, ``compute``, device moves, checkpoints) is methods of
:class:`~._base.SumsMetric`.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from xent_metrics.functional import _validation, _value_checks

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


def check_required_count(name: str, value: object) -> None:
    """``num_classes`` / ``num_labels`` size the state, so they are required (None is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"`{name}` must be a positive int (it sizes the metric state), got {type(value).__name__} {value!r}."
        )


def fixed_weight(
    name: str, value: object, size: int, device: torch.device, dtype: torch.dtype, *, scalar: bool = False
) -> Tensor | None:
    """Check a per-class / per-label weight once, at construction, and keep it in the state dtype.

    ``scalar``: the binary task's ``pos_weight``, a number or a one-element tensor, kept as shape ``(1,)``.
    """
    if value is None:
        return None
    if scalar and isinstance(value, int | float) and not isinstance(value, bool):
        value = torch.tensor([float(value)], dtype=torch.float64)
    weight = _validation.check_tensor(name, value)
    if scalar:
        weight = _validation.check_scalar_weight(name, weight, weight)
    else:
        _validation.check_class_weight(name, weight, size, weight, meta_ok=False)
    _value_checks.check_weight_values(name, weight)
    return weight.detach().to(device=device, dtype=dtype).clone()
