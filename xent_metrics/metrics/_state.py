"""Behaviour every Metric class shares, as plain functions :class:`~._base.SumsMetric` installs as methods.

Every class holds **one** state, ``sums``: the ``(3, K)`` float64 tensor of loss, weight and target
sums of :mod:`xent_metrics.functional._sums`, reduced by ``"sum"`` and saved in ``state_dict``. Each
class defines ``_increments(preds, target, sample_weight)`` (validate, then return the batch's sums
without touching the state) and ``_value(sums)`` (the result from sums). The functions here keep the
contract where torchmetrics' generic machinery would break it:

- :func:`forward`: the batch sums are computed once, added to the state, and the batch value is
  derived from them (torchmetrics copies the state, resets, updates, computes and merges back).
- :func:`apply`: ``.to(device)`` moves ``sums`` and the fixed weights; ``.to(dtype)``, ``.half()``,
  ``set_dtype`` never change their dtype (torchmetrics' ``.to(torch.float16)`` would).
- :func:`wrap_update`: a rejected update leaves the update count (and cached result) as it was.
- :func:`wrap_compute`: no "compute before update" warning from torchmetrics; the result's own
  "no data" warning says it, on every rank, from the synced sums.
- :func:`load_from_state_dict`: a ``sums`` of the wrong shape is refused, the rest made float64.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import _squeeze_if_scalar, apply_to_collection

from xent_metrics.functional._sums import NUM_SUMS
from xent_metrics.functional._validation import _check_class_weight

STATE = "sums"
_COMPUTE_BEFORE_UPDATE = r"The ``compute`` method of metric"


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


def add_sums_state(metric: Metric, num: int, dtype: torch.dtype, config: tuple) -> None:
    """Register the ``(3, num)`` state, summed across processes and saved in ``state_dict``, and its config tag.

    ``config`` holds every option that changes what an update adds (input format, weights,
    ``ignore_index``, smoothing, ...), not those that only read the sums (``average``, CE or NE). It
    names a second, empty and unsaved state, ``config_<digest>``: ``MetricCollection`` puts two
    metrics in one compute group (and then updates only the first) when their state *names* and
    values agree after the first update, so metrics whose updates differ never share one, while CE
    and NE of the same options still do.
    """
    default = torch.zeros(NUM_SUMS, num, dtype=dtype, device=metric.device)
    metric.add_state(STATE, default, dist_reduce_fx="sum", persistent=True)
    tag = config_state_name(config)
    metric.add_state(tag, torch.zeros(0, dtype=dtype, device=metric.device), dist_reduce_fx="sum", persistent=False)
    metric.__dict__["_config_state"] = tag


def config_state_name(config: tuple) -> str:
    """``config_`` and a digest of the options (tensors by their float64 values)."""
    digest = hashlib.sha256()
    for part in config:
        if isinstance(part, Tensor):
            digest.update(part.detach().to("cpu", torch.float64).numpy().tobytes())
        else:
            digest.update(repr(part).encode())
        digest.update(b"|")
    return f"config_{digest.hexdigest()[:16]}"


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
    weight = _check_class_weight(name, value, size, value, validate_values=True)  # type: ignore[arg-type]
    assert weight is not None
    return weight.detach().to(device=device, dtype=dtype).clone()


def check_device(metric: Metric, preds: Tensor) -> None:
    """Inputs must live where the state does (metadata only: no host sync)."""
    if isinstance(preds, Tensor) and preds.device != metric.sums.device:
        raise ValueError(
            f"`preds` is on device {preds.device} but the metric state is on {metric.sums.device}; move the "
            f"metric with `metric.to({str(preds.device)!r})` (a LightningModule attribute moves by itself)."
        )


def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Add the batch to the state and return the metric on the batch alone.

    The batch sums are computed once (with gradients enabled, as torchmetrics does, so the value is
    differentiable), added to ``sums`` and turned into the batch value. With ``dist_sync_on_step``
    torchmetrics' own forward runs, which syncs the batch value across processes.
    """
    if self.dist_sync_on_step or self._is_synced:
        return Metric.forward(self, *args, **kwargs)
    with torch.enable_grad():
        batch = self._increments(*args, **kwargs)
    attrs = self.__dict__  # plain attributes: see wrap_update
    attrs["_computed"] = None
    attrs["_update_count"] += 1
    # Out of place: a MetricCollection compute group shares one state tensor among its members and
    # calls each member's forward; ``+=`` would add the batch once per member.
    attrs[STATE] = attrs[STATE] + batch.detach()
    attrs["_forward_cache"] = value = self._value(batch)
    return value


def apply(self: Any, fn: Callable, exclude_state: Sequence[str] = ()) -> Any:
    """Move ``sums``, the fixed weights and cached results with the device, never changing their dtype."""
    cached = self._computed, self._forward_cache
    this: Any = Metric._apply(self, fn, exclude_state=(*exclude_state, STATE))
    device = this._device
    this._computed, this._forward_cache = apply_to_collection(cached, Tensor, lambda t: t.to(device))
    current = this.sums
    dtype = current.dtype if current.device == device else state_dtype(device)
    this.sums = current.to(device=device, dtype=dtype)
    this._defaults[STATE] = this._defaults[STATE].to(device=device, dtype=dtype)
    for name in type(this)._fixed_tensors:
        value = getattr(this, name)
        if isinstance(value, Tensor):
            setattr(this, name, value.to(device=device, dtype=dtype))
    return this


def wrap_update(self: Any, update: Callable) -> Callable:
    """Replace torchmetrics' update wrapper: the same bookkeeping, undone when ``update`` raises.

    torchmetrics' wrapper clears the cached result, counts the update and runs it with gradients off;
    its other work (moving list states for ``compute_on_cpu``, rewording device errors) has nothing to
    do here (no list states; devices are checked first). The two attributes are written into the
    instance dict, where they live: ``nn.Module.__setattr__`` costs about 5 us a write, a tenth of a
    small batch's update.
    """

    @functools.wraps(update)
    def atomic_update(*args: Any, **kwargs: Any) -> None:
        attrs = self.__dict__
        count, computed = attrs["_update_count"], attrs["_computed"]
        attrs["_computed"], attrs["_update_count"] = None, count + 1
        try:
            if torch.is_grad_enabled() == self._enable_grad:
                update(*args, **kwargs)
            else:
                with torch.set_grad_enabled(self._enable_grad):
                    update(*args, **kwargs)
        except BaseException:
            attrs["_update_count"], attrs["_computed"] = count, computed
            raise

    return atomic_update


def wrap_compute(self: Any, compute: Callable) -> Callable:
    """Wrap torchmetrics' compute wrapper, without its "compute before update" warning, with a lean synced path.

    That warning fires on rank 0 alone, from the local update count, even when other ranks saw data;
    ``compute`` here warns (and returns ``nan``) from the synced sums instead, on every rank. When
    torchmetrics would sync with its default function and restore the local state afterwards (every
    ``compute()`` outside ``dist_sync_on_step``), the sync is done here: ``_sync_dist`` reduces a copy
    of ``sums`` with one ``all_reduce`` and the local tensor is put back afterwards. torchmetrics would
    also clone the state into a cache first and run a context manager, about a tenth of a
    ``compute()`` on 2 gloo processes; the value is the same.
    """
    wrapped = Metric._wrap_compute(self, compute)

    @functools.wraps(compute)
    def quiet_compute(*args: Any, **kwargs: Any) -> Any:
        if self._computed is not None:
            return self._computed
        if _plain_sync(self):
            return _synced_compute(self, compute, args, kwargs)
        if self._update_count:
            return wrapped(*args, **kwargs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_COMPUTE_BEFORE_UPDATE, category=UserWarning)
            return wrapped(*args, **kwargs)

    return quiet_compute


def _plain_sync(self: Any) -> bool:
    """Whether ``compute`` syncs ``sums`` alone, with the default function, and unsyncs afterwards."""
    attrs = self.__dict__  # torchmetrics' private flags: where a release renames them, its own sync runs
    return (
        attrs.get("_to_sync", False)
        and attrs.get("_should_unsync", False)
        and attrs.get("_is_synced", True) is False
        and self.dist_sync_fn is None
        and set(attrs.get("_reductions", ())) == {STATE, attrs.get("_config_state")}
        and bool(self.distributed_available_fn())
    )


def _synced_compute(self: Any, compute: Callable, args: tuple, kwargs: dict) -> Any:
    """``compute`` on the summed ``sums`` of every process, the local ``sums`` kept (torchmetrics' contract)."""
    attrs = self.__dict__  # plain attributes: see wrap_update
    local = attrs[STATE]
    self._sync_dist()  # one all_reduce into a new tensor: ``local`` is never written
    attrs["_is_synced"] = True
    try:
        value = _squeeze_if_scalar(compute(*args, **kwargs))  # a new tensor: nothing else holds it
    finally:
        attrs[STATE], attrs["_is_synced"] = local, False
    if self.compute_with_cache:
        attrs["_computed"] = value
    return value


def load_from_state_dict(
    self: Any,
    state_dict: dict,
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Refuse ``sums`` of another shape (another number of classes); load the rest in the state dtype.

    A metric that keeps ``(3, 1)`` totals (``MulticlassCrossEntropy(average="micro")``) loads a
    ``(3, C)`` per-class state (the layout before it kept totals) as its totals.

    A state dict without ``sums`` (an older or foreign layout) reports it missing, as ``nn.Module``
    does for a parameter: ``load_state_dict`` raises naming it, or returns it with ``strict=False``
    (torchmetrics alone would load nothing and say nothing). A loaded ``sums`` drops the cached result.
    """
    key = prefix + STATE
    if key in state_dict:
        value = state_dict[key]
        expected = tuple(self.sums.shape)
        if getattr(self, "_per_class", True) is False and isinstance(value, Tensor) and value.ndim == 2:
            value = value.sum(1, keepdim=True)  # per-class sums of an older layout: their totals are this state
        if not isinstance(value, Tensor) or tuple(value.shape) != expected or not value.is_floating_point():
            seen = f"shape {tuple(value.shape)} ({value.dtype})" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(
                f"`state_dict[{key!r}]` must be a floating tensor of shape {expected} for this "
                f"{type(self).__name__}, got {seen}. Was it saved by a metric with another number of classes or labels?"
            )
        state_dict[key] = value.to(device=self.sums.device, dtype=self.sums.dtype)
        self.__dict__["_computed"] = None
    elif self._persistent[STATE]:
        missing_keys.append(key)
    Metric._load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    )
