"""Binary cross-entropy and normalized entropy as torchmetrics ``Metric`` classes."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional.binary import BinaryTask
from xent_metrics.metrics import _state
from xent_metrics.metrics._base import SumsMetric
from xent_metrics.metrics._error_bars import NE_LIMITATION
from xent_metrics.metrics._options import OptionAttribute


class _BinaryMetric(SumsMetric):
    """Options, ``(3, 1)`` state and batch sums shared by the binary metrics."""

    _fixed_tensors: tuple[str, ...] = ("pos_weight",)
    _task_name = "binary"
    task: BinaryTask
    input_format: OptionAttribute[str] = OptionAttribute()
    pos_weight: OptionAttribute[Tensor | None] = OptionAttribute()
    ignore_index: OptionAttribute[int | None] = OptionAttribute()
    label_smoothing: OptionAttribute[float] = OptionAttribute()
    validate_args: OptionAttribute[bool] = OptionAttribute()

    def __init__(
        self,
        *,
        input_format: str = "logits",
        pos_weight: Tensor | float | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        task = BinaryTask(
            input_format=input_format, ignore_index=ignore_index, label_smoothing=label_smoothing,
            validate_args=validate_args
        )
        dtype = _state.state_dtype(self.device)
        pos = _state.fixed_weight("pos_weight", pos_weight, 1, self.device, dtype, scalar=True)
        self.task = dataclasses.replace(task, pos_weight=pos)
        self._add_sums_state(1, dtype)

    def _batch_sums(self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        _validation.check_on_state_device(preds, self.sums)
        return self.task.sums(self.task.check_batch(preds, target, sample_weight))


class BinaryCrossEntropy(_BinaryMetric):
    r"""Binary cross-entropy (log loss), accumulated exactly over batches and processes.

    .. math::
        \mathrm{BCE} = -\frac{\sum_i w_i \left[\pi\, y_i \log p_i + (1 - y_i) \log(1 - p_i)\right]}{\sum_i w_i}

    with ``w_i`` the sample weight (0 for ignored targets) and ``pi`` the ``pos_weight``. The state is
    one ``(3, 1)`` float64 tensor of loss, weight and positive-mass sums, so the result after any
    split of the data equals :func:`~xent_metrics.functional.binary_cross_entropy` on all of it.

    Parameters
    ----------
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How ``preds`` is read, never guessed: logits through softplus (a logit of -200 on a
        positive costs 200, not inf), probabilities clipped to ``[eps, 1 - eps]`` with
        ``eps = torch.finfo(preds.dtype).eps`` as scikit-learn's ``log_loss``, log-probabilities
        ``<= 0`` (a positive one raises), not clipped.
    pos_weight : float or Tensor of shape (1,), optional
        Multiplies the positive term (torch semantics). Checked once, here.
    ignore_index : int, optional
        Elements whose target equals it drop out of both sums.
    label_smoothing : float in [0, 1), default=0.0
        Targets become ``y (1 - s) + s / 2``, ``s`` the ``label_smoothing``.
    validate_args : bool, default=True
        Check input values in ``update`` (a device-to-host sync). With ``False`` only type, shape
        and device checks run, which read no tensor value.
    error_bars : bool, default=False
        Keep the error-bar rows (one cluster per sample) for :meth:`compute_interval`: five more
        float64 rows in the state, still one ``all_reduce``. ``False`` leaves the state and the update
        as without the option. See the docs page "How sure is this number?".
    **kwargs
        torchmetrics' ``Metric`` options: ``compute_on_cpu``, ``dist_sync_on_step``,
        ``process_group``, ``dist_sync_fn``, ``sync_on_compute``, ``compute_with_cache``.

    Shape
    -----
    - ``preds``: ``(N, ...)``, any shape (``update`` and ``forward``).
    - ``target``: the shape of ``preds``.
    - ``sample_weight``: ``(N,)`` (broadcast over trailing dimensions), or the shape of ``preds``.
    - ``pos_weight``: a float, or ``(1,)``.
    - Output: ``()`` (``compute`` and ``forward``).

    Attributes
    ----------
    sums : Tensor of shape (3, 1)
        float64 loss, weight and positive-mass sums; summed across processes with one
        ``all_reduce`` and saved in ``state_dict``.

    Raises
    ------
    TypeError
        An argument of the wrong type.
    ValueError
        An unknown option or a bad ``pos_weight``; in ``update``, the errors of
        :func:`~xent_metrics.functional.binary_cross_entropy` and inputs on another device than
        the metric. A rejected ``update`` leaves the state exactly as it was.

    See Also
    --------
    xent_metrics.functional.binary_cross_entropy : The same value on one batch.
    BinaryNormalizedEntropy : The same loss over the entropy of the base rate.

    Notes
    -----
    ``update(preds, target, sample_weight=None)`` takes ``preds`` and ``target`` of shape
    ``(N, ...)`` and ``sample_weight`` of shape ``(N,)`` or ``(N, ...)``. A batch whose targets are
    all ignored, or an empty batch, adds nothing. ``compute()`` with no weighted data warns and
    returns ``nan``, on every rank alike. States are float64 whatever the input dtype (float16 and
    bfloat16 inputs are computed in float32).

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import BinaryCrossEntropy
    >>> metric = BinaryCrossEntropy(input_format="probs")
    >>> metric.update(torch.tensor([0.9]), torch.tensor([1]))
    >>> metric.update(torch.tensor([0.3]), torch.tensor([0]))
    >>> metric.compute()  # sklearn.metrics.log_loss([1, 0], [0.9, 0.3])
    tensor(0.2310, dtype=torch.float64)
    """

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        return self.task.cross_entropy(sums)


class BinaryNormalizedEntropy(_BinaryMetric):
    r"""Binary normalized entropy: the cross-entropy over the entropy of the weighted base rate.

    .. math::
        \mathrm{NE} = \frac{\mathrm{BCE}}{-p \log p - (1 - p)\log(1 - p)}, \qquad
        p = \frac{\sum_i w_i y_i}{\sum_i w_i}

    over all the data seen (not a mean of per-batch ratios), as torcheval's
    ``BinaryNormalizedEntropy`` and ``1 - d2_log_loss_score``: 1 means no better than always
    predicting the base rate. Parameters, state and behaviour are those of
    :class:`BinaryCrossEntropy`. All-positive or all-negative targets have a base rate of exactly
    0 or 1, which has zero entropy: ``nan`` and a warning. With ``label_smoothing`` the base rate
    is that of the smoothed targets, so the value stays finite.

    Shape
    -----
    - ``preds``, ``target``, ``sample_weight``, ``pos_weight``: as in :class:`BinaryCrossEntropy`.
    - Output: ``()`` (``compute`` and ``forward``).

    See Also
    --------
    xent_metrics.functional.binary_normalized_entropy : The same value on one batch.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import BinaryNormalizedEntropy
    >>> metric = BinaryNormalizedEntropy(input_format="probs")
    >>> metric.update(torch.tensor([0.5]), torch.tensor([1]))
    >>> metric.update(torch.tensor([0.5]), torch.tensor([0]))
    >>> metric.compute()
    tensor(1.0000, dtype=torch.float64)
    """

    _no_interval = NE_LIMITATION

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        return self.task.normalized_entropy(sums)
