"""Multiclass (softmax) cross-entropy and normalized entropy as torchmetrics ``Metric`` classes."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from torch import Tensor

from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.metrics import _state
from xent_metrics.metrics._error_bars import NE_LIMITATION
from xent_metrics.metrics._head import HeadSumsMetric
from xent_metrics.metrics._options import OptionAttribute


class _MulticlassMetric(HeadSumsMetric):
    """Options, ``(3, C)`` state and batch sums shared by the multiclass metrics."""

    _fixed_tensors: tuple[str, ...] = ("weight",)
    _task_name = "multiclass"
    #: Whether the value needs per-class sums whatever ``average`` is (NE: the class prior).
    _needs_class_sums: bool = True
    num_classes: OptionAttribute[int] = OptionAttribute()
    input_format: OptionAttribute[str] = OptionAttribute()
    weight: OptionAttribute[Tensor | None] = OptionAttribute()
    ignore_index: OptionAttribute[int | None] = OptionAttribute()
    label_smoothing: OptionAttribute[float] = OptionAttribute()
    average: OptionAttribute[str] = OptionAttribute()
    validate_args: OptionAttribute[bool] = OptionAttribute()
    fused: OptionAttribute[bool] = OptionAttribute()

    def __init__(
        self,
        num_classes: int,
        *,
        input_format: str = "logits",
        weight: Tensor | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        average: str | None = "micro",
        validate_args: bool = True,
        fused: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _state.check_required_count("num_classes", num_classes)
        task = MulticlassTask(
            num_classes=num_classes, input_format=input_format, ignore_index=ignore_index,
            label_smoothing=label_smoothing, average=average, validate_args=validate_args, fused=fused
        )
        dtype = _state.state_dtype(self.device)
        weight = _state.fixed_weight("weight", weight, num_classes, self.device, dtype)
        self.task = dataclasses.replace(task, weight=weight)
        self._per_class = self._needs_class_sums or self.task.average != "micro"  # else a (3, 1) state of totals
        self._error_reference = math.log(num_classes)
        self._add_sums_state(num_classes if self._per_class else 1, dtype, per_class=num_classes)


class MulticlassCrossEntropy(_MulticlassMetric):
    r"""Categorical (softmax) cross-entropy, accumulated exactly over batches and processes.

    .. math::
        \mathrm{CE} = -\frac{\sum_i w_i \log \mathrm{softmax}(z_i)_{y_i}}{\sum_i w_i},
        \qquad w_i = s_i \, c_{y_i}

    with ``s`` the ``sample_weight`` and ``c`` the class ``weight`` (torch semantics); ignored
    targets drop out of both sums. The state is one ``(3, C)`` float64 tensor of loss, weight and
    target-mass sums per class (``(3, 1)`` totals for ``average="micro"``, which needs no more), so
    the result after any split of the data equals
    :func:`~xent_metrics.functional.multiclass_cross_entropy` on all of it.

    Parameters
    ----------
    num_classes : int
        ``C``, the number of classes (dimension 1 of ``preds``); sizes the state.
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How ``preds`` is read, never guessed: logits through log-sum-exp, probabilities clipped
        to ``[eps, 1 - eps]`` as scikit-learn's ``log_loss``, log-probabilities ``<= 0`` (a positive one raises),
        not renormalised.
    weight : Tensor of shape (C,), optional
        Class weights (torch semantics). Checked once, here.
    ignore_index : int, optional
        Targets equal to it drop out; not allowed with soft targets.
    label_smoothing : float in [0, 1), default=0.0
        Targets become ``(1 - s) onehot + s / C``, ``s`` the ``label_smoothing`` (torch's rule).
    average : {"micro", "macro", "none"} or None, default="micro"
        ``None`` means ``"none"`` (torchmetrics' spelling).
        ``"micro"``: the weighted mean over samples (``F.cross_entropy``); ``"none"``: the mean
        per true class, shape ``(C,)`` (use it with ``torchmetrics.wrappers.ClasswiseWrapper``);
        ``"macro"``: the mean of those, skipping classes with no weight (with a warning).
    validate_args : bool, default=True
        Check input values in ``update`` (a device-to-host sync). With ``False`` only type, shape
        and device checks run, which read no tensor value.
    fused : bool, default=False
        Run logits with class-index targets through a ``torch.compile``-d kernel: compiled once
        per class count on the first batch of at least ``2**23`` logits, about 15% faster than the
        eager kernel after that; see
        :func:`~xent_metrics.functional.multiclass_cross_entropy`.
    error_bars : bool, default=False
        Keep the error-bar rows for :meth:`compute_interval`: five more float64 rows (per class for
        ``average="none"`` / ``"macro"``), still one ``all_reduce``. A cluster is a sample of an
        ``(N, C)`` batch, a sequence (index 0) of an ``(N, C, ...)`` or hidden-state batch, or the
        sequences of one document given by ``update(..., cluster_ids=ids)`` (shape ``(N,)``; a cluster
        lies within one update). ``"macro"`` has an interval where each cluster falls in one class (one
        cluster per row with hard targets, label smoothing allowed; a sequence of one class), else
        ``compute_interval`` raises. ``False`` leaves the state and the update as without the option.
    **kwargs
        torchmetrics' ``Metric`` options: ``compute_on_cpu``, ``dist_sync_on_step``,
        ``process_group``, ``dist_sync_fn``, ``sync_on_compute``, ``compute_with_cache``.

    Shape
    -----
    - ``preds``: ``(N, C, ...)``, classes in dimension 1 (``update`` and ``forward``); or the hidden
      states ``(N, d)`` / ``(B, L, d)`` of a linear head given as ``linear_weight``.
    - ``target``: ``(N, ...)`` class indices, or ``(N, C, ...)`` probabilities; ``(N,)`` / ``(B, L)``
      with hidden states.
    - ``sample_weight``: ``(N,)``, or ``(N, ...)`` one per position.
    - ``linear_weight``: ``(C, d)``.
    - ``linear_bias``: ``(C,)``.
    - ``weight``: ``(C,)``.
    - Output: ``()``, or ``(C,)`` with ``average="none"`` (``compute`` and ``forward``).

    Attributes
    ----------
    sums : Tensor of shape (3, C), or (3, 1) for ``average="micro"``
        float64 loss, weight and target-mass sums per class (their totals for ``"micro"``); summed
        across processes with one ``all_reduce`` and saved in ``state_dict`` with its layout. A
        ``"micro"`` metric takes the ``(3, C)`` state of a per-class one of the same options (in
        ``merge_state`` or ``load_state_dict``) as its totals; the reverse is refused. See
        :mod:`xent_metrics.metrics._layout`.

    Raises
    ------
    TypeError
        An argument of the wrong type (``num_classes=None`` included).
    ValueError
        An unknown option or a bad ``weight``; in ``update``, the errors of
        :func:`~xent_metrics.functional.multiclass_cross_entropy` and inputs on another device
        than the metric. A rejected ``update`` leaves the state exactly as it was.

    See Also
    --------
    xent_metrics.functional.multiclass_cross_entropy : The same value on one batch.
    MulticlassNormalizedEntropy : The same loss over the entropy of the class prior.
    Perplexity : ``exp`` of the micro cross-entropy, for ``(B, L, V)`` language-model outputs.

    Notes
    -----
    ``update(preds, target, sample_weight=None)`` takes ``preds`` of shape ``(N, C, ...)`` (classes
    in dimension 1, as ``F.cross_entropy``), ``target`` of class indices ``(N, ...)`` or
    probabilities ``(N, C, ...)``, and ``sample_weight`` of shape ``(N,)`` or ``(N, ...)``. A batch
    whose targets are all ignored, or an empty batch, adds nothing.
    ``update(hidden, target, sample_weight=None, linear_weight=W, linear_bias=b)`` takes instead the
    ``(N, d)`` or ``(B, L, d)`` inputs of a linear head ``W`` ``(C, d)``, ``b`` ``(C,)`` and class
    indices ``(N,)`` / ``(B, L)``: the same sums, without the logits
    (:func:`~xent_metrics.functional.linear_cross_entropy`; ``fused`` does not apply there). ``compute()`` with no
    weighted data warns and returns ``nan``, on every rank alike.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import MulticlassCrossEntropy
    >>> metric = MulticlassCrossEntropy(num_classes=2, input_format="probs")
    >>> metric.update(torch.tensor([[0.1, 0.9]]), torch.tensor([1]))
    >>> metric.update(torch.tensor([[0.7, 0.3]]), torch.tensor([0]))
    >>> metric.compute()  # sklearn.metrics.log_loss([1, 0], [[0.1, 0.9], [0.7, 0.3]])
    tensor(0.2310, dtype=torch.float64)
    >>> MulticlassCrossEntropy(num_classes=4)(torch.zeros(2, 4), torch.tensor([0, 3]))  # forward: log(4)
    tensor(1.3863, dtype=torch.float64)
    """

    _needs_class_sums = False

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        return self.task.cross_entropy(sums)


class MulticlassNormalizedEntropy(_MulticlassMetric):
    r"""Multiclass normalized entropy: the cross-entropy over the entropy of the weighted class prior.

    .. math::
        \mathrm{NE} = \frac{\mathrm{CE}}{-\sum_c \pi_c \log \pi_c}, \qquad
        \pi_c = \frac{\sum_i s_i y_{ic}}{\sum_i s_i}

    over all the data seen. 1 means no better than predicting the class prior. Parameters, state
    and behaviour are those of :class:`MulticlassCrossEntropy`; ``average`` selects the
    cross-entropy in the numerator, class weights enter the numerator only. A single-class prior
    has zero entropy: ``nan`` and a warning.

    Shape
    -----
    - ``preds``, ``target``, ``sample_weight``, ``linear_weight``, ``linear_bias``, ``weight``: as in
      :class:`MulticlassCrossEntropy`.
    - Output: ``()``, or ``(C,)`` with ``average="none"`` (``compute`` and ``forward``).

    See Also
    --------
    xent_metrics.functional.multiclass_normalized_entropy : The same value on one batch.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import MulticlassNormalizedEntropy
    >>> metric = MulticlassNormalizedEntropy(num_classes=4)
    >>> metric.update(torch.zeros(2, 4), torch.tensor([0, 1]))
    >>> metric.update(torch.zeros(2, 4), torch.tensor([2, 3]))
    >>> metric.compute()
    tensor(1., dtype=torch.float64)
    """

    _no_interval = NE_LIMITATION

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        return self.task.normalized_entropy(sums)
