"""Checks of arguments and of a batch's metadata (types, dtypes, shapes, devices), shared by every task and face.

Every message names the argument, what was seen and what was expected. Wrong types raise
``TypeError``, wrong values or shapes ``ValueError``. Nothing here reads a tensor's values, so these
checks always run; each task's batch check (``check_*_batch``, bound as the task's ``check_batch``)
ends, with ``validate_args=True``, in the checks of values of
:mod:`xent_metrics.functional._value_checks` (a host sync off the CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from xent_metrics.functional import _value_checks

INPUT_FORMATS = ("logits", "probs", "log_probs")
AVERAGES = ("micro", "macro", "none")
TASKS = ("binary", "multiclass", "multilabel")


class Batch(NamedTuple):
    """A checked batch of scores, as a task's ``check_batch`` returns it and its ``sums`` takes it."""

    preds: Tensor
    target: Tensor
    sample_weight: Tensor | None


class HeadBatch(NamedTuple):
    """A checked batch of a linear head: ``target`` and ``sample_weight`` flat, one entry per token."""

    hidden: Tensor
    linear_weight: Tensor
    target: Tensor
    linear_bias: Tensor | None
    sample_weight: Tensor | None


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}.")


def check_average(average: object, choices: Sequence[str] = AVERAGES) -> str:
    """Return ``average`` checked against ``choices``, ``None`` read as ``"none"`` (torchmetrics' spelling)."""
    if average is None:
        if "none" in choices:
            return "none"
        raise ValueError(
            f"`average` must be one of {list(choices)}, got None (torchmetrics' spelling of 'none', per-class "
            "values, which are not taken here)."
        )
    check_choice("average", average, choices)
    return average  # type: ignore[return-value]


def check_format_and_average(
    input_format: object, average: object, formats: Sequence[str] = INPUT_FORMATS, averages: Sequence[str] = AVERAGES
) -> str:
    """Check ``input_format`` against ``formats`` and ``average`` against ``averages``; return ``average``.

    ``None`` is read as ``"none"`` (:func:`check_average`). The scikit-learn face passes its own order of
    the formats (``"probs"`` first) and of the averages its scorers take.
    """
    check_choice("input_format", input_format, formats)
    return check_average(average, averages)


def check_common_args(input_format: str, ignore_index: int | None, label_smoothing: float) -> None:
    """Validate the options every task shares."""
    check_choice("input_format", input_format, INPUT_FORMATS)
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"`ignore_index` must be an int or None, got {type(ignore_index).__name__} {ignore_index!r}.")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, int | float):
        raise TypeError(f"`label_smoothing` must be a float in [0, 1), got {type(label_smoothing).__name__}.")
    if not (0.0 <= label_smoothing < 1.0) or math.isnan(label_smoothing):
        raise ValueError(f"`label_smoothing` must be in [0, 1), got {label_smoothing!r}.")


def check_task_options(
    input_format: str,
    ignore_index: int | None,
    label_smoothing: float,
    *,
    validate_args: object,
    count: tuple[str, int | None] | None = None,
    average: object = "micro",
    fused: object = False,
) -> tuple[float, str]:
    """Check a task's options, in one order for every task; return the smoothing as a float and ``average``.

    ``count`` is ``("num_classes", value)`` or ``("num_labels", value)``; ``average`` ``None`` is read
    as ``"none"`` (:func:`check_average`).
    """
    if count is not None:
        check_count(*count)
    check_common_args(input_format, ignore_index, label_smoothing)
    average = check_average(average)
    check_flag("validate_args", validate_args)
    check_flag("fused", fused)
    return float(label_smoothing), average


def check_flag(name: str, value: object) -> bool:
    """Raise ``TypeError`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {type(value).__name__} {value!r}.")
    return value


def check_count(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int or None, got {type(value).__name__} {value!r}.")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value}.")


def check_tensor(name: str, value: object, meta_ok: bool = False) -> Tensor:
    """A real tensor; a meta tensor (no data) only where no value is read (``meta_ok``: ``validate_args=False``)."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"`{name}` must be a torch.Tensor, got {type(value).__name__}. Convert with torch.as_tensor(...) first."
        )
    if value.is_complex():
        raise TypeError(f"`{name}` must be real-valued, got dtype {value.dtype}.")
    if value.is_meta and not meta_ok:
        raise ValueError(
            f"`{name}` is on the meta device and holds no data; expected a tensor on cpu or cuda (a meta batch is "
            "accepted with validate_args=False, which reads no value)."
        )
    return value


def check_float_preds(preds: object, meta_ok: bool = False) -> Tensor:
    preds = check_tensor("preds", preds, meta_ok)
    if not preds.is_floating_point():
        raise TypeError(
            f"`preds` must be a floating point tensor (logits, probabilities or log-probabilities), got dtype "
            f"{preds.dtype}. Integer predictions look like class labels: pass scores, e.g. `preds.float()`."
        )
    return preds


def check_device(name: str, value: Tensor, preds: Tensor, preds_name: str = "preds") -> None:
    if value.device != preds.device:
        raise ValueError(
            f"`{name}` is on device {value.device} but `{preds_name}` is on {preds.device}; move both to one."
        )


def check_on_state_device(preds: object, state: Tensor) -> None:
    """A metric's inputs must live where its state does (metadata only: no host sync)."""
    if isinstance(preds, Tensor) and not (preds.is_cpu and state.is_cpu) and preds.device != state.device:
        raise ValueError(
            f"`preds` is on device {preds.device} but the metric state is on {state.device}; move the "
            f"metric with `metric.to({str(preds.device)!r})` (a LightningModule attribute moves by itself)."
        )


def check_pair(preds: object, target: object, ignore_index: int | None, validate_args: bool) -> tuple[Tensor, Tensor]:
    """``preds`` a floating tensor, ``target`` a tensor on its device whose dtype holds ``ignore_index``."""
    preds = check_float_preds(preds, not validate_args)
    target = check_tensor("target", target, not validate_args)
    if not (target.is_cpu and preds.is_cpu):  # is_cpu: no device objects built, once per step
        check_device("target", target, preds)
    if ignore_index is not None:
        check_ignore_index_fits(target, ignore_index)
    return preds, target


def check_ignore_index_fits(target: Tensor, ignore_index: int | None) -> None:
    """Refuse an ``ignore_index`` an integer ``target`` dtype cannot hold: torch would compare it wrapped.

    ``uint8`` targets with ``ignore_index=-1`` would drop every 255, and with ``ignore_index=256`` every 0.
    Metadata only (no host sync). bool and floating targets compare by value and are not affected.
    """
    if ignore_index is None or target.is_floating_point() or target.dtype == torch.bool:
        return
    info = torch.iinfo(target.dtype)
    if not info.min <= ignore_index <= info.max:
        raise ValueError(
            f"`ignore_index`={ignore_index} does not fit `target` dtype {target.dtype} (values {info.min} to "
            f"{info.max}); torch would compare it wrapped. Pass int64 targets, e.g. `target.long()`."
        )


def check_sample_weight(
    sample_weight: object, allowed_shapes: Sequence[torch.Size], preds: Tensor, meta_ok: bool
) -> Tensor | None:
    """Return ``sample_weight`` as a tensor after checking its type, device and shape (its values: see the batch)."""
    if sample_weight is None:
        return None
    weight = check_tensor("sample_weight", sample_weight, meta_ok)
    check_device("sample_weight", weight, preds)
    if tuple(weight.shape) not in [tuple(s) for s in allowed_shapes]:
        expected = " or ".join(str(tuple(s)) for s in dict.fromkeys(tuple(s) for s in allowed_shapes))
        raise ValueError(f"`sample_weight` must have shape {expected}, got {tuple(weight.shape)}.")
    return weight


def check_class_weight(name: str, weight: object, size: int, preds: Tensor, meta_ok: bool) -> Tensor | None:
    """Check the type, device and length ``size`` of a per-class (``weight``) or per-label (``pos_weight``) vector."""
    if weight is None:
        return None
    weight = check_tensor(name, weight, meta_ok)
    check_device(name, weight, preds)
    if weight.shape != (size,):
        raise ValueError(
            f"`{name}` must have shape ({size},), one value per class or label, got {tuple(weight.shape)}."
        )
    return weight


def check_scalar_weight(name: str, weight: object, preds: Tensor, meta_ok: bool = False) -> Tensor:
    """Check a one-element weight tensor (the binary task's ``pos_weight``) against a batch; return it as ``(1,)``."""
    weight = check_tensor(name, weight, meta_ok)
    if weight.numel() != 1:
        raise ValueError(f"`{name}` for the binary task must be a scalar, got shape {tuple(weight.shape)}.")
    check_device(name, weight, preds)
    return weight.reshape(1)


def check_binary_batch(task: Any, preds: object, target: object, sample_weight: object = None) -> Batch:
    """The binary task's ``check_batch``: one label's batch, ``(N, 1, ...)`` scores and targets.

    The sample weight is ``(N,)`` or ``(N, ...)`` (a scalar batch is one sample). A float
    ``pos_weight`` was checked with the options; a tensor one is checked against the batch here.
    """
    preds, target = check_pair(preds, target, task.ignore_index, task.validate_args)
    if preds.shape != target.shape:
        raise ValueError(
            f"`preds` and `target` must have the same shape for the binary task, got {tuple(preds.shape)} and "
            f"{tuple(target.shape)}."
        )
    shapes = [target.shape[:1], target.shape] if target.ndim else [target.shape]
    weight = check_sample_weight(sample_weight, shapes, preds, not task.validate_args)
    pos = task.pos_weight  # a number was checked with the options
    if pos is not None and not is_number(pos):
        pos = check_scalar_weight("pos_weight", pos, preds, not task.validate_args)
    else:
        pos = None
    if task.validate_args:
        _value_checks.check_label_values(
            preds, target, task.input_format, task.ignore_index, ("sample_weight", weight), ("pos_weight", pos)
        )
    if preds.ndim == 0:
        return Batch(preds.reshape(1, 1), target.reshape(1, 1), None if weight is None else weight.reshape(1))
    return Batch(preds.unsqueeze(1), target.unsqueeze(1), weight)


def is_number(value: object) -> bool:
    """A real number, not a bool (the binary task's ``pos_weight`` may be given as a float)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_multilabel_batch(task: Any, preds: object, target: object, sample_weight: object = None) -> Batch:
    """The multilabel task's ``check_batch``: ``(N, K, ...)`` scores and targets; ``pos_weight`` against them."""
    preds, target = check_pair(preds, target, task.ignore_index, task.validate_args)
    if preds.ndim < 2:
        raise ValueError(
            f"`preds` for the multilabel task must have shape (N, K, ...), got {tuple(preds.shape)}. "
            "For a single label use the binary task."
        )
    if preds.shape != target.shape:
        raise ValueError(
            f"`preds` and `target` must have the same shape (N, K, ...) for the multilabel task, got "
            f"{tuple(preds.shape)} and {tuple(target.shape)}."
        )
    if task.num_labels is not None and preds.shape[1] != task.num_labels:
        raise ValueError(
            f"`preds` has {preds.shape[1]} labels in dimension 1 (shape {tuple(preds.shape)}) but "
            f"num_labels={task.num_labels}."
        )
    positions = preds.shape[:1] + preds.shape[2:]
    weight = check_sample_weight(sample_weight, [preds.shape[:1], positions], preds, not task.validate_args)
    pos = check_class_weight("pos_weight", task.pos_weight, preds.shape[1], preds, not task.validate_args)
    if task.validate_args:
        _value_checks.check_label_values(
            preds, target, task.input_format, task.ignore_index, ("sample_weight", weight), ("pos_weight", pos)
        )
    return Batch(preds, target, weight)


def check_multiclass_batch(task: Any, preds: object, target: object, sample_weight: object = None) -> Batch:
    """The multiclass task's ``check_batch``: ``(N, C, ...)`` scores, class indices or soft targets, class weight."""
    preds, target = check_pair(preds, target, task.ignore_index, task.validate_args)
    soft = multiclass_target_kind(preds, target, task.num_classes, task.ignore_index)
    weight = classes = None  # skipped when absent: this runs once per step
    if sample_weight is not None:
        positions = preds.shape[:1] + preds.shape[2:]
        weight = check_sample_weight(sample_weight, [preds.shape[:1], positions], preds, not task.validate_args)
    if task.weight is not None:
        classes = check_class_weight("weight", task.weight, preds.shape[1], preds, not task.validate_args)
    if task.validate_args:
        _value_checks.check_multiclass_values(
            preds, target, task.input_format, soft, task.ignore_index, ("sample_weight", weight), ("weight", classes)
        )
    return Batch(preds, target, weight)


def multiclass_target_kind(preds: Tensor, target: Tensor, num_classes: int | None, ignore_index: int | None) -> bool:
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
    if preds.ndim == 2 and target.ndim == 1 and target.shape[0] == preds.shape[0] and not target.is_floating_point():
        return False  # (N, C) scores, (N,) class indices: the per-step case, decided without building shapes
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


def check_head_batch(
    task: Any,
    hidden: object,
    linear_weight: object,
    target: object,
    linear_bias: object = None,
    sample_weight: object = None,
) -> HeadBatch:
    """The hidden-state task's ``check_batch``: every tensor and the class weight; ``target`` and weights flat."""
    validate_args, ignore_index = task.validate_args, task.ignore_index
    hidden, target = _check_hidden(hidden, target, validate_args)
    weight, bias = _check_head(linear_weight, linear_bias, hidden, task.num_classes)
    check_ignore_index_fits(target, ignore_index)
    for name, value in (("sample_weight", sample_weight), ("weight", task.weight)):
        if isinstance(value, Tensor):
            check_device(name, value, hidden, "hidden")
    given = check_sample_weight(sample_weight, [hidden.shape[:-1], hidden.shape[:1]], hidden, not validate_args)
    sample = given
    if sample is not None and sample.shape != target.shape:  # per sequence of a (B, L, d) batch
        sample = sample.reshape(-1, *[1] * (target.ndim - 1)).expand(target.shape)
    classes = check_class_weight("weight", task.weight, weight.shape[0], hidden, not validate_args)
    if validate_args:  # the weights' values as given (per sequence: one value each)
        tensors = (("hidden", hidden), ("linear_weight", weight), ("linear_bias", bias))
        _value_checks.check_head_values(
            tensors, target, weight.shape[0], ignore_index, ("sample_weight", given), ("weight", classes)
        )
    return HeadBatch(hidden, weight, target.reshape(-1), bias, None if sample is None else sample.reshape(-1))


def _check_operand(name: str, value: object, hidden: Tensor) -> Tensor:
    """``linear_weight`` / ``linear_bias``: a tensor of ``hidden``'s dtype, on its device."""
    value = check_tensor(name, value, meta_ok=hidden.is_meta)
    if value.dtype != hidden.dtype:
        raise TypeError(
            f"`{name}` has dtype {value.dtype} but `hidden` has {hidden.dtype}; the projection needs one dtype, "
            f"e.g. `{name}.to(hidden.dtype)`."
        )
    check_device(name, value, hidden, "hidden")
    return value


def _check_hidden(hidden: object, target: object, validate_args: bool) -> tuple[Tensor, Tensor]:
    hidden = check_tensor("hidden", hidden, meta_ok=not validate_args)
    if not hidden.is_floating_point():
        raise TypeError(f"`hidden` must be a floating point tensor (the head's input features), got {hidden.dtype}.")
    if hidden.ndim < 2:
        raise ValueError(f"`hidden` must have shape (N, d) or (B, L, d), features last, got {tuple(hidden.shape)}.")
    target = check_tensor("target", target, meta_ok=not validate_args)
    if tuple(target.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(
            f"`target` must hold one class index per row of `hidden`, shape {tuple(hidden.shape[:-1])} for hidden "
            f"{tuple(hidden.shape)}, got {tuple(target.shape)}."
        )
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"`target` must hold integer class indices, got dtype {target.dtype}.")
    check_device("target", target, hidden, "hidden")
    return hidden, target


def _check_head(
    linear_weight: object, linear_bias: object, hidden: Tensor, num_classes: int | None
) -> tuple[Tensor, Tensor | None]:
    """The head's weight ``(V, d)`` and bias ``(V,)``, of ``hidden``'s dtype and device."""
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
    return weight, bias
