"""``HeadSumsMetric``: a softmax metric whose ``update`` also takes the hidden states of a linear head."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from xent_metrics.functional._head_ce import linear_sums
from xent_metrics.functional._options import MulticlassOptions
from xent_metrics.functional.linear import _linear_tensor_validation
from xent_metrics.metrics import _state
from xent_metrics.metrics._base import SumsMetric


def _check_head_call(linear_weight: Tensor | None, input_format: str) -> None:
    """A hidden-state update needs the head's weight, and a metric that reads logits."""
    if linear_weight is None:
        raise ValueError("`linear_bias` was given without `linear_weight`; pass the head's weight too.")
    if input_format != "logits":
        raise ValueError(
            f"`linear_weight` turns `preds` (hidden states) into logits, but this metric reads "
            f"input_format={input_format!r}; construct it with input_format='logits'."
        )


class HeadSumsMetric(SumsMetric):
    """A softmax ``SumsMetric`` whose ``update`` also takes the hidden states of a linear head.

    A subclass holds its :class:`~xent_metrics.functional._options.MulticlassOptions` as ``options``
    and defines ``_score_batch_sums(preds, target, sample_weight)`` for scores (logits or
    probabilities); ``update(hidden, target, linear_weight=W, linear_bias=b)`` goes through
    :func:`~xent_metrics.functional._head_ce.linear_sums` with the same options instead.
    """

    options: MulticlassOptions

    def update(
        self,
        preds: Tensor,
        target: Tensor,
        sample_weight: Tensor | None = None,
        *,
        linear_weight: Tensor | None = None,
        linear_bias: Tensor | None = None,
    ) -> None:
        """Add a batch; with ``linear_weight``, ``preds`` is the hidden states ``(N, d)`` / ``(B, L, d)`` of a head.

        A batch that is refused changes nothing.
        """
        self.sums.add_(
            self._batch_sums(preds, target, sample_weight, linear_weight=linear_weight, linear_bias=linear_bias)
        )

    def _batch_sums(
        self,
        preds: Tensor,
        target: Tensor,
        sample_weight: Tensor | None = None,
        *,
        linear_weight: Tensor | None = None,
        linear_bias: Tensor | None = None,
        **extra: Any,
    ) -> Tensor:
        """Validate a batch (scores, or hidden states and a head) and return its sums in the state's layout.

        ``extra``: a subclass's own ``update`` keywords, read by :meth:`_with_extra_rows`.
        """
        _state.check_device(self, preds)
        if linear_weight is None and linear_bias is None:
            return self._with_extra_rows(self._score_batch_sums(preds, target, sample_weight), target, **extra)
        _check_head_call(linear_weight, self.options.input_format)
        checked = _linear_tensor_validation(preds, linear_weight, target, linear_bias, sample_weight, self.options)
        sums = linear_sums(*checked, self.options)
        sums = sums if sums.shape[1] == self.sums.shape[1] else sums.sum(1, keepdim=True)  # a state of totals
        return self._with_extra_rows(sums, target, **extra)

    def _with_extra_rows(self, sums: Tensor, target: Tensor, **extra: Any) -> Tensor:
        """The batch's ``(3, K)`` sums with the rows a subclass adds from its own ``update`` keywords (none here)."""
        if extra:
            raise TypeError(f"{type(self).__name__}.update() got an unexpected keyword argument {next(iter(extra))!r}.")
        return sums

    def _score_batch_sums(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None) -> Tensor:
        """Validate a batch of scores and return its sums in the state's layout; the state is not touched."""
        raise NotImplementedError
