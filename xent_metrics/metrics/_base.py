"""``SumsMetric``: the ``torchmetrics.Metric`` every class of this package is, over one ``sums`` state.

A subclass validates its options in ``__init__`` and creates the state with
:func:`~xent_metrics.metrics._state.add_sums_state`; it defines ``_increments(preds, target,
sample_weight)`` (validate a batch, then return its ``(3, K)`` sums without touching the state) and
``_value(sums)`` (the result from sums). Everything else (the atomic ``update``, the one-collective
``compute``, ``forward``, device moves and checkpoints) is shared, from :mod:`._state` and
:mod:`._sync`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor
from torchmetrics import Metric

from xent_metrics.metrics import _plot, _state, _sync

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class SumsMetric(Metric):
    """A ``Metric`` whose only state is the ``(3, K)`` float64 ``sums``, added to by ``update`` and reduced by sum."""

    is_differentiable = True
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0
    sums: Tensor
    #: Tensor attributes fixed at construction (class weights) that move with the metric, in the state dtype.
    _fixed_tensors: tuple[str, ...] = ()
    input_format: str
    ignore_index: int | None
    validate_args: bool

    forward = _state.forward
    _apply = _state.apply
    _wrap_update = _state.wrap_update
    _wrap_compute = _state.wrap_compute
    _load_from_state_dict = _state.load_from_state_dict
    _sync_dist = _sync.sync_dist

    def update(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> None:
        """Add a batch (shapes: see the class's Notes); a batch that is refused changes nothing."""
        self.sums.add_(self._increments(preds, target, sample_weight))

    def compute(self) -> Tensor:
        """Return the metric over everything added since the last ``reset``, on all processes."""
        return self._value(self.sums)

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

    def _increments(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        """Validate a batch and return its ``(3, K)`` sums; the state is not touched."""
        raise NotImplementedError

    def _value(self, sums: Tensor) -> Tensor:
        """The metric's value from ``(3, K)`` sums (the state's, or one batch's in ``forward``)."""
        raise NotImplementedError
