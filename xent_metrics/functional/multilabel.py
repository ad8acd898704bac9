"""Multilabel binary cross-entropy (one sigmoid per label) and normalized entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from xent_metrics.functional import _bce, _validation
from xent_metrics.functional._sums import task_cross_entropy, task_normalized_entropy


@dataclass(frozen=True, kw_only=True)
class MultilabelTask:
    """The multilabel task: :func:`multilabel_cross_entropy`'s options, checked once, and the steps every face calls.

    ``check_batch`` checks a batch, ``sums`` returns its ``(3, K)`` float64 sums per label,
    ``cross_entropy`` / ``normalized_entropy`` give the value from sums (any ``average``).

    Each step is the function of the module that owns it, bound here as a method (so a call goes down
    the layers once): ``check_batch`` from :mod:`~xent_metrics.functional._validation`, ``sums`` from
    the kernel, the values from :mod:`~xent_metrics.functional._sums`.
    """

    entries: ClassVar[str] = "labels"

    num_labels: int | None = None
    input_format: str = "logits"
    pos_weight: Tensor | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    average: str | None = "micro"
    validate_args: bool = True

    def __post_init__(self) -> None:
        smoothing, average = _validation.check_task_options(
            self.input_format, self.ignore_index, self.label_smoothing, validate_args=self.validate_args,
            count=("num_labels", self.num_labels), average=self.average
        )
        object.__setattr__(self, "label_smoothing", smoothing)
        object.__setattr__(self, "average", average)

    #: Checks types and shapes (always) and values (with ``validate_args``); ``pos_weight`` against the batch.
    check_batch = _validation.check_multilabel_batch

    #: The ``(3, K)`` float64 sums per label of a checked batch.
    sums = _bce.batch_sums

    #: The cross-entropy of sums for ``average``; ``warn``: warn (a host read) of no data or skipped labels.
    cross_entropy = task_cross_entropy
    #: Each label's cross-entropy over the entropy of its base rate, averaged as ``average`` says.
    normalized_entropy = task_normalized_entropy


def multilabel_cross_entropy(
    preds: Tensor,
    target: Tensor,
    *,
    num_labels: int | None = None,
    input_format: str = "logits",
    pos_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    average: str | None = "micro",
    validate_args: bool = True,
) -> Tensor:
    r"""Multilabel binary cross-entropy: ``K`` independent sigmoid / binary problems.

    .. math::
        \mathrm{BCE}_k = -\frac{\sum_i w_{ik} \left[\pi_k y_{ik} \log p_{ik} + (1 - y_{ik}) \log(1 - p_{ik})\right]}
        {\sum_i w_{ik}}

    Parameters
    ----------
    preds : Tensor of shape (N, K, ...)
        Floating point scores, one per label, read as ``input_format`` says.
    target : Tensor of shape (N, K, ...)
        Targets in ``{0, 1}`` (bool, integer) or ``[0, 1]`` (floating).
    num_labels : int, optional
        Expected ``K``; checked against ``preds.shape[1]`` when given.
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        As in :func:`binary_cross_entropy`: logits through softplus, probabilities clipped to
        ``[eps, 1 - eps]`` (``eps = torch.finfo(preds.dtype).eps``), log-probabilities ``<= 0``
        (a positive one raises), not clipped.
    pos_weight : Tensor of shape (K,), optional
        Multiplies each label's positive term (torch semantics).
    sample_weight : Tensor of shape (N,) or (N, ...), optional
        Non-negative weight per sample (or per position), shared by its ``K`` labels.
    ignore_index : int, optional
        Individual label entries whose target equals it drop out of that label's sums.
    label_smoothing : float in [0, 1), default=0.0
        Targets become ``y (1 - s) + s / 2``, ``s`` the ``label_smoothing`` (Keras' rule).
    average : {"micro", "macro", "none"} or None, default="micro"
        ``None`` means ``"none"`` (torchmetrics' spelling).
        ``"micro"``: the weighted mean over all entries (``BCEWithLogitsLoss(reduction="mean")``);
        ``"macro"``: the unweighted mean of the per-label means (labels with no weight are skipped
        with a warning); ``"none"``: the per-label vector (``nan`` for a label with no weight).
    validate_args : bool, default=True
        Check values (a host sync); shape and type checks always run.
        With ``False`` nothing is read back from the device (the "no data" and "macro skipped" warnings
        are off too: the result is ``nan`` where they would warn), and a ``meta`` batch is accepted.

    Shape
    -----
    - ``preds``: ``(N, K, ...)``, labels in dimension 1.
    - ``target``: the shape of ``preds``.
    - ``pos_weight``: ``(K,)``.
    - ``sample_weight``: ``(N,)``, or ``(N, ...)`` of the shape of ``preds`` without dimension 1.
    - Output: ``()``, or ``(K,)`` with ``average="none"``.

    Returns
    -------
    Tensor
        A float64 scalar, or shape ``(K,)`` for ``average="none"``.

    Raises
    ------
    TypeError
        ``preds`` not floating, or an argument of the wrong type.
    ValueError
        Shape mismatch, wrong ``num_labels``, targets or probabilities outside ``[0, 1]``, NaN or
        inf, negative or all-zero weights, an unknown option.

    See Also
    --------
    binary_cross_entropy : The single-label case.
    multilabel_normalized_entropy : Each label's loss over the entropy of its base rate.

    Notes
    -----
    This is **not** ``sklearn.metrics.log_loss`` on the indicator matrix, which drops the
    ``(1 - y) log(1 - p)`` terms; it equals the mean of per-column ``log_loss`` values (``"macro"``
    with equal weights) and ``BCEWithLogitsLoss`` (``"micro"``). The dtype policy is that of
    :func:`binary_cross_entropy`: confident elements keep their digits down to a loss of 1e-300.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import multilabel_cross_entropy
    >>> logits, labels = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1, 0, 1]])
    >>> multilabel_cross_entropy(logits, labels)
    tensor(0.3048, dtype=torch.float64)
    >>> multilabel_cross_entropy(logits, labels, average="none")
    tensor([0.1269, 0.3133, 0.4741], dtype=torch.float64)
    """
    task = MultilabelTask(
        num_labels=num_labels, input_format=input_format, pos_weight=pos_weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, average=average, validate_args=bool(validate_args)
    )
    return task.cross_entropy(task.sums(task.check_batch(preds, target, sample_weight)), warn=task.validate_args)


def multilabel_normalized_entropy(
    preds: Tensor,
    target: Tensor,
    *,
    num_labels: int | None = None,
    input_format: str = "logits",
    pos_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    average: str | None = "micro",
    validate_args: bool = True,
) -> Tensor:
    r"""Multilabel normalized entropy: each label's cross-entropy over the entropy of its base rate.

    .. math::
        \mathrm{NE}_k = \frac{\mathrm{BCE}_k}{H(p_k)}, \qquad
        \mathrm{NE}_{\mathrm{micro}} = \frac{\sum_k L_k}{\sum_k W_k H(p_k)}

    with ``L_k``, ``W_k`` the label's loss and weight sums and ``p_k`` its weighted base rate;
    ``"micro"`` is the total loss over that of the best constant predictor. Parameters are those of
    :func:`multilabel_cross_entropy`. A label whose base rate is exactly 0 or 1 has zero entropy:
    it gives ``nan`` (``"none"``) or is skipped (``"macro"``), with a warning.

    Shape
    -----
    - ``preds``, ``target``, ``pos_weight``, ``sample_weight``: as in :func:`multilabel_cross_entropy`.
    - Output: ``()``, or ``(K,)`` with ``average="none"``.

    Returns
    -------
    Tensor
        A float64 scalar, or shape ``(K,)`` for ``average="none"``.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import multilabel_normalized_entropy
    >>> probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    >>> multilabel_normalized_entropy(probs, torch.tensor([[1, 0], [0, 1]]), input_format="probs")
    tensor(1.0000, dtype=torch.float64)
    """
    task = MultilabelTask(
        num_labels=num_labels, input_format=input_format, pos_weight=pos_weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, average=average, validate_args=bool(validate_args)
    )
    sums = task.sums(task.check_batch(preds, target, sample_weight))
    return task.normalized_entropy(sums, warn=task.validate_args)
