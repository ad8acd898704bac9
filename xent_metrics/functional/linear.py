"""Cross-entropy of a linear head, ``hidden @ linear_weight.T (+ linear_bias)``, without building the logits.

The public function and the checks of its inputs; the blockwise kernel is
:mod:`xent_metrics.functional._head_ce`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional._head_ce import linear_sums
from xent_metrics.functional._options import LinearOptions, MulticlassOptions
from xent_metrics.functional._sums import cross_entropy_from_sums


def _check_operand(name: str, value: object, hidden: Tensor) -> Tensor:
    """``linear_weight`` / ``linear_bias``: a tensor of ``hidden``'s dtype, on its device."""
    value = _validation.check_tensor(name, value, meta_ok=hidden.is_meta)
    if value.dtype != hidden.dtype:
        raise TypeError(
            f"`{name}` has dtype {value.dtype} but `hidden` has {hidden.dtype}; the projection needs one dtype, "
            f"e.g. `{name}.to(hidden.dtype)`."
        )
    _validation.check_device(name, value, hidden, "hidden")
    return value


def _check_hidden(hidden: object, target: object, validate_args: bool) -> tuple[Tensor, Tensor]:
    hidden = _validation.check_tensor("hidden", hidden, meta_ok=not validate_args)
    if not hidden.is_floating_point():
        raise TypeError(f"`hidden` must be a floating point tensor (the head's input features), got {hidden.dtype}.")
    if hidden.ndim < 2:
        raise ValueError(f"`hidden` must have shape (N, d) or (B, L, d), features last, got {tuple(hidden.shape)}.")
    target = _validation.check_tensor("target", target, meta_ok=not validate_args)
    if tuple(target.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(
            f"`target` must hold one class index per row of `hidden`, shape {tuple(hidden.shape[:-1])} for hidden "
            f"{tuple(hidden.shape)}, got {tuple(target.shape)}."
        )
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"`target` must hold integer class indices, got dtype {target.dtype}.")
    _validation.check_device("target", target, hidden, "hidden")
    return hidden, target


def _linear_tensor_validation(
    hidden: object,
    linear_weight: object,
    target: object,
    linear_bias: object,
    sample_weight: object,
    options: MulticlassOptions,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """Check every tensor but the class weight; return them, ``target`` and the weights flat as ``(N,)``."""
    num_classes = options.num_classes
    hidden, target = _check_hidden(hidden, target, options.validate_args)
    d = hidden.shape[-1]
    weight = _check_operand("linear_weight", linear_weight, hidden)
    if weight.ndim != 2 or weight.shape[0] < 2 or weight.shape[1] != d:
        raise ValueError(
            f"`linear_weight` must have shape (V, {d}): V >= 2 classes, the {d} features of `hidden` "
            f"(nn.Linear({d}, V).weight), got {tuple(weight.shape)}."
        )
    classes = weight.shape[0]
    if num_classes is not None and classes != num_classes:
        raise ValueError(
            f"`linear_weight` has {classes} rows (shape {tuple(weight.shape)}) but num_classes={num_classes}."
        )
    bias = None if linear_bias is None else _check_operand("linear_bias", linear_bias, hidden)
    if bias is not None and tuple(bias.shape) != (classes,):
        raise ValueError(
            f"`linear_bias` must have shape ({classes},), one value per row of `linear_weight`, got "
            f"{tuple(bias.shape)}."
        )
    _validation.check_ignore_index_fits(target, options.ignore_index)
    if isinstance(sample_weight, Tensor):
        _validation.check_device("sample_weight", sample_weight, hidden, "hidden")
    shapes = [hidden.shape[:-1], hidden.shape[:1]]  # per token, or per sequence for (B, L, d)
    sample = _validation.check_sample_weight(sample_weight, shapes, hidden, options.validate_args)
    if sample is not None and sample.shape != target.shape:
        sample = sample.reshape(-1, *[1] * (target.ndim - 1)).expand(target.shape)
    if options.validate_args:
        for name, value in (("hidden", hidden), ("linear_weight", weight), ("linear_bias", bias)):
            if value is not None:
                _validation.check_finite(name, value)
        _validation.check_class_indices(target, classes, options.ignore_index)
    return hidden, weight, target.reshape(-1), bias, None if sample is None else sample.reshape(-1)


def linear_cross_entropy(
    hidden: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    average: str | None = "micro",
    validate_args: bool = True,
    block_size: int | None = None,
) -> Tensor:
    r"""Cross-entropy of ``hidden @ linear_weight.T + linear_bias`` against class indices, without the logits.

    .. math::
        \mathrm{CE} = -\frac{\sum_i w_i \log \mathrm{softmax}(W h_i + b)_{y_i}}{\sum_i w_i},
        \qquad w_i = s_i \, c_{y_i}

    the value of ``F.cross_entropy(F.linear(hidden, linear_weight, linear_bias), target)`` (with
    the options of :func:`multiclass_cross_entropy`), computed a block of tokens at a time: the
    ``(N, V)`` logits never exist, only one block of at most
    :data:`~xent_metrics.functional._head_ce.BLOCK_BYTES` (8 MiB).

    Parameters
    ----------
    hidden : Tensor of shape (N, d) or (B, L, d)
        The input features of the linear head (a language model's last hidden states), features last.
    linear_weight : Tensor of shape (V, d)
        The head's weight (``nn.Linear(d, V).weight``), in ``hidden``'s dtype and on its device.
    target : Tensor of shape (N,) or (B, L)
        Integer class indices (token ids) in ``[0, V - 1]``, or ``ignore_index``.
    linear_bias : Tensor of shape (V,), optional
        The head's bias.
    weight : Tensor of shape (V,), optional
        Class weights (torch semantics: each token weighs ``weight[target]`` in both sums).
    sample_weight : Tensor of shape (N,), (B, L) or (B,), optional
        Non-negative weight per token, or per sequence for ``(B, L, d)`` inputs.
    ignore_index : int, optional
        Targets equal to it drop out. On the CPU (and wherever ``validate_args=True``) those tokens
        are removed before the projection, so they cost nothing.
    label_smoothing : float in [0, 1), default=0.0
        Targets become ``(1 - eps) onehot + eps / V`` (torch's rule), on the blockwise path.
    average : {"micro", "macro", "none"} or None, default="micro"
        ``None`` means ``"none"`` (torchmetrics' spelling).
        As in :func:`multiclass_cross_entropy`: the weighted mean over tokens, the mean per true
        class (shape ``(V,)``), or the mean of those.
    validate_args : bool, default=True
        Check values (finite inputs, indices in range: host reads); shapes, dtypes and devices are
        always checked.
        With ``False`` nothing is read back from the device (the "no data" and "macro skipped" warnings
        are off too: the result is ``nan`` where they would warn), and a ``meta`` batch is accepted.
    block_size : int, optional
        Tokens per block; default: as many as fit
        :data:`~xent_metrics.functional._head_ce.BLOCK_BYTES` of logits.

    Shape
    -----
    - ``hidden``: ``(N, d)`` or ``(B, L, d)``, features last.
    - ``linear_weight``: ``(V, d)``.
    - ``target``: ``(N,)`` or ``(B, L)``.
    - ``linear_bias``: ``(V,)``.
    - ``weight``: ``(V,)``.
    - ``sample_weight``: ``(N,)``, or ``(B, L)`` / ``(B,)`` for ``(B, L, d)`` hidden states.
    - Output: ``()``, or ``(V,)`` with ``average="none"``.

    Returns
    -------
    Tensor
        A float64 scalar, or shape ``(V,)`` for ``average="none"``.

    Raises
    ------
    TypeError
        ``hidden`` not floating, ``target`` not integer, ``linear_weight`` / ``linear_bias`` of
        another dtype than ``hidden``, or an option of the wrong type.
    ValueError
        Shapes that do not match, tensors on different devices, NaN or inf, indices out of range,
        negative or all-zero weights, an unknown option.

    See Also
    --------
    multiclass_cross_entropy : The same loss from logits.
    torch.nn.functional.linear_cross_entropy : torch's loss (a float32 mean per call), whose argument
        names this follows.

    Notes
    -----
    Each block goes through the same float64-accumulating kernel as
    :func:`multiclass_cross_entropy`, so the result equals that function on the full logits up to
    the matmul's rounding of each logit. What depends on the block size is that rounding alone: the
    BLAS may round a logit differently for another number of rows (a few float32 ulps of the logit),
    never the reduction. With a fixed ``block_size`` the result is reproducible bit for bit.
    float16 and bfloat16 operands give float32 logits (a float32 GEMM on the widened values, the
    head widened one block of rows at a time): the result is within 2e-6 of the float64 loss of the
    given values, as for float32 inputs.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import linear_cross_entropy
    >>> hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> head = torch.zeros(4, 2)  # every logit 0: a uniform distribution over 4 classes
    >>> linear_cross_entropy(hidden, head, torch.tensor([0, 3, -100]), ignore_index=-100)  # log(4)
    tensor(1.3863, dtype=torch.float64)
    """
    options = LinearOptions(  # average=None is read as "none" there
        None, "logits", weight, ignore_index, label_smoothing, average,  # type: ignore[arg-type]
        validate_args, False, block_size
    )
    checked = _linear_tensor_validation(hidden, linear_weight, target, linear_bias, sample_weight, options)
    if weight is not None:
        if isinstance(weight, Tensor):
            _validation.check_device("weight", weight, checked[0], "hidden")
        _validation.check_class_weight("weight", weight, checked[1].shape[0], checked[0], validate_args)
    sums = linear_sums(*checked, options, block_size)
    return cross_entropy_from_sums(sums, options.average, warn=validate_args)
