"""Multilabel cross-entropy and normalized entropy as torchmetrics ``Metric`` classes."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional.multilabel import MultilabelTask
from xent_metrics.metrics import _state
from xent_metrics.metrics._base import SumsMetric
from xent_metrics.metrics._error_bars import NE_LIMITATION
from xent_metrics.metrics._options import OptionAttribute


class _MultilabelMetric(SumsMetric):
    """Options, ``(3, K)`` state and batch sums shared by the multilabel metrics."""

    _fixed_tensors: tuple[str, ...] = ("pos_weight",)
    _task_name = "multilabel"
    task: MultilabelTask
    num_labels: OptionAttribute[int] = OptionAttribute()
    input_format: OptionAttribute[str] = OptionAttribute()
    pos_weight: OptionAttribute[Tensor | None] = OptionAttribute()
    ignore_index: OptionAttribute[int | None] = OptionAttribute()
    label_smoothing: OptionAttribute[float] = OptionAttribute()
    average: OptionAttribute[str] = OptionAttribute()
    validate_args: OptionAttribute[bool] = OptionAttribute()

    def __init__(
        self,
        num_labels: int,
        *,
        input_format: str = "logits",
        pos_weight: Tensor | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        average: str | None = "micro",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _state.check_required_count("num_labels", num_labels)
        task = MultilabelTask(
            num_labels=num_labels, input_format=input_format, ignore_index=ignore_index,
            label_smoothing=label_smoothing, average=average, validate_args=validate_args
        )
        dtype = _state.state_dtype(self.device)
        pos = _state.fixed_weight("pos_weight", pos_weight, num_labels, self.device, dtype)
        self.task = dataclasses.replace(task, pos_weight=pos)
        self._add_sums_state(num_labels, dtype)

    def _batch_sums(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        _validation.check_on_state_device(preds, self.sums)
        return self.task.sums(self.task.check_batch(preds, target, sample_weight))


class MultilabelCrossEntropy(_MultilabelMetric):
    r"""Multilabel binary cross-entropy, accumulated exactly over batches and processes.

    .. math::
        \mathrm{BCE}_k = -\frac{\sum_i w_{ik} \left[\pi_k y_{ik} \log p_{ik} + (1 - y_{ik}) \log(1 - p_{ik})\right]}
        {\sum_i w_{ik}}

    The state is one ``(3, K)`` float64 tensor of per-label loss, weight and positive-mass sums, so
    the result after any split of the data into batches and processes equals
    :func:`~xent_metrics.functional.multilabel_cross_entropy` on all of it.

    Parameters
    ----------
    num_labels : int
        ``K``, the number of labels (dimension 1 of ``preds``); sizes the state.
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How ``preds`` is read, never guessed: logits through softplus, probabilities clipped to
        ``[eps, 1 - eps]`` as scikit-learn's ``log_loss``, log-probabilities ``<= 0`` (a positive one raises),
        not clipped.
    pos_weight : Tensor of shape (K,), optional
        Multiplies each label's positive term (torch semantics). Checked once, here.
    ignore_index : int, optional
        Label entries whose target equals it drop out of that label's sums.
    label_smoothing : float in [0, 1), default=0.0
        Targets become ``y (1 - s) + s / 2``, ``s`` the ``label_smoothing``.
    average : {"micro", "macro", "none"} or None, default="micro"
        ``None`` means ``"none"`` (torchmetrics' spelling).
        ``"micro"``: the weighted mean over all entries; ``"macro"``: the mean of the per-label
        means (labels with no weight skipped, with a warning); ``"none"``: the ``(K,)`` vector
        (use it with ``torchmetrics.wrappers.ClasswiseWrapper``).
    validate_args : bool, default=True
        Check input values in ``update`` (a device-to-host sync). With ``False`` only type, shape
        and device checks run, which read no tensor value.
    error_bars : bool, default=False
        Keep the error-bar rows (one cluster per sample, a row of the batch: all its labels) for
        :meth:`compute_interval`: five more float64 rows per label, still one ``all_reduce``.
        ``average="macro"`` has an interval only where each row has weight in one label (one label, or
        the others ignored); elsewhere the labels of a row are correlated and ``compute_interval``
        raises. ``False`` leaves the state and the update as without the option. See the docs page
        "How sure is this number?".
    **kwargs
        torchmetrics' ``Metric`` options: ``compute_on_cpu``, ``dist_sync_on_step``,
        ``process_group``, ``dist_sync_fn``, ``sync_on_compute``, ``compute_with_cache``.

    Shape
    -----
    - ``preds``: ``(N, K, ...)``, labels in dimension 1 (``update`` and ``forward``).
    - ``target``: the shape of ``preds``.
    - ``sample_weight``: ``(N,)``, or ``(N, ...)`` of the shape of ``preds`` without dimension 1.
    - ``pos_weight``: ``(K,)``.
    - Output: ``()``, or ``(K,)`` with ``average="none"`` (``compute`` and ``forward``).

    Attributes
    ----------
    sums : Tensor of shape (3, K)
        float64 loss, weight and positive-mass sums per label; summed across processes with one
        ``all_reduce`` and saved in ``state_dict``.

    Raises
    ------
    TypeError
        An argument of the wrong type (``num_labels=None`` included).
    ValueError
        An unknown option or a bad ``pos_weight``; in ``update``, the errors of
        :func:`~xent_metrics.functional.multilabel_cross_entropy` and inputs on another device.
        A rejected ``update`` leaves the state exactly as it was.

    See Also
    --------
    xent_metrics.functional.multilabel_cross_entropy : The same value on one batch.
    MultilabelNormalizedEntropy : Each label's loss over the entropy of its base rate.

    Notes
    -----
    ``update(preds, target, sample_weight=None)`` takes ``preds`` and ``target`` of shape
    ``(N, K, ...)`` and ``sample_weight`` of shape ``(N,)`` or ``(N, ...)``. A batch whose targets
    are all ignored, or an empty batch, adds nothing. ``compute()`` with no weighted data warns and
    returns ``nan``, on every rank alike.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import MultilabelCrossEntropy
    >>> metric = MultilabelCrossEntropy(num_labels=3)
    >>> metric.update(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1, 0, 1]]))
    >>> metric.compute()
    tensor(0.3048, dtype=torch.float64)
    >>> metric = MultilabelCrossEntropy(num_labels=3, average="none")
    >>> metric(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1, 0, 1]]))  # forward: the batch value
    tensor([0.1269, 0.3133, 0.4741], dtype=torch.float64)
    """

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        return self.task.cross_entropy(sums)


class MultilabelNormalizedEntropy(_MultilabelMetric):
    r"""Multilabel normalized entropy: each label's cross-entropy over the entropy of its base rate.

    .. math::
        \mathrm{NE}_k = \frac{\mathrm{BCE}_k}{H(p_k)}, \qquad
        \mathrm{NE}_{\mathrm{micro}} = \frac{\sum_k L_k}{\sum_k W_k H(p_k)}

    with ``L_k``, ``W_k`` the label's loss and weight sums and ``p_k`` its weighted base rate over
    all the data seen (not a mean of per-batch ratios). 1 means no better than predicting each
    label's base rate. Parameters, state and behaviour are those of
    :class:`MultilabelCrossEntropy`; a label whose base rate is exactly 0 or 1 gives ``nan``
    (``"none"``) or is skipped (``"macro"``), with a warning. All-positive or all-negative targets
    give such a base rate (with ``label_smoothing`` the base rate is that of the smoothed targets).

    Shape
    -----
    - ``preds``, ``target``, ``sample_weight``, ``pos_weight``: as in :class:`MultilabelCrossEntropy`.
    - Output: ``()``, or ``(K,)`` with ``average="none"`` (``compute`` and ``forward``).

    See Also
    --------
    xent_metrics.functional.multilabel_normalized_entropy : The same value on one batch.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import MultilabelNormalizedEntropy
    >>> metric = MultilabelNormalizedEntropy(num_labels=2, input_format="probs")
    >>> metric.update(torch.tensor([[0.5, 0.5]]), torch.tensor([[1, 0]]))
    >>> metric.update(torch.tensor([[0.5, 0.5]]), torch.tensor([[0, 1]]))
    >>> metric.compute()
    tensor(1., dtype=torch.float64)
    """

    _no_interval = NE_LIMITATION

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        return self.task.normalized_entropy(sums)
