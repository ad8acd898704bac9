"""Binary cross-entropy and normalized entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from xent_metrics.functional import _validation, _value_checks
from xent_metrics.functional._bce import bce_sums
from xent_metrics.functional._sums import task_cross_entropy, task_normalized_entropy
from xent_metrics.functional._validation import Batch

if TYPE_CHECKING:
    from xent_metrics.functional._cluster_sums import ClusterSums


@dataclass(frozen=True, kw_only=True)
class _BCEOptions:
    """What the BCE kernel reads of a binary task, its ``pos_weight`` a tensor on the batch's device."""

    input_format: str
    pos_weight: Tensor | None
    ignore_index: int | None
    label_smoothing: float


@dataclass(frozen=True, kw_only=True)
class BinaryTask:
    """The binary task: :func:`binary_cross_entropy`'s options, checked once, and the steps every face calls.

    ``check_batch`` checks a batch, ``sums`` returns its ``(3, 1)`` float64 sums (a batch of one label),
    ``cross_entropy`` / ``normalized_entropy`` give the value from sums. A float ``pos_weight`` stays a
    float here: it becomes a tensor on each batch's device.

    Each step is the function of the module that owns it, bound here as a method (so a call goes down
    the layers once): ``check_batch`` from :mod:`~xent_metrics.functional._validation`, ``sums`` from
    the kernel, the values from :mod:`~xent_metrics.functional._sums`.
    """

    average: ClassVar[str] = "micro"
    entries: ClassVar[str] = "labels"
    input_format: str = "logits"
    pos_weight: Tensor | float | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    validate_args: bool = True

    def __post_init__(self) -> None:
        smoothing, _ = _validation.check_task_options(
            self.input_format, self.ignore_index, self.label_smoothing, validate_args=self.validate_args
        )
        object.__setattr__(self, "label_smoothing", smoothing)
        if self.validate_args and _validation.is_number(self.pos_weight):  # a number's checks read no device
            number = torch.tensor([float(self.pos_weight)], dtype=torch.float64)  # type: ignore[arg-type]
            _value_checks.check_weight_values("pos_weight", number)

    #: Checks types and shapes (always) and values (with ``validate_args``); returns one label's batch,
    #: ``(N, 1, ...)`` scores and targets (a tensor ``pos_weight`` checked against it).
    check_batch = _validation.check_binary_batch

    def sums(self, batch: Batch, *, clusters: ClusterSums | None = None) -> Tensor:
        """The ``(3, 1)`` float64 sums of a checked batch (``clusters``: see :func:`~._bce.bce_sums`)."""
        pos = self.pos_weight
        if isinstance(pos, Tensor):
            pos = pos.reshape(1)
        elif pos is not None:  # a number
            pos = torch.tensor([float(pos)], dtype=torch.float64, device=batch.preds.device)
        options = _BCEOptions(
            input_format=self.input_format,
            pos_weight=pos,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )
        return bce_sums(batch.preds, batch.target, options, batch.sample_weight, clusters=clusters)

    #: The weighted mean loss of sums; ``warn``: warn (a host read) where no element has weight.
    cross_entropy = task_cross_entropy
    #: The loss over the entropy of the weighted base rate (``nan`` and, with ``warn``, a warning at 0 or 1).
    normalized_entropy = task_normalized_entropy


def binary_cross_entropy(
    preds: Tensor,
    target: Tensor,
    *,
    input_format: str = "logits",
    pos_weight: Tensor | float | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    validate_args: bool = True,
) -> Tensor:
    r"""Binary cross-entropy (log loss), computed exactly from logits, probabilities or log-probabilities.

    .. math::
        \mathrm{BCE} = -\frac{\sum_i w_i \left[\pi\, y_i \log p_i + (1 - y_i) \log(1 - p_i)\right]}{\sum_i w_i}

    with ``w_i`` the sample weight (0 for ignored targets) and ``pi`` the ``pos_weight``.

    Parameters
    ----------
    preds : Tensor of shape (N, ...)
        Floating point scores of the positive class, read as ``input_format`` says.
    target : Tensor of shape (N, ...)
        Targets in ``{0, 1}`` (bool, integer) or in ``[0, 1]`` (floating, soft targets).
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How ``preds`` is read; never guessed from the values. Logits go through softplus,
        ``max(z, 0) + log1p(exp(-|z|))``, so no value overflows; probabilities are clipped to
        ``[eps, 1 - eps]`` with ``eps = torch.finfo(preds.dtype).eps``, exactly as scikit-learn's
        ``log_loss``; log-probabilities must be ``<= 0`` (a positive one raises) and are not
        clipped: ``-inf`` on the true class gives ``inf``.
    pos_weight : float or Tensor of shape (1,), optional
        Multiplies the positive term only (torch semantics).
    sample_weight : Tensor of shape (N,) or (N, ...), optional
        Non-negative weight of each sample (broadcast over trailing dimensions) or element.
    ignore_index : int, optional
        Elements whose target equals it drop out of both sums.
    label_smoothing : float in [0, 1), default=0.0
        Targets become ``y (1 - s) + s / 2``, ``s`` the ``label_smoothing`` (Keras' rule).
    validate_args : bool, default=True
        Check values (a host sync). Type and shape checks always run; with ``False`` no check
        reads tensor values.
        With ``False`` nothing is read back from the device (the "no data" and "macro skipped" warnings
        are off too: the result is ``nan`` where they would warn), and a ``meta`` batch is accepted.

    Shape
    -----
    - ``preds``: ``(N, ...)``, any shape.
    - ``target``: the shape of ``preds``.
    - ``pos_weight``: a float, or ``(1,)``.
    - ``sample_weight``: ``(N,)`` (broadcast over trailing dimensions), or the shape of ``preds``.
    - Output: ``()``.

    Returns
    -------
    Tensor
        The weighted mean, a float64 scalar; ``nan`` with a warning when no element has weight.

    Raises
    ------
    TypeError
        ``preds`` not a floating tensor, or an argument of the wrong type.
    ValueError
        Shape mismatch, targets outside ``[0, 1]``, probabilities outside ``[0, 1]``, NaN or inf,
        negative weights, all weights zero, or an unknown option.

    See Also
    --------
    multilabel_cross_entropy : One binary problem per label.
    binary_normalized_entropy : The same loss over the entropy of the base rate.

    Notes
    -----
    The computation runs in float32 (float64 for float64 input) over cache-sized row chunks and
    accumulates float64 sums, so the result does not depend on how the data is split or chunked.
    Elements whose loss float32 cannot hold (a confident logit past about 86 nats, a log-probability
    below about -86) are recomputed from float64 inputs, and off the CPU every element runs in float64:
    any loss down to 1e-300 keeps its digits (2e-6 relative for float32 and half-precision inputs).

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import binary_cross_entropy
    >>> binary_cross_entropy(torch.tensor([0.9, 0.3]), torch.tensor([1, 0]), input_format="probs")
    tensor(0.2310, dtype=torch.float64)
    >>> binary_cross_entropy(torch.tensor([-200.0]), torch.tensor([1]))
    tensor(200., dtype=torch.float64)
    """
    task = BinaryTask(
        input_format=input_format, pos_weight=pos_weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
        validate_args=bool(validate_args)
    )
    return task.cross_entropy(task.sums(task.check_batch(preds, target, sample_weight)), warn=task.validate_args)


def binary_normalized_entropy(
    preds: Tensor,
    target: Tensor,
    *,
    input_format: str = "logits",
    pos_weight: Tensor | float | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    validate_args: bool = True,
) -> Tensor:
    r"""Binary normalized entropy: the cross-entropy over the entropy of the weighted base rate.

    .. math::
        \mathrm{NE} = \frac{\mathrm{BCE}}{-p \log p - (1 - p)\log(1 - p)}, \qquad
        p = \frac{\sum_i w_i y_i}{\sum_i w_i}

    As torcheval's ``BinaryNormalizedEntropy`` and ``1 - d2_log_loss_score``: 1 means no better
    than always predicting the base rate. Parameters are those of :func:`binary_cross_entropy`.

    Shape
    -----
    - ``preds``, ``target``, ``pos_weight``, ``sample_weight``: as in :func:`binary_cross_entropy`.
    - Output: ``()``.

    Returns
    -------
    Tensor
        A float64 scalar. A base rate of exactly 0 or 1 (all targets equal, no smoothing) has
        zero entropy: the result is ``nan`` with a warning, never a huge finite number.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import binary_normalized_entropy
    >>> binary_normalized_entropy(torch.tensor([0.5, 0.5]), torch.tensor([1, 0]), input_format="probs")
    tensor(1.0000, dtype=torch.float64)
    """
    task = BinaryTask(
        input_format=input_format, pos_weight=pos_weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
        validate_args=bool(validate_args)
    )
    sums = task.sums(task.check_batch(preds, target, sample_weight))
    return task.normalized_entropy(sums, warn=task.validate_args)
