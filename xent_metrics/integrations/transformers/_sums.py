"""Per-sequence float64 sums of a language model's token loss, from hidden states and a linear head or from logits.

Plain torch (no ``transformers``): thin adapters over :mod:`xent_metrics.functional`, one call per sequence.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from xent_metrics.functional import linear_cross_entropy, multiclass_cross_entropy

#: Hugging Face's label for a position that is not scored (padding, a prompt).
IGNORE_INDEX = -100
#: Columns of the per-sequence sums: summed token loss (nats), scored tokens, bytes of the scored text.
LOSS, TOKENS, BYTES = 0, 1, 2


def _check_labels(labels: object, shape: tuple[int, ...], what: str) -> Tensor:
    """``labels``: integer ``(B, L)``, the leading shape of ``what``."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"`labels` must be a tensor of token ids, got {type(labels).__name__}.")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"`labels` must hold integer token ids (or -100), got dtype {labels.dtype}.")
    if labels.ndim != 2 or tuple(labels.shape) != shape:
        raise ValueError(
            f"`labels` must have shape (B, L) = {shape}, one token id per position of {what}, got "
            f"{tuple(labels.shape)}. Pass the batch's `labels` (the input ids, -100 where not scored)."
        )
    return labels


def _check_bytes(num_bytes: object, batch: int, device: torch.device) -> Tensor | None:
    """``num_bytes``: ``None`` or ``(B,)`` non-negative byte counts, one per sequence, as float64."""
    if num_bytes is None:
        return None
    if not isinstance(num_bytes, Tensor) or num_bytes.is_floating_point() or num_bytes.dtype == torch.bool:
        seen = f"dtype {num_bytes.dtype}" if isinstance(num_bytes, Tensor) else type(num_bytes).__name__
        raise TypeError(f"`num_bytes` must be an integer tensor of byte counts, one per sequence, got {seen}.")
    if tuple(num_bytes.shape) != (batch,):
        raise ValueError(
            f"`num_bytes` must have shape ({batch},), one byte count per sequence of the batch, got "
            f"{tuple(num_bytes.shape)}."
        )
    if bool((num_bytes < 0).any()):
        raise ValueError(f"`num_bytes` must be non-negative byte counts, got a minimum of {int(num_bytes.min())}.")
    return num_bytes.to(device=device, dtype=torch.float64)


def _sequence_sums(
    name: str,
    values: object,
    expected: str,
    labels: object,
    num_bytes: object,
    shift: bool,
    row_mean: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Check a batch; return ``(B, 3)`` float64 sums: per row, its kept-token count times ``row_mean`` and its bytes.

    ``row_mean(positions, targets)`` gets one sequence's ``(L', ...)`` positions and their targets (shifted
    for causal language modelling). A row with no kept tokens adds nothing, and ``row_mean`` is not called for it.
    """
    if not isinstance(values, Tensor) or values.ndim != 3:
        seen = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"`{name}` must {expected}, got {seen}.")
    labels = _check_labels(labels, tuple(values.shape[:2]), f"`{name}` {tuple(values.shape)}")
    bytes_ = _check_bytes(num_bytes, values.shape[0], labels.device)
    positions, targets = (values[:, :-1], labels[:, 1:]) if shift else (values, labels)  # t predicts token t + 1
    counts = (targets != IGNORE_INDEX).sum(1)
    sums = torch.zeros(labels.shape[0], 3, dtype=torch.float64, device=labels.device)
    sums[:, TOKENS] = counts.to(torch.float64)
    if bytes_ is not None:
        sums[:, BYTES] = bytes_
    for row in counts.nonzero().flatten().tolist():
        sums[row, LOSS] = row_mean(positions[row], targets[row]) * sums[row, TOKENS]
    return sums


def sequence_sums_from_hidden(
    hidden: Tensor,
    labels: Tensor,
    linear_weight: Tensor,
    linear_bias: Tensor | None = None,
    num_bytes: Tensor | None = None,
    *,
    shift: bool = True,
    validate_args: bool = True,
) -> Tensor:
    r"""Per-sequence float64 loss sums of a linear head on hidden states, without the ``(B, L, V)`` logits.

    .. math::
        s_b = -\sum_{t:\ y_{b,t+1} \ne -100} \log \mathrm{softmax}(W h_{b,t} + c)_{y_{b,t+1}}

    Parameters
    ----------
    hidden : Tensor of shape (B, L, d)
        The body's last hidden states.
    labels : Tensor of shape (B, L)
        Token ids, ``-100`` where a position is not scored (Hugging Face's labels).
    linear_weight : Tensor of shape (V, d)
        The output head's weight, in ``hidden``'s dtype.
    linear_bias : Tensor of shape (V,), optional
        The output head's bias.
    num_bytes : Tensor of shape (B,), optional
        Integer byte counts of the scored text, one per sequence (for bits per byte).
    shift : bool, default=True
        Causal language modelling: position ``t`` predicts ``labels[:, t + 1]`` (as the model's own
        loss shifts). ``False`` scores ``labels[:, t]`` at ``t`` (masked language models).
    validate_args : bool, default=True
        Passed to :func:`~xent_metrics.functional.linear_cross_entropy`.

    Shape
    -----
    - ``hidden``: ``(B, L, d)``.
    - ``labels``: ``(B, L)``.
    - ``linear_weight``: ``(V, d)``.
    - ``linear_bias``: ``(V,)``.
    - ``num_bytes``: ``(B,)``.
    - Output: ``(B, 3)``.

    Returns
    -------
    Tensor of shape (B, 3)
        float64 columns: the summed token loss in nats, the number of scored tokens, the bytes
        (0 without ``num_bytes``). A row with no scored token is all zeros (bytes aside).

    Raises
    ------
    TypeError, ValueError
        ``labels`` or ``num_bytes`` of the wrong dtype or shape, and whatever
        :func:`~xent_metrics.functional.linear_cross_entropy` refuses.

    Examples
    --------
    >>> import torch
    >>> hidden, head = torch.randn(2, 4, 3), torch.zeros(5, 3)  # every logit 0: log(5) nats per token
    >>> labels = torch.tensor([[1, 2, 3, -100], [-100, -100, -100, -100]])
    >>> sequence_sums_from_hidden(hidden, labels, head)  # 2 scored tokens (2 -> 3 is shifted in), none
    tensor([[3.2189, 2.0000, 0.0000],
            [0.0000, 0.0000, 0.0000]], dtype=torch.float64)
    """

    def row_mean(positions: Tensor, targets: Tensor) -> Tensor:
        return linear_cross_entropy(
            positions, linear_weight, targets, linear_bias=linear_bias, ignore_index=IGNORE_INDEX,
            validate_args=validate_args,
        )  # fmt: skip

    return _sequence_sums("hidden", hidden, "be the (B, L, d) last hidden states", labels, num_bytes, shift, row_mean)


def sequence_sums_from_logits(
    logits: Tensor | tuple[Tensor, ...],
    labels: Tensor,
    num_bytes: Tensor | None = None,
    *,
    shift: bool = True,
    validate_args: bool = True,
) -> Tensor:
    """Per-sequence float64 loss sums from a batch of ``(B, L, V)`` logits: the fallback, and a stock Trainer's hook.

    The same sums as :func:`sequence_sums_from_hidden`, from logits already built (a tuple of model
    outputs: its first element). As ``Trainer(preprocess_logits_for_metrics=sequence_sums_from_logits,
    compute_metrics=PerplexityMetrics())`` it reduces each batch's logits before the Trainer keeps
    them, so only ``(B, 3)`` per batch is kept; the logits of one batch still exist.

    Parameters
    ----------
    logits : Tensor of shape (B, L, V), or a tuple whose first element is
        The model's logits (the Trainer pads ``L`` across processes with ``-100``; those positions
        have ``-100`` labels and drop out).
    labels : Tensor of shape (B, L)
        Token ids, ``-100`` where a position is not scored.
    num_bytes : Tensor of shape (B,), optional
        Integer byte counts of the scored text, one per sequence.
    shift : bool, default=True
        Causal language modelling: position ``t`` predicts ``labels[:, t + 1]``.
    validate_args : bool, default=True
        Passed to :func:`~xent_metrics.functional.multiclass_cross_entropy`: with ``True`` the values
        are checked (a host read).

    Shape
    -----
    - ``logits``: ``(B, L, V)``.
    - ``labels``: ``(B, L)``.
    - ``num_bytes``: ``(B,)``.
    - Output: ``(B, 3)``.

    Returns
    -------
    Tensor of shape (B, 3)
        As :func:`sequence_sums_from_hidden`.

    Raises
    ------
    TypeError, ValueError
        ``labels`` or ``num_bytes`` of the wrong dtype or shape, ``logits`` not ``(B, L, V)``.

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens
    >>> sequence_sums_from_logits(logits, torch.tensor([[0, 1, 2]]))  # 2 tokens of log(4) nats
    tensor([[2.7726, 2.0000, 0.0000]], dtype=torch.float64)
    """
    if isinstance(logits, (tuple, list)):
        logits = logits[0]

    def row_mean(positions: Tensor, targets: Tensor) -> Tensor:
        return multiclass_cross_entropy(positions, targets, ignore_index=IGNORE_INDEX, validate_args=validate_args)

    return _sequence_sums("logits", logits, "have shape (B, L, V), vocabulary last", labels, num_bytes, shift, row_mean)
