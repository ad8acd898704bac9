"""Categorical (softmax) cross-entropy and normalized entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from xent_metrics.functional import _softmax_ce, _validation
from xent_metrics.functional._sums import task_cross_entropy, task_normalized_entropy


@dataclass(frozen=True, kw_only=True)
class MulticlassTask:
    """The multiclass task: :func:`multiclass_cross_entropy`'s options, checked once, and the steps every face calls.

    ``check_batch`` checks a batch (the class ``weight`` against it), ``sums`` returns its ``(3, C)``
    float64 sums per class (or their ``(3, 1)`` totals), ``cross_entropy`` / ``normalized_entropy``
    give the value from sums.

    Each step is the function of the module that owns it, bound here as a method (so a call goes down
    the layers once): ``check_batch`` from :mod:`~xent_metrics.functional._validation`, ``sums`` from
    the kernel, the values from :mod:`~xent_metrics.functional._sums`.
    """

    entries: ClassVar[str] = "classes"

    num_classes: int | None = None
    input_format: str = "logits"
    weight: Tensor | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    average: str | None = "micro"
    validate_args: bool = True
    fused: bool = False

    def __post_init__(self) -> None:
        smoothing, average = _validation.check_task_options(
            self.input_format, self.ignore_index, self.label_smoothing, validate_args=self.validate_args,
            count=("num_classes", self.num_classes), average=self.average, fused=self.fused
        )
        object.__setattr__(self, "label_smoothing", smoothing)
        object.__setattr__(self, "average", average)

    #: Checks types and shapes (always) and values (with ``validate_args``); the class weight against the batch.
    check_batch = _validation.check_multiclass_batch

    #: The ``(3, C)`` float64 sums of a checked batch, or with ``per_class=False`` their ``(3, 1)`` totals.
    sums = _softmax_ce.batch_sums

    #: The cross-entropy of sums for ``average``; ``warn``: warn (a host read) of no data or skipped classes.
    cross_entropy = task_cross_entropy
    #: The cross-entropy over the entropy of the weighted class prior (``average`` for the numerator).
    normalized_entropy = task_normalized_entropy


def multiclass_cross_entropy(
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int | None = None,
    input_format: str = "logits",
    weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    average: str | None = "micro",
    validate_args: bool = True,
    fused: bool = False,
) -> Tensor:
    r"""Categorical cross-entropy, exact from logits (log-sum-exp), probabilities or log-probabilities.

    .. math::
        \mathrm{CE} = -\frac{\sum_i w_i \log \mathrm{softmax}(z_i)_{y_i}}{\sum_i w_i},
        \qquad w_i = s_i \, c_{y_i}

    with ``s`` the ``sample_weight`` and ``c`` the class ``weight`` (torch semantics); ignored
    targets drop out of both sums.

    Parameters
    ----------
    preds : Tensor of shape (N, C, ...)
        Floating point scores with classes in dimension 1, as ``F.cross_entropy``. A ``(B, L, V)``
        language-model output is passed as ``preds.movedim(-1, 1)`` with target ``(B, L)``.
    target : Tensor of shape (N, ...) or (N, C, ...)
        Integer class indices, or class probabilities (soft targets) of the shape of ``preds``.
    num_classes : int, optional
        Expected ``C``; checked against ``preds.shape[1]`` when given.
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        Logits go through log-sum-exp (a logit of -200 on the true class costs 200, not inf);
        probabilities are clipped to ``[eps, 1 - eps]`` with ``eps = torch.finfo(preds.dtype).eps``
        and not renormalised, exactly as scikit-learn's ``log_loss`` (rows that do not sum to 1
        warn, as there); log-probabilities (the ``nll_loss`` convention) must be ``<= 0`` (``-inf``,
        a zero probability, is allowed) and are not renormalised. With ``validate_args=True``,
        logits that look like probability rows (every value in ``[0, 1]``, some strictly between,
        every row summing to 1 within ``1e-8 + sqrt(eps)``, or ``eps`` for float16 and bfloat16)
        warn: pass ``input_format="probs"``.
    weight : Tensor of shape (C,), optional
        Class weights. Hard targets: each sample weighs ``weight[target]`` in numerator and
        denominator. Soft targets: ``loss_i = -sum_c weight_c y_ic log p_ic`` and the mean is over
        ``sum(sample_weight)`` (torch's rule).
    sample_weight : Tensor of shape (N,) or (N, ...), optional
        Non-negative weight per sample, or per position for ``(N, C, ...)`` inputs.
    ignore_index : int, optional
        Targets equal to it drop out; not allowed with soft targets.
    label_smoothing : float in [0, 1), default=0.0
        Targets become ``(1 - s) onehot + s / C``, ``s`` the ``label_smoothing`` (torch's rule).
    average : {"micro", "macro", "none"} or None, default="micro"
        ``None`` means ``"none"`` (torchmetrics' spelling).
        ``"micro"``: the weighted mean over samples (``F.cross_entropy(reduction="mean")``);
        ``"none"``: the mean per true class (``nan`` for a class with no weight); ``"macro"``: the
        unweighted mean of those, skipping classes with no weight (with a warning). With soft
        targets, class ``c``'s value is ``sum_i s_i weight_c y_ic (-log p_ic)`` over the share of the
        sample weights that falls on ``c``, each ``s_i`` split over the classes in proportion to its
        (smoothed) target row ``y_i`` (equally for a row of zeros): the shares add up to ``sum_i s_i``,
        so the shares' weighted mean of the per-class values is the micro value, whatever the rows sum to.
    validate_args : bool, default=True
        Check values (a host sync); shape and type checks always run.
        With ``False`` nothing is read back from the device (the "no data" and "macro skipped" warnings
        are off too: the result is ``nan`` where they would warn), and a ``meta`` batch is accepted.
    fused : bool, default=False
        Run logits with class-index targets through a ``torch.compile``-d kernel (about 15% faster
        than the eager kernel on large inputs, once compiled). It compiles once per class count and
        dtype, on the first batch of at least ``2**23`` logits (seconds, once per process; smaller
        batches and the ragged last rows of a batch run eagerly), and needs a C++ compiler (CPU) or
        Triton (CUDA): without one it warns and runs eagerly. Other inputs, label smoothing and
        autograd ignore it. Per-row values may differ from the eager kernel's in the last bit of the
        input dtype, so float32 results agree with the eager ones to float32 rounding, float64
        results to about 1e-12.

    Shape
    -----
    - ``preds``: ``(N, C, ...)``, classes in dimension 1 (``(B, L, V)`` logits as ``preds.movedim(-1, 1)``).
    - ``target``: ``(N, ...)`` class indices, or ``(N, C, ...)`` probabilities (the shape of ``preds``).
    - ``weight``: ``(C,)``.
    - ``sample_weight``: ``(N,)``, or ``(N, ...)`` one per position.
    - Output: ``()``, or ``(C,)`` with ``average="none"``.

    Returns
    -------
    Tensor
        A float64 scalar, or shape ``(C,)`` for ``average="none"``.

    Raises
    ------
    TypeError
        ``preds`` not floating, floating class indices, or an argument of the wrong type.
    ValueError
        Shape mismatch, wrong ``num_classes``, class index out of range, integer (one-hot) targets
        of the shape of ``preds``, probabilities outside ``[0, 1]``, log-probabilities above 0, NaN
        or inf, negative or all-zero weights, ``ignore_index`` with soft targets, an unknown option.

    Warns
    -----
    UserWarning
        Probability rows that do not sum to 1 (``input_format="probs"``); logits that look like
        probability rows (``input_format="logits"``, ``validate_args=True``).

    See Also
    --------
    multiclass_normalized_entropy : The same loss over the entropy of the class prior.

    Notes
    -----
    Rows are processed in cache-sized chunks: no temporary of the size of ``preds`` is built, and
    per-class float64 sums make the result independent of chunking and batch splits.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import multiclass_cross_entropy
    >>> probs = torch.tensor([[0.1, 0.9], [0.7, 0.3]])
    >>> multiclass_cross_entropy(probs, torch.tensor([1, 0]), input_format="probs")
    tensor(0.2310, dtype=torch.float64)
    >>> multiclass_cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3]))  # log(4)
    tensor(1.3863, dtype=torch.float64)
    """
    task = MulticlassTask(
        num_classes=num_classes, input_format=input_format, weight=weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, average=average, validate_args=bool(validate_args), fused=fused
    )
    return task.cross_entropy(task.sums(task.check_batch(preds, target, sample_weight)), warn=task.validate_args)


def multiclass_normalized_entropy(
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int | None = None,
    input_format: str = "logits",
    weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    average: str | None = "micro",
    validate_args: bool = True,
    fused: bool = False,
) -> Tensor:
    r"""Multiclass normalized entropy: the cross-entropy over the entropy of the weighted class prior.

    .. math::
        \mathrm{NE} = \frac{\mathrm{CE}}{-\sum_c \pi_c \log \pi_c}, \qquad
        \pi_c = \frac{\sum_i s_i y_{ic}}{\sum_i s_i}

    1 means no better than predicting the class prior. Parameters are those of
    :func:`multiclass_cross_entropy`; ``average`` selects the cross-entropy in the numerator, class
    weights enter the numerator only. A single-class prior has zero entropy: ``nan`` and a warning.

    Shape
    -----
    - ``preds``, ``target``, ``weight``, ``sample_weight``: as in :func:`multiclass_cross_entropy`.
    - Output: ``()``, or ``(C,)`` with ``average="none"``.

    Returns
    -------
    Tensor
        A float64 scalar, or shape ``(C,)`` for ``average="none"``.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import multiclass_normalized_entropy
    >>> multiclass_normalized_entropy(torch.zeros(4, 4), torch.tensor([0, 1, 2, 3]))
    tensor(1., dtype=torch.float64)
    """
    task = MulticlassTask(
        num_classes=num_classes, input_format=input_format, weight=weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, average=average, validate_args=bool(validate_args), fused=fused
    )
    sums = task.sums(task.check_batch(preds, target, sample_weight))
    return task.normalized_entropy(sums, warn=task.validate_args)
