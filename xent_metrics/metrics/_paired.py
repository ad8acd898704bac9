"""``PairedDifference``: model A minus model B on the same data, with the paired (clustered) interval."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor
from torchmetrics import Metric

from xent_metrics.functional import _error_bars
from xent_metrics.functional._cluster_sums import ClusterSums
from xent_metrics.metrics import _layout, _state, _torchmetrics
from xent_metrics.metrics._base import SumsMetric, SumsState


class PairedDifference(SumsState):
    r"""The difference of a cross-entropy metric between two models on the same data, with its paired interval.

    .. math::
        \Delta = R_A - R_B = \frac{\sum_c D_c}{\sum_c X_c}, \qquad D_c = Y_c(A) - Y_c(B), \qquad
        \mathrm{SE}(\Delta)^2 = \frac{G}{G - 1} \frac{\sum_c (D_c - \Delta X_c)^2}{(\sum_c X_c)^2}

    over the clusters of the wrapped metric (a sample, a sequence, or the sequences of one document
    given by ``cluster_ids``). Pairing removes what the two models share (hard documents are hard for
    both), so the difference is far surer than the two intervals side by side suggest.

    Parameters
    ----------
    metric : Metric
        A cross-entropy metric of this package (``BinaryCrossEntropy``, ``MulticlassCrossEntropy``,
        ``MultilabelCrossEntropy`` or ``Perplexity``) with ``average="micro"``; its options (class
        weights, ``ignore_index``, units, bytes per update) apply to both models. It is not updated.
    **kwargs
        torchmetrics' ``Metric`` options.

    Shape
    -----
    - ``preds_a``, ``preds_b``: one shape, the wrapped metric's scores: ``(N,)`` / ``(N, K)`` / ``(N, C, ...)``
      / ``(B, L, V)``; or, with ``linear_weight_a`` / ``linear_weight_b`` (``MulticlassCrossEntropy``,
      ``Perplexity``), each model's hidden states ``(N, d_a)`` / ``(B, L, d_a)`` (``d_b`` for model B).
    - ``linear_weight_a``, ``linear_weight_b``: ``(C, d_a)``, ``(C, d_b)`` (``nn.Linear(d, C).weight``; one
      head for both: ``linear_weight``).
    - ``linear_bias_a``, ``linear_bias_b``: ``(C,)`` (one for both: ``linear_bias``).
    - ``target``: the wrapped metric's, e.g. ``(N,)`` or ``(B, L)``.
    - ``sample_weight``: ``(N,)``, or one per position.
    - Output: ``()`` (``compute``); ``compute_interval``: a dict of four tensors of shape ``()``.

    Raises
    ------
    TypeError
        ``metric`` is not a cross-entropy metric of this package.
    ValueError
        ``metric`` averages other than ``"micro"``, or is a normalized entropy.

    ``update`` refuses what the wrapped metric refuses, naming the model (``model B (`preds_b`): ...``),
    and a head given both shared and per model (``TypeError``); a refused batch changes nothing.

    Notes
    -----
    The difference is on the loss scale: nats (per token, or per byte for bits per byte: bytes per update
    or the constructor's ``num_bytes``, which scales the value and its standard error alike), divided by
    ``ln 2`` for the metric's bits units; a perplexity's difference is given as the difference of its
    cross-entropies (nats). The two models may differ in their inputs' form: each may give scores, or
    hidden states with its own head (``linear_weight_a``, ``linear_bias_a``; ``linear_weight_b``,
    ``linear_bias_b``; a bias may be left out), as the wrapped metric's ``update(hidden, target,
    linear_weight=W, linear_bias=b)`` takes them; targets, weights and ``cluster_ids`` are shared. Two
    models with different tokenizers (compared in bits per byte per document) are out of scope. The
    state (both models' totals and the differences' rows) is one tensor summed by one ``all_reduce``;
    ``merge_state`` and ``load_state_dict`` take only a ``PairedDifference`` of the same wrapped class
    and update options (a ``ValueError`` names both layouts otherwise; the state is left as it was).

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import MulticlassCrossEntropy, PairedDifference
    >>> paired = PairedDifference(MulticlassCrossEntropy(num_classes=2, input_format="probs"))
    >>> target = torch.tensor([1, 0, 1, 1])
    >>> a = torch.tensor([[0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.1, 0.9]])
    >>> b = torch.tensor([[0.3, 0.7], [0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
    >>> paired.update(a, b, target)
    >>> {key: round(float(value), 4) for key, value in paired.compute_interval().items()}
    {'value': -0.1469, 'stderr': 0.0139, 'low': -0.1743, 'high': -0.1196}

    Two language models' heads on their own hidden states (model B with a wider ``d``, no bias):

    >>> from xent_metrics import Perplexity
    >>> _ = torch.manual_seed(0)
    >>> head_a, head_b = torch.nn.Linear(4, 10), torch.nn.Linear(6, 10, bias=False)
    >>> paired = PairedDifference(Perplexity())
    >>> with torch.no_grad():
    ...     paired.update(torch.randn(3, 5, 4), torch.randn(3, 5, 6), torch.randint(0, 10, (3, 5)),
    ...                   linear_weight_a=head_a.weight, linear_bias_a=head_a.bias, linear_weight_b=head_b.weight)
    >>> sorted(paired.compute_interval())
    ['high', 'low', 'stderr', 'value']
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    sums: Tensor

    def __init__(self, metric: Metric, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(metric, SumsMetric):
            raise TypeError(f"`metric` must be a cross-entropy Metric of this package, got {type(metric).__name__}.")
        if metric._no_interval is not None or metric._average != "micro":
            raise ValueError(
                f"PairedDifference needs a cross-entropy metric with average='micro', got {type(metric).__name__} "
                f"with average={metric._average!r}; construct one with average='micro'."
            )
        inner = cast(SumsMetric, metric.clone())
        inner.reset()
        inner.__dict__["_keep_clusters"] = True  # its clusters' totals pair up, even one position per cluster
        self.__dict__["_inner"] = inner  # not a child module: its state is neither saved nor synced
        rows = 2 * inner._rows - (2 * _error_bars.ERROR_ROWS if inner._error_bars else 0) + _error_bars.ERROR_ROWS
        self.__dict__["_rows"] = rows  # the layout's shape, read before the state exists
        self._add_layout_states(torch.zeros(rows, 1, dtype=_state.state_dtype(self.device), device=self.device))

    @property
    def layout(self) -> _layout.Layout:
        """Both models' totals and the differences' rows, under the wrapped metric's class and update options."""
        inner = self.__dict__["_inner"]
        update = f"{_layout.update_text(inner._task_name, inner.task)} for models A and B"
        shape, metric = (self.__dict__["_rows"], 1), f"PairedDifference({inner._reader()})"
        return _layout.Layout(metric=metric, update=update, shape=shape, per_class=shape)

    def update(
        self,
        preds_a: Tensor,
        preds_b: Tensor,
        target: Tensor,
        sample_weight: Tensor | None = None,
        *,
        linear_weight_a: Tensor | None = None,
        linear_weight_b: Tensor | None = None,
        linear_bias_a: Tensor | None = None,
        linear_bias_b: Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        """Add both models' scores (or hidden states, with ``linear_weight_a`` / ``_b``) on one batch.

        ``kwargs``: the wrapped metric's, shared by both models (``cluster_ids``, ``num_bytes``, or one
        ``linear_weight`` / ``linear_bias`` head for both). A batch that is refused changes nothing.
        """
        kwargs_a = _model_kwargs(kwargs, linear_weight_a, linear_bias_a, "a")
        kwargs_b = _model_kwargs(kwargs, linear_weight_b, linear_bias_b, "b")
        sums_a, clusters_a, bytes_of = self._model_batch("A", preds_a, target, sample_weight, kwargs_a)
        sums_b, clusters_b, _ = self._model_batch("B", preds_b, target, sample_weight, kwargs_b)
        (denominators, loss_a), (_, loss_b) = clusters_a.totals(bytes_of), clusters_b.totals()
        rows = _error_bars.paired_rows(sums_a, sums_b, denominators, loss_a - loss_b)
        self.sums.add_(rows.to(self.sums))

    def _model_batch(
        self, model: str, preds: Tensor, target: Tensor, sample_weight: Tensor | None, kwargs: dict[str, Any]
    ) -> tuple[Tensor, ClusterSums, Tensor | None]:
        """One model's batch sums and clusters (the wrapped metric's); a refusal names the model."""
        try:
            return self.__dict__["_inner"]._cluster_batch(preds, target, sample_weight, **kwargs)
        except (TypeError, ValueError) as err:
            raise type(err)(f"model {model} (`preds_{model.lower()}`): {err}") from err

    def compute(self) -> Tensor:
        """The difference ``A - B`` (see Notes for its units)."""
        return self._to_units(self._difference(self.sums)[0])

    def compute_interval(self, confidence: float = 0.95) -> dict[str, Tensor]:
        """``{"value", "stderr", "low", "high"}`` of ``A - B`` (see the class's formula and Notes); a collective."""
        _error_bars.normal_quantile(confidence)
        value, stderr = self._difference(_torchmetrics.synced_sums(self))
        return _error_bars.interval(value, stderr, confidence, self._to_units)

    def _difference(self, sums: Tensor) -> tuple[Tensor, Tensor]:
        """``A - B`` on the loss scale and its standard error; per byte of a global ``num_bytes`` as the metric's."""
        inner = self.__dict__["_inner"]
        value, stderr = _error_bars.paired_stderr(sums, per_byte=inner._per_byte)
        scale = inner._global_byte_scale(_error_bars.paired_first(sums))  # model A's sums
        return (value, stderr) if scale is None else (value * scale, stderr * scale)

    def _to_units(self, value: Tensor) -> Tensor:
        """Nats, or bits for a metric in bits."""
        units = getattr(self.__dict__["_inner"], "units", "nats")
        return _error_bars.bits(value) if units in ("bits_per_token", "bits_per_byte") else value


def _model_kwargs(shared: dict[str, Any], weight: Tensor | None, bias: Tensor | None, model: str) -> dict[str, Any]:
    """The wrapped metric's keywords for one model: the shared ones and, where given, that model's head."""
    out = dict(shared)
    for name, value in (("linear_weight", weight), ("linear_bias", bias)):
        if value is not None:
            if name in shared:
                raise TypeError(
                    f"PairedDifference.update() got both `{name}` (one head for both models) and `{name}_{model}`; "
                    f"pass either `{name}` or `{name}_a` and `{name}_b`."
                )
            out[name] = value
    return out
