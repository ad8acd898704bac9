"""``SumsMetric``: the ``torchmetrics.Metric`` every class of this package is, over one ``sums`` state.

A subclass validates its options in ``__init__`` and creates the state with
:func:`~xent_metrics.metrics._state.add_sums_state`; it defines ``_increments(preds, target,
sample_weight)`` (validate a batch, then return its ``(3, K)`` sums without touching the state) and
``_value(sums)`` (the result from sums). Everything else (the atomic ``update``, the one-collective
``compute``, ``forward``, device moves and checkpoints) is shared, from :mod:`._state` and
:mod:`._sync`.
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics import Metric

from xent_metrics.metrics import _state, _sync


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

    def _increments(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        """Validate a batch and return its ``(3, K)`` sums; the state is not touched."""
        raise NotImplementedError

    def _value(self, sums: Tensor) -> Tensor:
        """The metric's value from ``(3, K)`` sums (the state's, or one batch's in ``forward``)."""
        raise NotImplementedError
