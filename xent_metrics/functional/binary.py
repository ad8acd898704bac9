"""Binary cross-entropy and normalized entropy."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional._bce import bce_sums
from xent_metrics.functional._options import BinaryOptions
from xent_metrics.functional._sums import cross_entropy_from_sums, normalized_entropy_from_sums


def _binary_tensor_validation(
    preds: object, target: object, sample_weight: object, options: BinaryOptions
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Check types and shapes (always) and values (with ``options.validate_args``).

    Return the batch as one label: ``(N, 1, ...)`` scores and targets, the sample weight as ``(N,)``
    or ``(N, ...)`` (a scalar batch is one sample).
    """
    validate_args, ignore_index = options.validate_args, options.ignore_index
    preds = _validation.check_float_preds(preds, not validate_args)
    target = _validation.check_tensor("target", target, not validate_args)
    _validation.check_device("target", target, preds)
    _validation.check_ignore_index_fits(target, ignore_index)
    if preds.shape != target.shape:
        raise ValueError(
            f"`preds` and `target` must have the same shape for the binary task, got {tuple(preds.shape)} and "
            f"{tuple(target.shape)}."
        )
    shapes = [target.shape[:1], target.shape] if target.ndim else [target.shape]
    weight = _validation.check_sample_weight(sample_weight, shapes, preds, validate_args)
    if validate_args:
        _validation.check_preds_values(preds, options.input_format)
        _validation.check_binary_target_values(target, ignore_index)
    if preds.ndim == 0:
        return preds.reshape(1, 1), target.reshape(1, 1), None if weight is None else weight.reshape(1)
    return preds.unsqueeze(1), target.unsqueeze(1), weight


def _binary_pos_weight(pos_weight: Tensor | float | None, preds: Tensor, validate_args: bool) -> Tensor | None:
    """Accept a float or a one-element tensor; return a one-element tensor on ``preds``' device."""
    if pos_weight is None:
        return None
    if isinstance(pos_weight, int | float) and not isinstance(pos_weight, bool):
        pos_weight = torch.tensor([float(pos_weight)], dtype=torch.float64, device=preds.device)
    pos = _validation.check_tensor("pos_weight", pos_weight)
    if pos.numel() != 1:
        raise ValueError(f"`pos_weight` for the binary task must be a scalar, got shape {tuple(pos.shape)}.")
    return _validation.check_class_weight("pos_weight", pos.reshape(1), 1, preds, validate_args)


def _binary_sums(preds: object, target: object, sample_weight: object, options: BinaryOptions) -> Tensor:
    """Validate a batch (its ``pos_weight`` too) and return its ``(3, 1)`` float64 sums."""
    preds, target, sample = _binary_tensor_validation(preds, target, sample_weight, options)
    if options.pos_weight is not None:
        pos = _binary_pos_weight(options.pos_weight, preds, options.validate_args)
        options = dataclasses.replace(options, pos_weight=pos)
    return bce_sums(preds, target, options, sample)


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
        Targets become ``y (1 - eps) + eps / 2`` (Keras' rule).
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
    options = BinaryOptions(input_format, pos_weight, ignore_index, label_smoothing, bool(validate_args))
    return cross_entropy_from_sums(_binary_sums(preds, target, sample_weight, options), "micro", warn=validate_args)


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
    options = BinaryOptions(input_format, pos_weight, ignore_index, label_smoothing, bool(validate_args))
    sums = _binary_sums(preds, target, sample_weight, options)
    return normalized_entropy_from_sums(sums, "micro", warn=validate_args)
