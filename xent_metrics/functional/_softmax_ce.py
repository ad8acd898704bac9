"""Sums of (weighted) categorical cross-entropy, per true class, over cache-sized row blocks.

The hot path (logits, class-index targets) costs, per block of about
:data:`~xent_metrics.functional._chunks.CHUNK_ELEMENTS` logits, one
``exp`` written into a reused scratch buffer and one row sum, then float64 arithmetic per *row*
(:func:`~xent_metrics.functional._nll.nll_from_logits`: the loss as ``log1p`` of a ratio, accurate
on confident rows), before one ``index_add_`` into the ``(3, C)`` sums. The kernel is the same for
every row length, block and batch, so a row's digits never depend on the split; under autograd the
same kernels run out of place and give the same digits. A small batch of class indices with unit
weights (the per-step case) skips the block machinery: the same per-row kernel, then two
``bincount`` calls for the per-class loss sums and counts (:func:`_plain_sums`). The blocks, their
dtype and the scratch buffer come from one plan (:func:`~xent_metrics.functional._chunks.softmax_plan`),
asked once per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._chunks import SoftmaxPlan, labels_last, needs_grad, position_weight
from xent_metrics.functional._nll import nll_from_logits
from xent_metrics.functional._sums import LOSS, NUM_SUMS, TARGET, WEIGHT

if TYPE_CHECKING:
    from xent_metrics.functional._cluster_sums import ClusterSums

Kernel = Callable[[Tensor, Tensor], Tensor]


class ClassOptions(Protocol):
    """The options of a multiclass loss that every multiclass kernel reads (the head's too)."""

    @property
    def weight(self) -> Tensor | None: ...

    @property
    def ignore_index(self) -> int | None: ...

    @property
    def label_smoothing(self) -> float: ...


class SoftmaxOptions(ClassOptions, Protocol):
    """What the multiclass kernel reads of a task's options."""

    @property
    def input_format(self) -> str: ...

    @property
    def fused(self) -> bool: ...


def log_probs_of(preds: Tensor, input_format: str, eps: float, out: Tensor | None = None) -> Tensor:
    """Full ``(m, C)`` log-probabilities of a block: log-softmax, clipped log, or as given (into ``out``)."""
    if input_format == "logits":
        return torch.log_softmax(preds, 1) if out is None else torch.log_softmax(preds, 1, out=out)
    if input_format == "probs":
        if out is None:
            return torch.log(preds.clamp(eps, 1 - eps))
        return torch.clamp(preds, eps, 1 - eps, out=out).log_()
    return preds


def target_nll(preds: Tensor, target: Tensor, input_format: str, eps: float, work: Tensor | None = None) -> Tensor:
    """Float64 ``-log p[i, target_i]`` of a ``(m, C)`` block without keeping the log-probabilities.

    ``work`` (the plan's buffer, at least two rows of the block's width) holds the logits' ``exp``
    terms; without it (autograd) the same kernels allocate, so both give the same digits.
    """
    if input_format == "logits":
        return nll_from_logits(preds, target, work)
    picked = preds.gather(1, target[:, None]).squeeze(1)
    if input_format == "probs":
        return picked.clamp(eps, 1 - eps).double().log().neg_()
    return picked.double().neg_()


def _smoothing_term(z: Tensor, options: SoftmaxOptions, eps: float, buf: Tensor | None) -> Tensor:
    """Float64 ``sum_c weight_c log p_c`` per row (the label-smoothing part of the loss)."""
    log_p = log_probs_of(z, options.input_format, eps, out=buf)
    if options.weight is not None:  # keeps 0 * -inf = nan visible for log-probabilities, as the plain sum keeps -inf
        weight = options.weight.to(log_p.dtype)
        log_p = log_p * weight if buf is None else torch.mul(log_p, weight, out=buf)  # never into preds
    return log_p.sum(1, dtype=torch.float64)  # float64: the same digits whatever the block's row count


def _accumulate(sums: Tensor, t: Tensor, loss: Tensor, w_t: Tensor | None, mass: Tensor | None) -> None:
    """Add per-row loss, weight and target mass to their true classes.

    Unit weights and masses (both ``None``) are counted once per call by :func:`softmax_ce_sums`.
    """
    if w_t is None and mass is None:
        sums[LOSS].index_add_(0, t, loss)
        return
    ones = torch.ones_like(loss) if w_t is None or mass is None else None
    rows = torch.stack([loss, ones if w_t is None else w_t, ones if mass is None else mass])
    sums.index_add_(1, t, rows)


def _drop_ignored(t: Tensor, w: Tensor | None, ignore_index: int | None) -> tuple[Tensor, Tensor | None]:
    """Point ignored targets at class 0 with weight 0 (so the kernel reads a valid index); the rest as they are."""
    if ignore_index is None:
        return t, w
    keep = t != ignore_index
    return t * keep, keep.to(torch.float64) if w is None else w * keep  # t * keep: class 0 where ignored


def _add_hard_block(
    sums: Tensor,
    nll: Tensor,
    z: Tensor,
    t: Tensor,
    w: Tensor | None,
    options: SoftmaxOptions,
    eps: float,
    work: Tensor | None,
    clusters: ClusterSums | None = None,
    rows: slice = slice(0),
) -> None:
    """Add one block of scores ``z`` with hard (class index) targets ``t`` into ``sums``.

    ``nll`` holds the rows' ``-log p[i, t_i]``, ``w`` the position weights (0 for ignored targets);
    ``clusters`` (error bars) also gets the rows ``rows``' weighted losses and weights.
    """
    smooth = None
    if options.label_smoothing:
        smooth = _smoothing_term(z, options, eps, None if work is None else work[: z.shape[0]])
    add_hard_losses(sums, nll, smooth, t, w, options, clusters, rows)


def add_hard_losses(
    sums: Tensor, nll: Tensor, smooth: Tensor | None, t: Tensor, w: Tensor | None, options: ClassOptions,
    clusters: ClusterSums | None = None, rows: slice = slice(0),
) -> None:  # fmt: skip
    """Add rows' losses into the ``(3, C)`` ``sums``: ``nll`` (float64 ``-log p[i, t_i]``), hard targets ``t``.

    ``smooth`` is each row's float64 ``sum_c weight_c log p_c`` (given with label smoothing), ``w`` the
    position weights (0 for ignored targets); ``clusters`` (error bars) also gets the rows ``rows``'
    weighted losses and weights. The step every hard-target kernel ends with (the head's too).
    """
    class_weight = None if options.weight is None else options.weight.to(torch.float64)
    w_t = w if class_weight is None else (class_weight[t] if w is None else w * class_weight[t])
    loss = nll if w_t is None else nll * w_t
    mass, smoothing = w, options.label_smoothing
    if smooth is not None:
        share = smoothing / sums.shape[1]
        loss = loss * (1 - smoothing) - smooth * (share if w is None else w * share)
        mass = (torch.ones_like(loss) if w is None else w) * (1 - smoothing)
        sums[TARGET] += share * (nll.shape[0] if w is None else w.sum())
    if w is not None:  # zero weight removes a row exactly, even one whose loss is inf or nan
        loss = loss.masked_fill(w == 0, 0)
    if clusters is not None:
        clusters.add(rows, loss, w_t, t)
    _accumulate(sums, t, loss, w_t, mass)


def _add_soft_block(
    sums: Tensor, z: Tensor, y: Tensor, w: Tensor | None, options: SoftmaxOptions, eps: float, buf: Tensor | None,
    clusters: ClusterSums | None = None, rows: slice = slice(0),
) -> None:
    """Add one block of scores ``z`` with soft (probability) targets ``y`` and position weights ``w`` into ``sums``.

    ``LOSS`` gets ``s_i w_c y_ic (-log p_ic)`` per class; ``WEIGHT`` gets each row's sample weight
    ``s_i`` split over the classes in proportion to its (smoothed) targets, equally for a row of
    zeros, so the weights add up to ``sum_i s_i``: torch's denominator, whatever the rows sum to;
    ``TARGET`` gets the target mass ``s_i y_ic``. Logits use :func:`log_softmax64`, exact on confident rows.
    """
    y, smoothing = y.to(torch.float64), options.label_smoothing
    if smoothing:
        y = y * (1 - smoothing) + smoothing / z.shape[1]
    mass = y if w is None else y * w[:, None]
    if options.input_format == "logits":
        log_p = log_softmax64(z)
    else:
        log_p = log_probs_of(z, options.input_format, eps, out=buf)
    loss = torch.where(mass != 0, mass * log_p, 0) if options.input_format == "log_probs" else mass * log_p
    row = y.sum(1, keepdim=True)
    share = torch.where(row > 0, y / row, 1 / z.shape[1])
    if clusters is not None:  # error bars: each row's loss and weight per class
        each = -loss if options.weight is None else -loss * options.weight.to(torch.float64)
        clusters.add(rows, each, share if w is None else share * w[:, None])
    loss = -loss.sum(0)
    sums[LOSS] += loss if options.weight is None else loss * options.weight.to(torch.float64)
    sums[WEIGHT] += (share if w is None else share * w[:, None]).sum(0)
    sums[TARGET] += mass.sum(0)


def log_softmax64(z: Tensor) -> Tensor:
    """Float64 ``log softmax(z)`` of a ``(m, C)`` block, exact on confident rows.

    ``(z - m) - log1p(sum_{j != argmax} exp(z_j - m))`` with ``m`` the row max: the argmax class keeps
    its tiny ``-log p`` that ``log(sum_j exp(z_j - m))`` would round to 0.
    """
    z = z.double()
    top, arg = z.max(1, keepdim=True)
    shifted = z - top
    exps = shifted.exp()  # under autograd its backward needs it: the argmax term is dropped out of place then
    rest = (exps.scatter(1, arg, 0) if exps.requires_grad else exps.scatter_(1, arg, 0)).sum(1, keepdim=True)
    return shifted - rest.log1p()


def _block_inputs(
    preds: Tensor, target: Tensor, sample_weight: Tensor | None, rows: slice, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Rows ``rows`` as ``(z, y, w)``: scores in ``dtype``, positions as rows, targets and position weights.

    Class indices come flat and int64; soft targets ``(m, C)`` as the scores.
    """
    whole = rows.start == 0 and rows.stop == preds.shape[0]  # one block: no slicing (per-step cost)
    block, y = (preds, target) if whole else (preds[rows], target[rows])
    w = None if sample_weight is None else (sample_weight if whole else sample_weight[rows])
    if block.ndim != 2:  # (m, C, *rest): one row per position
        w = None if w is None else position_weight(w, block.shape)
        block, y = labels_last(block), labels_last(y) if target.shape == preds.shape else y.reshape(-1)
    z = block if block.dtype == dtype else block.to(dtype)
    w = None if w is None else w.double()
    if target.shape == preds.shape:
        return z, y, w
    return z, y if y.dtype == torch.int64 else y.long(), w


def class_counts(t: Tensor, classes: int) -> Tensor:
    """How many times each class occurs in ``t``: ``bincount`` on the CPU, ``index_add_`` elsewhere.

    ``bincount``'s output shape depends on the values: off the CPU it reads the maximum back to the host.
    """
    if t.is_cpu and not _chunks.DEVICE_PATH_ON_CPU:
        return torch.bincount(t, minlength=classes)
    return torch.zeros(classes, dtype=torch.long, device=t.device).index_add_(0, t, torch.ones_like(t))


def _plain_sums(nll: Tensor, t: Tensor, classes: int, per_class: bool) -> Tensor:
    """Sums of a batch with class-index targets ``t`` and unit weights from its per-row losses: the per-step path.

    The rows went through the block path's per-row kernel (:func:`target_nll`, allocating instead of
    borrowing a scratch buffer, which gives the same digits), so a row's value is the one it gets in
    any other batch. Totals (``per_class=False``) are the loss sum beside the row count
    (:func:`_totals`); per-class loss sums and counts are two ``bincount`` calls (the loss one adds
    rows in order in float64, as ``index_add_`` does) stacked into the ``(3, C)`` sums. Under
    autograd (or off the CPU) ``index_add_`` carries the gradient instead.
    """
    if not per_class:  # (3, 1) totals: [loss sum, count, count]
        return _totals(nll.sum(), t.shape[0])
    counts = class_counts(t, classes).double()  # before the stack: a mixed-dtype stack is slower
    if nll.requires_grad or not t.is_cpu or _chunks.DEVICE_PATH_ON_CPU:
        loss = torch.zeros(classes, dtype=torch.float64, device=t.device).index_add_(0, t, nll)
    else:
        loss = torch.bincount(t, weights=nll, minlength=classes)
    return torch.stack([loss, counts, counts])


#: Per device (``None``: the CPU) and row count: the ``(3, 1)`` mask of the ``LOSS`` row and the counts
#: ``[0, rows, rows]``.
_TOTALS: dict[tuple[torch.device | None, int], tuple[Tensor, Tensor]] = {}


def _totals(loss: Tensor, rows: int) -> Tensor:
    """The ``(3, 1)`` totals ``[loss, rows, rows]`` of a unit batch from its 0-dim loss sum: one ``where``.

    The mask and the counts are made once per device and row count (kept for 16 of them), so a step
    dispatches one op here; under tracing (a fake tensor, ``torch.compile``) and in inference mode (whose
    tensors autograd may not save for a later ``forward``) they are made afresh and not kept.
    """
    key = (None if loss.is_cpu else loss.device, rows)  # is_cpu: no device object built on the CPU
    pair = _TOTALS.get(key)
    if pair is None:
        mask = torch.arange(NUM_SUMS, device=loss.device)[:, None] == LOSS
        pair = mask, torch.where(mask, 0, rows).to(torch.float64)
        if type(loss) is Tensor and not (torch.is_inference_mode_enabled() or torch.compiler.is_compiling()):
            if len(_TOTALS) >= 16:
                _TOTALS.clear()
            _TOTALS[key] = pair
    return torch.where(pair[0], loss, pair[1])


def _compiled(preds: Tensor, soft: bool, options: SoftmaxOptions) -> Kernel | None:
    """The compiled kernel where ``options.fused`` applies (logits, class indices, no smoothing, no autograd)."""
    if not options.fused or soft or options.label_smoothing or options.input_format != "logits":
        return None
    if needs_grad(preds):
        return None
    from xent_metrics.functional._fused import fused_nll_kernel

    return fused_nll_kernel()


def _plan(
    preds: Tensor, target: Tensor, options: SoftmaxOptions, sample_weight: Tensor | None, chunk_elements: int | None
) -> tuple[SoftmaxPlan, Kernel | None]:
    """Ask the block plan for ``preds`` (and the compiled kernel where ``options.fused`` applies)."""
    fmt, smoothing, soft = options.input_format, options.label_smoothing, target.shape == preds.shape
    kernel = _compiled(preds, soft, options)
    plan = _chunks.softmax_plan(
        preds,
        chunk_elements,
        soft=soft,
        gather=fmt != "logits" and not smoothing,
        fused=kernel is not None,
        plain=_unit(options, sample_weight) and _per_step(preds, target, options),
        work=fmt == "probs" if soft else bool(smoothing) or (fmt == "logits" and _chunks.on_cpu(preds)),
    )
    return plan, kernel


def _unit(options: SoftmaxOptions, sample_weight: Tensor | None) -> bool:
    """Unit weights, every target kept, no smoothing: a hard batch's weight and target rows are class counts."""
    unit = sample_weight is None and options.weight is None and options.ignore_index is None
    return unit and not options.label_smoothing


def _per_step(preds: Tensor, target: Tensor, options: SoftmaxOptions) -> bool:
    """Whether a unit batch may take the per-step path: ``(N, C)`` scores, ``(N,)`` class indices, eager."""
    return not options.fused and preds.ndim == 2 and target.ndim == 1


def softmax_ce_sums(
    preds: Tensor,
    target: Tensor,
    options: SoftmaxOptions,
    sample_weight: Tensor | None = None,
    *,
    chunk_elements: int | None = None,
    per_class: bool = True,
    plan: SoftmaxPlan | None = None,
    blocks: tuple[slice, ...] = (),
    clusters: ClusterSums | None = None,
) -> Tensor:
    """Return ``(3, C)`` float64 sums for ``(N, C, ...)`` preds and ``(N, ...)`` or ``(N, C, ...)`` targets.

    ``options`` gives the input format, class ``weight``, ``ignore_index``, label smoothing and
    ``fused`` of a validated batch. ``per_class=False`` returns their ``(3, 1)`` totals (a micro mean
    needs no more): a small plain batch then skips the per-class ``bincount`` calls.

    Hard targets put each sample's loss and weight ``sample_weight * weight[target]`` on its true
    class; soft targets spread them by target mass (torch's rule: the mean is over
    ``sum(sample_weight)``, class weights scale the numerator only). ``chunk_elements`` overrides
    the row block size; ``options.fused`` runs the full blocks of logits with class-index targets
    through a ``torch.compile``-d kernel (:mod:`xent_metrics.functional._fused`), the rest eagerly.
    A caller with its own ``plan`` (the hidden-state head: the dtype, buffer and per-step threshold
    of its projected blocks) gives it with the ``blocks`` of ``preds``; otherwise the call asks one.
    ``clusters`` (error bars) also gets each position's weighted loss and weight, block by block.
    """
    unit = _unit(options, sample_weight)
    if unit and _per_step(preds, target, options):
        small = _chunks.per_step_elements(preds, chunk_elements) if plan is None else plan.small
        if preds.numel() <= small:  # one small block
            dtype = _chunks.compute_dtype(preds.dtype)
            z = preds if preds.dtype == dtype else preds.to(dtype)
            t = target if target.dtype == torch.int64 else target.long()
            eps = 0.0 if options.input_format == "logits" else torch.finfo(preds.dtype).eps
            nll = target_nll(z, t, options.input_format, eps)
            if clusters is not None:
                clusters.add(slice(0, t.shape[0]), nll, None, t)
            return _plain_sums(nll, t, preds.shape[1], per_class)
    soft, eps, classes = target.shape == preds.shape, torch.finfo(preds.dtype).eps, preds.shape[1]
    plan, kernel = (plan, None) if plan is not None else _plan(preds, target, options, sample_weight, chunk_elements)
    sums = torch.zeros(NUM_SUMS, classes, dtype=torch.float64, device=preds.device)
    if unit and not soft:
        flat = target.reshape(-1)
        flat = flat if flat.dtype == torch.int64 else flat.long()  # bincount takes no bool, index_add_ only int64
        sums[WEIGHT:].add_(class_counts(flat, classes))  # unit weights: counts
    eager = blocks or plan.eager
    for rows, block_kernel in [(rows, kernel) for rows in plan.fused] + [(rows, None) for rows in eager]:
        z, y, w = _block_inputs(preds, target, sample_weight, rows, plan.dtype)
        if soft:
            buf = None if plan.work is None else plan.work[: z.shape[0]]
            _add_soft_block(sums, z, y, w, options, eps, buf, clusters, rows)
            continue
        t, w = _drop_ignored(y, w, options.ignore_index)
        nll = target_nll(z, t, options.input_format, eps, plan.work) if block_kernel is None else block_kernel(z, t)
        _add_hard_block(sums, nll, z, t, w, options, eps, plan.work, clusters, rows)
    return sums if per_class else sums.sum(1, keepdim=True)


def batch_sums(
    options: SoftmaxOptions,
    batch: tuple[Tensor, Tensor, Tensor | None],
    *,
    per_class: bool = True,
    clusters: ClusterSums | None = None,
) -> Tensor:
    """A task's ``sums`` step: :func:`softmax_ce_sums` of a checked ``(preds, target, sample_weight)`` batch."""
    preds, target, sample_weight = batch
    return softmax_ce_sums(preds, target, options, sample_weight, per_class=per_class, clusters=clusters)
