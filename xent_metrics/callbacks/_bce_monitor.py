"""``PerClassBCEMonitor``: per-label binary cross-entropy of a multi-label model, logged every epoch."""

from __future__ import annotations

from typing import Any

from xent_metrics.callbacks._args import check_labels
from xent_metrics.callbacks._monitor import PerClassMonitor
from xent_metrics.metrics import MultilabelCrossEntropy


class PerClassBCEMonitor(PerClassMonitor):
    r"""Log the binary cross-entropy of every label of a multi-label model, per stage and epoch.

    Each stage (train / val / test) owns one
    :class:`~xent_metrics.metrics.MultilabelCrossEntropy` (``average="none"``), updated from what
    each step returns (``outputs[preds_key]``, ``outputs[target_key]``). At each epoch end it is
    computed on every rank (the collective sync), and the synced values are logged through the
    module's loggers as ``{stage}/{prefix}/{label}`` and ``{stage}/{prefix}`` (the macro mean over
    labels with data), then reset. The history of every epoch is kept for the end-of-fit table and
    heatmap and saved in checkpoints.

    Parameters
    ----------
    labels : list of str, optional
        One name per model output column; checked against ``preds.shape[1]``.
    num_labels : int, optional
        The number of labels, when there are no names (they become ``"0"``, ``"1"``, ...).
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How to read ``preds``.
    stages : list of {"train", "val", "test"}, optional
        Where to measure; all three by default. Sanity-check validation is never counted.
    preds_key, target_key : str, default="preds", "target"
        Where the step's returned mapping holds the ``(N, K)`` scores and targets.
    ignore_index : int, optional
        Target entries equal to it are left out of their label's mean. A label whose every target
        was ignored logs ``nan`` (and one warning).
    prefix : str, default="bce"
        The middle part of the logged keys.
    log_worst_k : int, optional
        Log only the ``k`` worst labels of each epoch (plus the macro mean); the table and the
        history still hold every label, the heatmap every label up to ``heatmap_max_labels``. For
        models with thousands of labels.
    print_table : bool, default=True
        At the end of fit, show the per-label table (worst first, with the change since the first
        epoch) on rank zero, through Lightning's info log (``rank_zero_info``: stderr by default),
        followed by the heatmap's path.
    save_heatmap : bool, default=True
        At the end of fit, save a heatmap of per-label validation BCE over epochs as
        ``{trainer.log_dir}/{prefix}_per_label_val.png`` (training BCE when there is no
        validation), and add it to TensorBoard when a ``TensorBoardLogger`` is attached.
    max_table_rows : int, optional, default=30
        The most labels the table prints (the worst ones); ``None`` prints all.
    heatmap_max_labels : int, optional, default=50
        The most labels the heatmap draws, each named. With more labels it draws the worst
        ``log_worst_k`` (the logged ones; the worst ``heatmap_max_labels`` when that is unset or
        larger) of the last epoch and says in its title how many are not shown. ``None`` draws every
        label (unnamed above 60). The image is at most 1600 px tall either way.
    error_bars : bool, default=False
        Keep the clustered error-bar rows (one cluster per sample: a row of the batch, all its labels;
        see the docs page "How sure is this number?") and log, beside each logged
        ``{stage}/{prefix}/{label}``, the ends of its ``confidence`` interval as
        ``{stage}/{prefix}_low/{label}`` and ``{stage}/{prefix}_high/{label}``. The macro mean gets
        no interval here (a row's labels are correlated, their covariances are not kept). The
        history records add ``"stderr"``, ``"low"`` and ``"high"``; the table shows ``value +- stderr``.
    confidence : float in (0, 1), default=0.95
        The coverage of the logged intervals (with ``error_bars=True``).

    Raises
    ------
    TypeError
        ``labels`` not a list of str, a count not an int, a step output that is not a mapping,
        ``error_bars`` not a bool, ``confidence`` not a float.
    ValueError
        Neither ``labels`` nor ``num_labels``, duplicate or empty names, a length that disagrees
        with ``num_labels`` or with the model's ``preds``, an unknown stage, a missing output key,
        ``confidence`` outside ``(0, 1)``; in ``load_state_dict``, a state saved without error bars
        into a monitor with ``error_bars=True`` (or the reverse).

    Notes
    -----
    With several validation (or test) dataloaders, each dataloader's values are logged with
    Lightning's suffix, ``{stage}/{prefix}/{label}/dataloader_idx_{i}``, from the dataloader's own
    last batch (so ``trainer.validate()`` returns them in that dataloader's dict), and the pooled
    values under the plain keys at the epoch end. The history record of the epoch holds the pooled
    values and, under ``"dataloaders"``, one ``{"values", "macro"}`` per dataloader. Every record
    names the trainer call it came from: ``"run"`` (1 for the first ``fit``/``validate``/``test``
    this monitor saw, 2 for the next, ...) and ``"fn"`` (``"fit"``, ``"validate"`` or ``"test"``);
    the table and heatmap show the latest ``fit`` only.

    The heatmap is written only where Lightning writes logs: with ``fast_dev_run``,
    ``logger=False`` or a logger without a directory, the monitor writes no file and says (in
    Lightning's info log) where it would have written.

    The values are
    computed (and synced) by the metric, so they are logged with ``sync_dist=False``; under DDP the
    monitor silences Lightning's "use ``sync_dist=True``" hint for its own keys only.

    Under DDP, Lightning's default ``DistributedSampler`` pads the evaluation shards with duplicate
    samples, which biases every evaluation metric; the monitor warns once when it sees this. The
    fix is one line: pass ``sampler=xent_metrics.callbacks.UnpaddedDistributedSampler(dataset)``
    to the evaluation ``DataLoader`` (Lightning keeps a ``DistributedSampler`` you give it).

    Checkpoints hold the per-epoch history and the in-progress sums (with their error-bar rows), so
    resuming from a checkpoint gives the uninterrupted history. (Resuming *inside* an epoch is exact
    only with a resumable training dataloader: Lightning restarts a plain one from its first batch,
    and warns.)

    Examples
    --------
    >>> from xent_metrics.callbacks import PerClassBCEMonitor
    >>> monitor = PerClassBCEMonitor(labels=["cat", "dog"], stages=["val"], log_worst_k=1)
    >>> monitor.state_key
    "PerClassBCEMonitor{'prefix': 'bce', 'preds_key': 'preds', 'target_key': 'target'}"
    """

    unit, names_arg, loss = "label", "labels", "BCE"

    _metric_class = MultilabelCrossEntropy

    def __init__(self, labels: list[str] | None = None, num_labels: int | None = None, **options: Any) -> None:
        names = check_labels(labels, num_labels)
        self.num_labels = len(names)
        super().__init__(names, **options)
