"""``SumsMetric``: the ``torchmetrics.Metric`` every class of this package is, over one ``sums`` state.

A subclass builds its task object (:mod:`xent_metrics.functional`: the options, checked once, and the
steps ``check_batch``, ``sums`` and the value) in ``__init__`` as ``task`` and creates the state with
:meth:`SumsMetric._add_sums_state`; it defines ``_batch_sums(preds, target, sample_weight)`` (the
task's checks, then the batch's ``(3, K)`` sums, the state untouched) and ``_value_from_sums(sums)``
(the task's value). Everything else is methods of ``SumsMetric``: the
``update`` that adds, the ``forward`` that computes a batch's sums once, ``compute``; and of its base
``SumsState`` (shared with ``PairedDifference``): device moves, and merging, saving and loading states
through the metric's layout (:mod:`._layout`). Where torchmetrics' private machinery must be touched
(its update and compute wrappers, sync, caches), that happens in :mod:`._torchmetrics`, the base class here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torchmetrics import Metric

from xent_metrics.functional._error_bars import ERROR_ROWS
from xent_metrics.functional._sums import NUM_SUMS
from xent_metrics.metrics import _layout, _plot, _state, _torchmetrics
from xent_metrics.metrics._error_bars import ErrorBarsMixin

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class SumsState(_torchmetrics.TorchmetricsAdapter):
    """A ``Metric`` over one float64 ``sums`` state whose layout (:mod:`._layout`) rules merge, load and compute groups.

    A subclass defines :attr:`layout` and registers the state with :meth:`_add_layout_states`; the
    state is summed by one ``all_reduce`` (:mod:`._torchmetrics`), merged and loaded where the layouts allow.
    """

    sums: Tensor
    #: Tensor attributes fixed at construction (class weights) that move with the metric, in the state dtype.
    _fixed_tensors: tuple[str, ...] = ()

    @property
    def layout(self) -> _layout.Layout:
        """What the state's sums mean (see :mod:`._layout`)."""
        raise NotImplementedError

    def _add_layout_states(self, default: Tensor) -> None:
        """Register ``sums`` (summed across processes, saved) and the empty, unsaved state named by the layout's tag."""
        self.add_state(_state.STATE, default, dist_reduce_fx="sum", persistent=True)
        tag = self.layout.group_tag()
        empty = torch.zeros(0, dtype=default.dtype, device=default.device)
        self.add_state(tag, empty, dist_reduce_fx="sum", persistent=False)
        self._config_state = tag

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Add another metric's sums (or a state dict's) to this metric's, where their layouts are compatible.

        The result is the metric on the union of both metrics' data: same class, same options that
        change an update (``average`` may differ, but not with ``error_bars=True``), or per-class sums
        into a micro cross-entropy's totals.
        A dict holds ``"sums"`` and, as ``state_dict()`` saves it, ``"layout"``; a dict without a layout
        is taken on its shape (see :mod:`._layout`).

        Raises
        ------
        TypeError
            ``incoming_state`` is neither a metric of this package nor a dict.
        ValueError
            The layouts are incompatible (the message names both), or the dict holds no ``"sums"``.
            The state is left exactly as it was.
        """
        saved: object
        if isinstance(incoming_state, SumsState):
            value, saved = incoming_state.sums, str(incoming_state.layout)
        elif isinstance(incoming_state, dict):
            if _state.STATE not in incoming_state:
                raise ValueError(
                    f"`merge_state` needs the sums of the incoming state under 'sums' (as `state_dict()` saves "
                    f"them), got the keys {sorted(incoming_state)}."
                )
            value, saved = incoming_state[_state.STATE], incoming_state.get(_layout.LAYOUT)
        else:
            name = type(incoming_state).__name__
            raise TypeError(f"`merge_state` takes a metric of this package or its `state_dict()`, got {name}.")
        merged = self.sums + self.layout.pooled(value, saved, "`merge_state`'s incoming state", self.sums)
        _torchmetrics.replace_sums(self, merged)

    def state_dict(  # type: ignore[override]
        self, destination: dict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """Return torchmetrics' state dict (the ``sums``) and the layout's text under ``"layout"``."""
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        out[prefix + _layout.LAYOUT] = str(self.layout)
        return out

    def _move_sums(self, device: torch.device) -> None:
        """Move ``sums`` and the fixed weights to ``device``: ``.to(dtype)`` and ``set_dtype`` never change their dtype.

        The dtype is kept on the same device; on another it is :func:`~._state.state_dtype`'s (float64,
        or float32 where the device has no float64).
        """
        current = self.sums
        dtype = current.dtype if current.device == device else _state.state_dtype(device)
        self.sums = current.to(device=device, dtype=dtype)
        for name in type(self)._fixed_tensors:
            value = getattr(self, name)
            if isinstance(value, Tensor):
                setattr(self, name, value.to(device=device, dtype=dtype))

    def _loadable_sums(self, value: object, saved: object, key: str) -> Tensor:
        """``state_dict[key]``, saved with layout text ``saved`` (None: none saved), as this metric's sums.

        Refused (``ValueError`` naming both layouts) where the layouts are incompatible; see :mod:`._layout`.
        """
        return self.layout.pooled(value, saved, f"`state_dict[{key!r}]`", self.sums)


class SumsMetric(ErrorBarsMixin, SumsState):
    """A ``Metric`` whose only state is the ``(3, K)`` float64 ``sums``, added to by ``update`` and reduced by sum."""

    is_differentiable = True
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0
    sums: Tensor
    input_format: str
    ignore_index: int | None
    validate_args: bool
    #: The task object: its options (read through the metric's option attributes) and its steps.
    task: Any
    #: The task named in the layout: "binary", "multiclass", "multilabel" or "perplexity".
    _task_name: str
    #: The state's width and the per-class width its columns sum (equal but for a state of totals).
    _widths: tuple[int, int]
    #: The state's row count: ``NUM_SUMS``, one more where a row holds a byte count (``Perplexity``).
    _rows: int = NUM_SUMS

    def _add_sums_state(
        self, width: int, dtype: torch.dtype, per_class: int | None = None, *, rows: int = NUM_SUMS
    ) -> None:
        """Register the ``(rows, width)`` state, summed across processes and saved in ``state_dict``, and its group tag.

        ``rows`` is 3 (loss, weight and target sums) but for a ``Perplexity`` counting bytes per update,
        whose fourth row holds the byte count, so that it travels in the same ``all_reduce``.

        ``per_class`` is the class count of the per-class state whose column sums a state of totals
        (``width=1``) holds. The layout (:attr:`layout`) is then declared; it names a second, empty and
        unsaved state (:meth:`~._layout.Layout.group_tag`): ``MetricCollection`` puts two metrics in one
        compute group (and then updates only the first) when their state *names* and values agree after
        the first update, so metrics whose updates or shapes differ never share one, while a per-class CE
        and an NE of the same options do.
        """
        if self._error_bars:  # error-bar rows below the sums; per-class rows never pool into totals
            rows, per_class = rows + ERROR_ROWS, None
        self._widths = (width, width if per_class is None else per_class)
        self._rows = rows
        self._add_layout_states(torch.zeros(rows, width, dtype=dtype, device=self.device))

    def update(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> None:
        """Add a batch (shapes: see the class's Notes); a batch that is refused changes nothing."""
        self.sums.add_(self._batch_sums(preds, target, sample_weight))

    def compute(self) -> Tensor:
        """Return the metric over everything added since the last ``reset``, on all processes."""
        return self._value_from_sums(self.sums)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Add the batch to the state and return the metric on the batch alone.

        The batch sums are computed once (with gradients enabled where an input requires grad, as
        torchmetrics does, so the value is differentiable), added to ``sums`` and turned into the batch
        value (torchmetrics would copy the state, reset, update, compute and merge back). With
        ``dist_sync_on_step`` torchmetrics' own forward runs, which syncs the batch value across processes.
        """
        if self.dist_sync_on_step or _torchmetrics.is_synced(self):
            return super().forward(*args, **kwargs)
        batch_sums = self._error_batch_sums if self._error_bars else self._batch_sums
        if torch.is_grad_enabled() or not _torchmetrics.records_grad(args, kwargs):
            batch = batch_sums(*args, **kwargs)
        else:
            with torch.enable_grad():
                batch = batch_sums(*args, **kwargs)
        # Out of place: a MetricCollection compute group shares one state tensor among its members and
        # calls each member's forward; ``+=`` would add the batch once per member.
        _torchmetrics.record_update(self, self.sums + batch.detach())
        value = self._value_from_sums(batch)
        _torchmetrics.cache_forward(self, value)
        return value

    @property
    def layout(self) -> _layout.Layout:
        """The state layout: the class, the options that change what an update adds, the shape (see :mod:`._layout`)."""
        width, per_class = self._widths
        update = _layout.update_text(self._task_name, self.task)
        if self._error_bars:
            update += f" with error bars (r0={self._error_reference!r}, average={self._average!r})"
        shape, per_class_shape = (self._rows, width), (self._rows, per_class)
        return _layout.Layout(metric=self._reader(), update=update, shape=shape, per_class=per_class_shape)

    def _reader(self) -> str:
        """The class, with the options that must agree for a merge although they only read the sums."""
        return type(self).__name__

    def plot(
        self,
        val: Tensor | Sequence[Tensor] | None = None,
        ax: Axes | None = None,
        *,
        names: Sequence[str] | None = None,
    ) -> tuple[Figure, Axes]:
        """Plot a value of the metric, its history over steps, or its per-class values.

        torchmetrics' ``plot`` convention: a value is drawn as a point, a history as a line over
        steps (with the metric's lower bound and "optimal value" mark); per-class values
        (``average="none"``) as a bar chart, their history as one line per class.
        matplotlib is imported here, on the first plot, not with the package.

        Parameters
        ----------
        val : Tensor or list of Tensor, optional
            A result of ``compute()`` or ``forward``: shape ``()``, or ``(K,)`` with
            ``average="none"``; or a list of them (or a tensor with one more leading dimension,
            e.g. ``MetricTracker.compute_all()``) as a history over steps. Default: ``compute()``.
        ax : matplotlib.axes.Axes, optional
            The axes to draw on; a new figure when None.
        names : list of str, optional
            One name per class (or label) for per-class values; default "Class 0", "Class 1", ...
            (or "Label i" for the multilabel metrics).

        Returns
        -------
        fig : matplotlib.figure.Figure
            The figure holding ``ax``.
        ax : matplotlib.axes.Axes
            The axes drawn on.

        Raises
        ------
        TypeError
            ``val`` or ``names`` of the wrong type.
        ValueError
            ``val`` of a shape this metric does not give, values of mixed shapes, or ``names`` for
            a single-valued metric or of the wrong length.
        ModuleNotFoundError
            matplotlib is not installed.

        Examples
        --------
        >>> import torch
        >>> import matplotlib.pyplot as plt
        >>> from xent_metrics import BinaryCrossEntropy, MulticlassCrossEntropy
        >>> metric = BinaryCrossEntropy(input_format="probs")
        >>> history = [metric(torch.tensor([p]), torch.tensor([1])) for p in (0.5, 0.8, 0.9)]
        >>> fig, ax = metric.plot(history)  # one point per step: -log(p)
        >>> ax.lines[0].get_ydata().round(4).tolist()
        [0.6931, 0.2231, 0.1054]
        >>> per_class = MulticlassCrossEntropy(num_classes=3, average="none")
        >>> per_class.update(torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), torch.tensor([0, 1]))
        >>> fig, ax = per_class.plot(names=["cat", "dog", "bird"])  # "bird" has no data: no bar
        >>> [label.get_text() for label in ax.get_xticklabels()]
        ['cat', 'dog', 'bird']
        >>> [round(float(bar.get_height()), 4) for bar in ax.patches]  # log(3), log(2 + e^2)
        [1.0986, 2.2395, nan]
        >>> plt.close("all")
        """
        return _plot.plot(self, val, ax, names)

    def _batch_sums(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        """Validate a batch and return its ``(3, K)`` sums; the state is not touched."""
        raise NotImplementedError

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        """The metric's value from ``(3, K)`` sums (the state's, or one batch's in ``forward``)."""
        raise NotImplementedError
