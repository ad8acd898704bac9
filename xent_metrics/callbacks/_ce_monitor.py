"""``PerClassCEMonitor``: cross-entropy per true class of a multiclass model, logged every epoch."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from xent_metrics.callbacks._args import check_labels
from xent_metrics.callbacks._monitor import PerClassMonitor
from xent_metrics.metrics import MulticlassCrossEntropy


class PerClassCEMonitor(PerClassMonitor):
    r"""Log the cross-entropy of each true class of a multiclass model, per stage and epoch.

    The multiclass twin of :class:`~xent_metrics.callbacks.PerClassBCEMonitor`: the same stages,
    keys, several-dataloader logging, history, checkpoints, DDP behaviour, table and heatmap, with
    :class:`~xent_metrics.metrics.MulticlassCrossEntropy` (``average="none"``) in place of the
    multi-label metric. The value of class :math:`c` is the mean softmax cross-entropy of the
    samples whose target is :math:`c`:

    .. math::

        \mathrm{CE}_c = -\frac{1}{|\{i : y_i = c\}|} \sum_{i : y_i = c} \log \operatorname{softmax}(z_i)_c

    logged as ``{stage}/{prefix}/{class}``, with ``{stage}/{prefix}`` the macro mean over the
    classes that had samples (a class with none logs ``nan``, with one warning).

    Parameters
    ----------
    classes : list of str, optional
        One name per class (per column of the ``(N, C)`` scores); checked against ``preds.shape[1]``.
    num_classes : int, optional
        ``C``, when the classes have no names (they become ``"0"``, ``"1"``, ...).
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How the ``(N, C)`` scores are read.
    stages : list of {"train", "val", "test"}, optional
        The stages measured (default: all); sanity-check validation never counts.
    preds_key, target_key : str, default="preds", "target"
        The keys of the step output holding the ``(N, C)`` scores and the ``(N,)`` class indices.
    ignore_index : int, optional
        A target value that leaves its sample out.
    prefix : str, default="ce"
        The middle part of the logged keys and of the heatmap's file name.
    log_worst_k : int, optional
        Log only the ``k`` worst classes of an epoch (and the macro mean); all are kept in the history.
    print_table : bool, default=True
        Show the worst-first table of classes on rank zero at the end of fit, through Lightning's info
        log (as :class:`~xent_metrics.callbacks.PerClassBCEMonitor` does).
    save_heatmap : bool, default=True
        Save ``{trainer.log_dir}/{prefix}_per_class_val.png`` (``train`` without validation) at the end
        of fit, and add it to TensorBoard when a ``TensorBoardLogger`` is attached.
    max_table_rows : int, optional, default=30
        How many classes the table prints at most (``None``: all).
    heatmap_max_labels : int, optional, default=50
        How many classes the heatmap draws at most, named; with more, the worst ``log_worst_k`` (or
        the worst ``heatmap_max_labels``) of the last epoch, the title saying how many are not shown.
        ``None``: all (unnamed above 60). The image is at most 1600 px tall.
    error_bars : bool, default=False
        As :class:`~xent_metrics.callbacks.PerClassBCEMonitor`'s: log ``{stage}/{prefix}_low/{class}``
        and ``{stage}/{prefix}_high/{class}`` (one cluster per sample), and here also
        ``{stage}/{prefix}_low`` / ``{stage}/{prefix}_high`` for the macro mean: each sample falls in
        one class, so the classes' estimates are independent and the macro mean's standard error is
        :math:`\sqrt{\sum_k \mathrm{SE}_k^2} / K` over the :math:`K` classes with samples. Probability
        (soft) targets, which count in several classes, are then refused with a ``ValueError``.
    confidence : float in (0, 1), default=0.95
        The coverage of the logged intervals.

    Raises
    ------
    TypeError, ValueError
        As :class:`~xent_metrics.callbacks.PerClassBCEMonitor` does, naming ``classes`` and
        ``num_classes``; ``ValueError`` for probability targets with ``error_bars=True``.

    See Also
    --------
    PerClassBCEMonitor : the multi-label monitor; its Notes (DDP, samplers, checkpoints, several
        dataloaders, runs without a log directory) hold here word for word.

    Notes
    -----
    ``self.log_dict(MetricCollection({"ce": ClasswiseWrapper(MulticlassCrossEntropy(C,
    average="none"))}))`` fails inside Lightning: ``log`` accepts a ``Metric`` object only when its
    ``compute()`` returns a tensor, and ``ClasswiseWrapper`` returns a dict. Logging what its
    ``forward`` returns runs, but Lightning then averages per-batch class means weighted by batch
    size, which is not the per-class mean (and is ``nan`` once a batch lacks a class). This monitor
    computes each class's mean over the whole epoch, synced across processes.

    Examples
    --------
    >>> from xent_metrics.callbacks import PerClassCEMonitor
    >>> monitor = PerClassCEMonitor(classes=["setosa", "versicolor", "virginica"], stages=["val"])
    >>> monitor.num_classes, monitor.state_key
    (3, "PerClassCEMonitor{'prefix': 'ce', 'preds_key': 'preds', 'target_key': 'target'}")
    """

    unit, names_arg, loss = "class", "classes", "CE"
    macro_interval = True  # class-index targets: each sample falls in one class (soft targets are refused)
    _metric_class = MulticlassCrossEntropy

    def __init__(
        self, classes: list[str] | None = None, num_classes: int | None = None, prefix: str = "ce", **options: Any
    ) -> None:
        names = check_labels(classes, num_classes, owner="PerClassCEMonitor", names="classes", count="num_classes")
        self.classes, self.num_classes = names, len(names)
        super().__init__(names, prefix=prefix, **options)

    def _checked(self, stage: str, outputs: object) -> tuple[Any, Any]:
        """As the base class; with error bars, probability targets are refused (the macro interval needs one class)."""
        preds, target = super()._checked(stage, outputs)
        if self.error_bars and isinstance(target, Tensor) and target.is_floating_point():
            raise ValueError(
                f"PerClassCEMonitor(error_bars=True) takes class-index targets, but `{self.target_key}` is a "
                f"{target.dtype} tensor of shape {tuple(target.shape)} (probabilities): a soft-target sample counts "
                "in several classes, so the classes' estimates are correlated and the macro mean has no interval. "
                "Return class indices (e.g. target.argmax(1)), or set error_bars=False."
            )
        return preds, target
