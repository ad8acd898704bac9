"""Categorical (softmax) cross-entropy and normalized entropy."""

from __future__ import annotations

import torch
from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional._options import MulticlassOptions
from xent_metrics.functional._softmax_ce import softmax_ce_sums
from xent_metrics.functional._sums import cross_entropy_from_sums, multiclass_normalized_entropy_from_sums


def _check_shapes(preds: Tensor, target: Tensor, num_classes: int | None, ignore_index: int | None) -> bool:
    """Check the multiclass shape contract; return True for soft (probability) targets."""
    if preds.ndim < 2 or preds.shape[1] < 2:
        raise ValueError(
            f"`preds` for the multiclass task must have shape (N, C, ...) with C >= 2 classes in dimension 1, got "
            f"{tuple(preds.shape)}. For a (B, L, V) language-model output pass `preds.movedim(-1, 1)`."
        )
    if num_classes is not None and preds.shape[1] != num_classes:
        raise ValueError(
            f"`preds` has {preds.shape[1]} classes in dimension 1 (shape {tuple(preds.shape)}) but "
            f"num_classes={num_classes}.{_vocab_last_hint(preds, target, num_classes)}"
        )
    hard_shape = preds.shape[:1] + preds.shape[2:]
    if target.shape == hard_shape and not target.is_floating_point():
        return False
    if target.shape == preds.shape and target.is_floating_point():
        if ignore_index is not None:
            raise ValueError("`ignore_index` cannot be used with soft (probability) targets; pass sample_weight=0.")
        return True
    if target.shape == hard_shape:
        raise TypeError(f"`target` class indices must have an integer dtype, got {target.dtype}.")
    if target.shape == preds.shape:
        indices = "target.long().argmax(1)" if target.dtype == torch.bool else "target.argmax(1)"  # no bool argmax
        raise ValueError(
            f"`target` looks one-hot: {target.dtype} of the shape of `preds` {tuple(preds.shape)}, where class "
            f"indices of shape {tuple(hard_shape)} or float probabilities of shape {tuple(preds.shape)} are expected. "
            f"Pass `{indices}` (class indices) or `target.float()` (soft targets)."
        )
    raise ValueError(
        f"`target` must hold class indices of shape {tuple(hard_shape)} or probabilities of shape "
        f"{tuple(preds.shape)} (the shape of `preds`), got {tuple(target.shape)} ({target.dtype})."
        f"{_vocab_last_hint(preds, target, num_classes)}"
    )


def _vocab_last_hint(preds: Tensor, target: Tensor, num_classes: int | None) -> str:
    """The fix for a ``(B, L, V)`` language-model layout (classes last), or "" when the shapes do not look like one."""
    soft = target.shape == preds.shape
    classes_last = preds.ndim >= 3 and (soft or target.shape == preds.shape[:-1]) and preds.shape[-1] >= 2
    if not classes_last or num_classes not in (None, preds.shape[-1]):
        return ""
    hint = f" The classes look to be in the last dimension (a (B, L, V) language-model layout, V={preds.shape[-1]}): "
    if soft:
        return hint + "pass `preds.movedim(-1, 1)` and `target.movedim(-1, 1)`."
    return hint + (
        "pass `preds.movedim(-1, 1)` (`target` as is), or use `Perplexity`, which takes (B, L, V) logits and "
        "(B, L) token ids as they are."
    )


def _multiclass_tensor_validation(
    preds: object, target: object, sample_weight: object, options: MulticlassOptions, weight: object
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Check types and shapes (always) and values (with ``options.validate_args``); return the checked tensors.

    ``weight`` is the class weight to check against the batch: ``options.weight`` for a function,
    ``None`` for a Metric (which checked its own at construction).
    """
    validate_args, ignore_index = options.validate_args, options.ignore_index
    preds = _validation.check_float_preds(preds, not validate_args)
    target = _validation.check_tensor("target", target, not validate_args)
    _validation.check_device("target", target, preds)
    _validation.check_ignore_index_fits(target, ignore_index)
    soft = _check_shapes(preds, target, options.num_classes, ignore_index)
    positions = preds.shape[:1] + preds.shape[2:]
    sample = _validation.check_sample_weight(sample_weight, [preds.shape[:1], positions], preds, validate_args)
    _validation.check_class_weight("weight", weight, preds.shape[1], preds, validate_args)
    if validate_args:
        bounds = _validation.check_preds_values(preds, options.input_format)
        if options.input_format == "logits":
            _validation.warn_probs_as_logits(preds, bounds)
        if soft:
            _validation.check_probabilities("target", target, "probabilities")
        else:
            _validation.check_class_indices(target, preds.shape[1], ignore_index)
        if options.input_format == "probs":
            _validation.warn_rows_not_normalized(preds)
    return preds, target, sample


def _multiclass_sums(preds: object, target: object, sample_weight: object, options: MulticlassOptions) -> Tensor:
    """Validate a batch (its class weight too) and return its ``(3, C)`` float64 sums."""
    preds, target, sample = _multiclass_tensor_validation(preds, target, sample_weight, options, options.weight)
    return softmax_ce_sums(preds, target, options, sample)


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
        Targets become ``(1 - eps) onehot + eps / C`` (torch's rule).
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
    options = MulticlassOptions(  # average=None is read as "none" there
        num_classes, input_format, weight, ignore_index, label_smoothing, average,  # type: ignore[arg-type]
        bool(validate_args), fused
    )
    return cross_entropy_from_sums(
        _multiclass_sums(preds, target, sample_weight, options), options.average, warn=validate_args
    )


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
    options = MulticlassOptions(  # average=None is read as "none" there
        num_classes, input_format, weight, ignore_index, label_smoothing, average,  # type: ignore[arg-type]
        bool(validate_args), fused
    )
    sums = _multiclass_sums(preds, target, sample_weight, options)
    return multiclass_normalized_entropy_from_sums(sums, options.average, warn=validate_args)
