"""``cross_entropy`` and ``normalized_entropy``: one entry point with a ``task`` argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional.binary import binary_cross_entropy, binary_normalized_entropy
from xent_metrics.functional.multiclass import multiclass_cross_entropy, multiclass_normalized_entropy
from xent_metrics.functional.multilabel import multilabel_cross_entropy, multilabel_normalized_entropy

Task = Literal["binary", "multiclass", "multilabel"]

_CROSS_ENTROPY: dict[str, Callable[..., Tensor]] = {
    "binary": binary_cross_entropy,
    "multiclass": multiclass_cross_entropy,
    "multilabel": multilabel_cross_entropy,
}
_NORMALIZED_ENTROPY: dict[str, Callable[..., Tensor]] = {
    "binary": binary_normalized_entropy,
    "multiclass": multiclass_normalized_entropy,
    "multilabel": multilabel_normalized_entropy,
}


def cross_entropy(preds: Tensor, target: Tensor, *, task: Task, **options: Any) -> Tensor:
    """Cross-entropy for ``task``: dispatch to the binary, multiclass or multilabel function.

    Parameters
    ----------
    preds, target : Tensor
        As the task's function takes them.
    task : {"binary", "multiclass", "multilabel"}
        Which cross-entropy; never inferred from the data.
    **options
        Keyword options of the task's function (for example ``input_format``, ``num_classes``).

    Shape
    -----
    - ``preds``, ``target``: as the task's function takes them: ``(N, ...)`` both (binary); ``(N, C, ...)``
      and ``(N, ...)`` class indices or ``(N, C, ...)`` probabilities (multiclass); ``(N, K, ...)`` both
      (multilabel).
    - Output: ``()``, or ``(C,)`` / ``(K,)`` with ``average="none"``.

    Returns
    -------
    Tensor
        What the task's function returns.

    Raises
    ------
    ValueError
        Unknown ``task``.
    TypeError
        An option the task's function does not take.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import cross_entropy
    >>> cross_entropy(torch.tensor([0.9, 0.3]), torch.tensor([1, 0]), task="binary", input_format="probs")
    tensor(0.2310, dtype=torch.float64)
    """
    _validation.check_choice("task", task, _validation.TASKS)
    return _CROSS_ENTROPY[task](preds, target, **options)


def normalized_entropy(preds: Tensor, target: Tensor, *, task: Task, **options: Any) -> Tensor:
    """Normalized entropy for ``task``; see :func:`cross_entropy` for the arguments.

    Shape
    -----
    - ``preds``, ``target``: as in :func:`cross_entropy`.
    - Output: ``()``, or ``(C,)`` / ``(K,)`` with ``average="none"``.

    Returns
    -------
    Tensor
        What the task's normalized-entropy function returns.

    Examples
    --------
    >>> import torch
    >>> from xent_metrics.functional import normalized_entropy
    >>> normalized_entropy(torch.zeros(2), torch.tensor([1, 0]), task="binary")
    tensor(1., dtype=torch.float64)
    """
    _validation.check_choice("task", task, _validation.TASKS)
    return _NORMALIZED_ENTROPY[task](preds, target, **options)
