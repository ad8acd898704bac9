"""The options of each task, validated once into one frozen object that the function and the Metric share.

A public function builds its task's options from its keywords, a Metric class from its ``__init__``
arguments (once, at construction); either hands the object down whole to the validation of a batch
and to the kernel (:func:`~xent_metrics.functional._bce.bce_sums`,
:func:`~xent_metrics.functional._softmax_ce.softmax_ce_sums`). ``__post_init__`` runs the checks of
the arguments in the order the functions always ran them, so the same error wins. Class weights are
checked against a batch (their size and device) by the tensor validation, or once by a Metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from xent_metrics.functional import _validation


@dataclass(frozen=True)
class BinaryOptions:
    """The options of the binary task: :func:`~xent_metrics.functional.binary_cross_entropy`'s keywords."""

    input_format: str = "logits"
    pos_weight: Tensor | float | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    validate_args: bool = True

    def __post_init__(self) -> None:
        _validation.check_common_args(self.input_format, self.ignore_index, self.label_smoothing)
        _validation.check_flag("validate_args", self.validate_args)
        object.__setattr__(self, "label_smoothing", float(self.label_smoothing))


def _check_averaged(options: MultilabelOptions | MulticlassOptions, count_name: str, count: int | None) -> None:
    """The checks a per-label / per-class task shares, in the order the functions ran them; smoothing made a float."""
    _validation.check_count(count_name, count)
    _validation.check_common_args(options.input_format, options.ignore_index, options.label_smoothing)
    object.__setattr__(options, "average", _validation.check_average(options.average))
    _validation.check_flag("validate_args", options.validate_args)
    object.__setattr__(options, "label_smoothing", float(options.label_smoothing))


@dataclass(frozen=True)
class MultilabelOptions:
    """The options of the multilabel task: :func:`~xent_metrics.functional.multilabel_cross_entropy`'s keywords."""

    num_labels: int | None = None
    input_format: str = "logits"
    pos_weight: Tensor | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    average: str = "micro"
    validate_args: bool = True

    def __post_init__(self) -> None:
        _check_averaged(self, "num_labels", self.num_labels)


@dataclass(frozen=True)
class MulticlassOptions:
    """The options of the multiclass task: :func:`~xent_metrics.functional.multiclass_cross_entropy`'s keywords."""

    num_classes: int | None = None
    input_format: str = "logits"
    weight: Tensor | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    average: str = "micro"
    validate_args: bool = True
    fused: bool = False

    def __post_init__(self) -> None:
        _check_averaged(self, "num_classes", self.num_classes)
        _validation.check_flag("fused", self.fused)


@dataclass(frozen=True)
class LinearOptions(MulticlassOptions):
    """The multiclass options of :func:`~xent_metrics.functional.linear_cross_entropy`: logits, and a block size."""

    block_size: int | None = None

    def __post_init__(self) -> None:  # linear_cross_entropy's own order of checks
        _validation.check_common_args("logits", self.ignore_index, self.label_smoothing)
        _validation.check_flag("validate_args", self.validate_args)
        _validation.check_count("block_size", self.block_size)
        object.__setattr__(self, "average", _validation.check_average(self.average))
        object.__setattr__(self, "label_smoothing", float(self.label_smoothing))

