"""Cross-entropy of a linear head, ``hidden @ linear_weight.T (+ linear_bias)``, without building the logits.

The public function and the checks of its inputs; the blockwise kernel is
:mod:`xent_metrics.functional._head_ce`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from xent_metrics.functional import _head_ce, _validation
from xent_metrics.functional._sums import task_cross_entropy


@dataclass(frozen=True, kw_only=True)
class HeadTask:
    """The hidden-state task: :func:`linear_cross_entropy`'s options, checked once, and the steps every face calls.

    ``check_batch`` checks hidden states, the head and targets (the class ``weight`` against them),
    ``sums`` returns the ``(3, V)`` float64 sums per class (or their ``(3, 1)`` totals) without
    building the logits, ``cross_entropy`` gives the value from sums. The head reads logits.

    Each step is the function of the module that owns it, bound here as a method (so a call goes down
    the layers once): ``check_batch`` from :mod:`~xent_metrics.functional._validation`, ``sums`` from
    the kernel, the values from :mod:`~xent_metrics.functional._sums`.
    """

    entries: ClassVar[str] = "classes"

    input_format: ClassVar[str] = "logits"
    fused: ClassVar[bool] = False
    num_classes: int | None = None
    weight: Tensor | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    average: str | None = "micro"
    validate_args: bool = True
    block_size: int | None = None

    def __post_init__(self) -> None:  # the flag before the block size and ``average``, unlike the other tasks
        _validation.check_common_args("logits", self.ignore_index, self.label_smoothing)
        _validation.check_flag("validate_args", self.validate_args)
        _validation.check_count("block_size", self.block_size)
        _validation.check_count("num_classes", self.num_classes)
        object.__setattr__(self, "average", _validation.check_average(self.average))
        object.__setattr__(self, "label_smoothing", float(self.label_smoothing))

    #: Checks every tensor (the class weight too); returns them, ``target`` and the weights flat as ``(N,)``.
    check_batch = _validation.check_head_batch

    #: The ``(3, V)`` float64 sums of a checked batch, or with ``per_class=False`` their ``(3, 1)`` totals,
    #: without building the logits.
    sums = _head_ce.batch_sums

    #: The cross-entropy of sums for ``average``; ``warn``: warn (a host read) of no data or skipped classes.
    cross_entropy = task_cross_entropy


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
    the options of :func:`multiclass_cross_entropy`), computed a block of tokens by vocabulary rows at a
    time: the ``(N, V)`` logits never exist, only one block of at most
    :data:`~xent_metrics.functional._chunks.HEAD_BLOCK_BYTES` (8 MiB: 512 tokens by 4096 rows of float32).

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
        Targets become ``(1 - s) onehot + s / V``, ``s`` the ``label_smoothing`` (torch's rule).
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
        :data:`~xent_metrics.functional._chunks.HEAD_BLOCK_BYTES` of logits of one block of vocabulary rows.

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
        The float64 loss: the mean over tokens, or one value per class for ``average="none"``.

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
    Each block is one GEMM; per token, float64 sums are carried across the vocabulary blocks in the exact form
    of :func:`multiclass_cross_entropy`: on the CPU ``log1p(R / exp(z_t))`` with ``R`` the sum of the other
    classes' exponentials (tokens whose terms leave the dtype's range take the float64 form), off the CPU
    ``softplus(logsumexp_{j != t} z_j - z_t)`` in float64 for every token (no host read; the op count depends
    on the number of blocks alone). Both are never negative and exact on confident rows, so the result equals
    ``F.cross_entropy`` of the full logits in float64 up to the matmul's rounding of each logit.

    How the value depends on the block plan (``block_size`` tokens by the plan's vocabulary rows): the BLAS
    may round a logit differently for another block shape (a few float32 ulps of the logit), and a token's
    float64 sums over the vocabulary blocks are added in the plan's order (a change in the last float64
    digits). Nothing else: a fixed plan gives the same bits on every run.
    float16 and bfloat16 operands give float32 logits (a float32 GEMM on the widened values, the
    head widened one block of rows at a time): the result is within 2e-6 of the float64 loss of the
    given values, as for float32 inputs. Label smoothing's sum over classes is
    ``h . (sum_c c_c W_c) (+ c . b)`` in float64, one product per token, not a pass over the logits.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import linear_cross_entropy
    >>> hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> head = torch.zeros(4, 2)  # every logit 0: a uniform distribution over 4 classes
    >>> linear_cross_entropy(hidden, head, torch.tensor([0, 3, -100]), ignore_index=-100)  # log(4)
    tensor(1.3863, dtype=torch.float64)
    """
    task = HeadTask(
        weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing, average=average,
        validate_args=validate_args, block_size=block_size
    )
    batch = task.check_batch(hidden, linear_weight, target, linear_bias, sample_weight)
    return task.cross_entropy(task.sums(batch), warn=task.validate_args)
