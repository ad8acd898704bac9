"""The one module that touches torchmetrics' private machinery, for :class:`~._base.SumsMetric`.

torchmetrics' ``Metric`` has no public hooks for what this package changes, so the base class here
overrides five of its private methods and reads or writes its private bookkeeping attributes. Every
private name relied on is listed in :data:`PRIVATE_NAMES`; ``tests/metrics/test_torchmetrics_adapter.py``
checks that each exists in the installed torchmetrics, so a release that renames one fails that test,
naming it, instead of silently bypassing an override. No other module of the package touches them.

What :class:`TorchmetricsAdapter` replaces, and why:

- ``_wrap_update``: the same bookkeeping as torchmetrics (cached result cleared, update counted,
  gradients as ``_enable_grad`` says), undone when ``update`` raises: a rejected update leaves the
  update count and the cached result as they were.
- ``_wrap_compute``: no "compute before update" warning (it fires on rank 0 alone, from the local
  count; ``compute`` warns from the synced sums instead, on every rank), and a lean synced path.
- ``_sync_dist``: the ``sums`` state is reduced with one ``all_reduce`` (:mod:`._sync`).
- ``_apply``: ``.to(device)`` moves ``sums``; ``.to(dtype)``, ``.half()``, ``set_dtype`` never change
  its dtype (:meth:`~._base.SumsState._move_sums` says how).
- ``_load_from_state_dict``: ``sums`` goes through :meth:`~._base.SumsState._loadable_sums` with the
  saved layout (:mod:`._layout`), and a state dict without it reports it missing.

A speed-up kept here alone: torchmetrics keeps its bookkeeping (``_update_count``, ``_computed``,
``_forward_cache``, ``_is_synced``) and the ``sums`` state as plain instance attributes, and writing
them through ``nn.Module.__setattr__`` costs 2 to 5 us a write (0.1 us into the dict), a tenth of a small
batch's update. :func:`_instance_dict` names the place where they are written into the instance dict directly.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import _squeeze_if_scalar, apply_to_collection
from torchmetrics.utilities.distributed import gather_all_tensors

from xent_metrics.metrics._layout import LAYOUT
from xent_metrics.metrics._state import STATE
from xent_metrics.metrics._sync import summed_over_processes

#: Every torchmetrics private name this module relies on, as ``(where, name)``: ``"Metric"`` for a
#: method defined by ``torchmetrics.Metric`` itself (overridden here, or called), ``"instance"`` for an
#: attribute ``Metric.__init__`` sets on every instance, else the module that defines a function.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("Metric", "_wrap_update"),
    ("Metric", "_wrap_compute"),
    ("Metric", "_sync_dist"),
    ("Metric", "_apply"),
    ("Metric", "_load_from_state_dict"),
    ("instance", "_computed"),
    ("instance", "_forward_cache"),
    ("instance", "_update_count"),
    ("instance", "_enable_grad"),
    ("instance", "_is_synced"),
    ("instance", "_to_sync"),
    ("instance", "_should_unsync"),
    ("instance", "_reductions"),
    ("instance", "_defaults"),
    ("instance", "_persistent"),
    ("instance", "_device"),
    ("instance", "_update_signature"),
    ("torchmetrics.utilities.data", "_squeeze_if_scalar"),
)

_COMPUTE_BEFORE_UPDATE = r"The ``compute`` method of metric"


def _instance_dict(metric: Metric) -> dict[str, Any]:
    """The instance dict, where torchmetrics' bookkeeping and ``sums`` live: written here, not through ``setattr``.

    Only plain attributes (never parameters, buffers or modules) are written this way, so skipping
    ``nn.Module.__setattr__`` (2 to 5 us a write) changes nothing but the time.
    """
    return metric.__dict__


class TorchmetricsAdapter(Metric):
    """``torchmetrics.Metric`` with the private hooks a metric over one ``sums`` state replaces.

    The subclass (:class:`~._base.SumsState`) creates ``sums`` and the config tag state with
    :meth:`~._base.SumsState._add_layout_states` and defines :meth:`_move_sums` and :meth:`_loadable_sums`.
    """

    sums: Tensor
    #: The name of the unsaved config tag state (set by :meth:`~._base.SumsState._add_layout_states`).
    _config_state: str

    def _move_sums(self, device: torch.device) -> None:
        """Put ``sums`` (and what moves with it) on ``device``, in the dtype it keeps there."""
        raise NotImplementedError

    def _loadable_sums(self, value: object, saved: object, key: str) -> Tensor:
        """Check ``state_dict[key]`` against the layout text ``saved`` (None: none); return it as this state's sums."""
        raise NotImplementedError

    def _wrap_update(self, update: Callable) -> Callable:
        """Wrap ``update`` with torchmetrics' bookkeeping, undone when ``update`` raises.

        Its other work (moving list states for ``compute_on_cpu``, rewording device errors) has
        nothing to do here: there are no list states, and devices are checked first. The grad mode is
        switched only where a tensor argument requires grad: otherwise it changes nothing an update
        computes, and switching it costs a tenth of a small batch's update.
        """
        update = self._update_to_wrap(update)

        @functools.wraps(update)
        def atomic_update(*args: Any, **kwargs: Any) -> None:
            attrs = _instance_dict(self)
            count, computed = attrs["_update_count"], attrs["_computed"]
            attrs["_computed"], attrs["_update_count"] = None, count + 1
            try:
                if torch.is_grad_enabled() == self._enable_grad or not records_grad(args, kwargs):
                    update(*args, **kwargs)
                else:
                    with torch.set_grad_enabled(self._enable_grad):
                        update(*args, **kwargs)
            except BaseException:
                attrs["_update_count"], attrs["_computed"] = count, computed
                raise

        return atomic_update

    def _update_to_wrap(self, update: Callable) -> Callable:
        """The update torchmetrics wraps (init, unpickling): ``update`` itself; the error-bar mixin picks another."""
        return update

    def _wrap_compute(self, compute: Callable) -> Callable:
        """Wrap ``compute`` as torchmetrics does, without its "compute before update" warning, with a lean synced path.

        When torchmetrics would sync with its default function and restore the local state afterwards
        (every ``compute()`` outside ``dist_sync_on_step``), the sync is done here: ``_sync_dist``
        reduces a copy of ``sums`` with one ``all_reduce`` and the local tensor is put back afterwards.
        torchmetrics would also clone the state into a cache first and run a context manager, about a
        tenth of a ``compute()`` on 2 gloo processes; the value is the same.
        """
        wrapped = super()._wrap_compute(compute)

        @functools.wraps(compute)
        def quiet_compute(*args: Any, **kwargs: Any) -> Any:
            if self._computed is not None:
                return self._computed
            if plain_sync(self):
                return _synced_compute(self, compute, args, kwargs)
            if self._update_count:
                return wrapped(*args, **kwargs)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_COMPUTE_BEFORE_UPDATE, category=UserWarning)
                return wrapped(*args, **kwargs)

        return quiet_compute

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any | None = None) -> None:
        """Sum ``sums`` over the process group with one ``all_reduce``.

        A user-supplied ``dist_sync_fn`` (torchmetrics' ``dist_sync_fn`` argument), or a state other
        than ours, goes through torchmetrics' generic path. Every rank must call this (``compute()``
        does): it is a collective.
        """
        if dist_sync_fn is not gather_all_tensors or not _sums_only(self, self._reductions):
            super()._sync_dist(dist_sync_fn, process_group=process_group)
            return
        group = process_group or self.process_group
        self.sums = summed_over_processes(self.sums, group, type(self).__name__)

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> Any:
        """Move ``sums`` and the cached results with the device, never changing the dtype of ``sums``."""
        cached = self._computed, self._forward_cache
        this: Any = super()._apply(fn, exclude_state=(*exclude_state, STATE))
        device = this._device
        this._computed, this._forward_cache = apply_to_collection(cached, Tensor, lambda t: t.to(device))
        this._move_sums(device)
        this._defaults[STATE] = this._defaults[STATE].to(device=this.sums.device, dtype=this.sums.dtype)
        return this

    def _load_from_state_dict(
        self,
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Load ``sums`` through ``_loadable_sums`` with the saved layout; a state dict without ``sums`` reports it.

        ``load_state_dict`` then raises naming it, or returns it with ``strict=False``, as ``nn.Module``
        does for a parameter (torchmetrics alone would load nothing and say nothing). The saved layout
        (``"layout"``) is read here, not loaded: a checkpoint without one is taken on its shape. A
        loaded ``sums`` drops the cached result.
        """
        key = prefix + STATE
        saved = state_dict.pop(prefix + LAYOUT, None)
        if key in state_dict:
            state_dict[key] = self._loadable_sums(state_dict[key], saved, key)
            _instance_dict(self)["_computed"] = None
        elif self._persistent[STATE]:
            missing_keys.append(key)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def records_grad(args: tuple, kwargs: dict[str, Any]) -> bool:
    """Whether a tensor argument requires grad: only then can the grad mode change what an update computes."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor) and value.requires_grad:
            return True
    return False


def is_synced(metric: Metric) -> bool:
    """Whether ``metric`` holds the synced state (between torchmetrics' ``sync`` and ``unsync``)."""
    return bool(metric._is_synced)


def record_update(metric: Metric, sums: Tensor) -> None:
    """Replace ``sums`` after an update made outside the update wrapper (``forward``): count it, drop the cache."""
    _instance_dict(metric)["_update_count"] += 1
    replace_sums(metric, sums)


def replace_sums(metric: Metric, sums: Tensor) -> None:
    """Put ``sums`` in place of the state (a merge, or an update) and drop the cached result."""
    attrs = _instance_dict(metric)
    attrs["_computed"] = None
    attrs[STATE] = sums


def cache_forward(metric: Metric, value: Tensor) -> None:
    """Keep ``forward``'s batch value where torchmetrics keeps it (and moves it with the device)."""
    _instance_dict(metric)["_forward_cache"] = value


def _sums_only(metric: Metric, states: Iterable[str]) -> bool:
    """Whether ``states`` (names) are just ``sums`` and the config tag: nothing torchmetrics must sync itself."""
    return set(states) == {STATE, _instance_dict(metric).get("_config_state")}


def plain_sync(metric: Metric) -> bool:
    """Whether ``compute`` syncs ``sums`` alone, with the default function, and unsyncs afterwards.

    torchmetrics' private flags are read with defaults: where a release renames one, its own sync runs.
    """
    attrs = _instance_dict(metric)
    return (
        attrs.get("_to_sync", False)
        and attrs.get("_should_unsync", False)
        and attrs.get("_is_synced", True) is False
        and metric.dist_sync_fn is None
        and _sums_only(metric, attrs.get("_reductions", ()))
        and bool(metric.distributed_available_fn())
    )


def _synced_compute(metric: TorchmetricsAdapter, compute: Callable, args: tuple, kwargs: dict) -> Any:
    """``compute`` on the summed ``sums`` of every process, the local ``sums`` kept (torchmetrics' contract)."""
    attrs = _instance_dict(metric)
    local = attrs[STATE]
    metric._sync_dist()  # one all_reduce into a new tensor: ``local`` is never written
    attrs["_is_synced"] = True
    try:
        value = _squeeze_if_scalar(compute(*args, **kwargs))  # a new tensor: nothing else holds it
    finally:
        attrs[STATE], attrs["_is_synced"] = local, False
    if metric.compute_with_cache:
        attrs["_computed"] = value
    return value


def synced_sums(metric: Metric) -> Tensor:
    """A copy of ``metric.sums``, summed over the processes where ``compute`` would sync (a collective)."""
    with metric.sync_context(should_sync=metric._to_sync, should_unsync=metric._should_unsync):
        sums: Tensor = metric.__dict__["sums"]  # a Metric's state lives in its __dict__, as `_instance_dict` reads
        return sums.clone()


def add_update_keyword(metric: Metric, name: str) -> None:
    """Name a keyword-only ``update`` argument in the signature ``MetricCollection`` routes keywords by."""
    signature = metric._update_signature
    keyword = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
    metric._update_signature = signature.replace(parameters=[*signature.parameters.values(), keyword])
