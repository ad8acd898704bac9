"""The kernel of a linear head's cross-entropy, ``hidden @ linear_weight.T (+ linear_bias)``, without the logits.

The logits are walked in the blocks of one plan (:func:`~xent_metrics.functional._chunks.head_plan`):
tokens by vocabulary rows (on the CPU 512 tokens by 4096 rows of float32, 8 MiB), each block one GEMM into
one reused buffer. Per token, float64 sums are carried across the vocabulary blocks, in the exact form of
the multiclass kernel (:mod:`~xent_metrics.functional._nll`):

- On the CPU, the true class's logit ``z_t`` (picked from the block that holds it) and ``R``, the sum of the
  other classes' ``exp(z_j)`` (each block's row sum added in float64). The loss is ``log1p(R / exp(z_t))``:
  never negative, exact on confident rows. Tokens whose terms left the dtype's normal range (a logit above
  about 88 in float32) are recomputed in the float64 form (one read of the range, declared with
  :func:`~xent_metrics.functional._chunks.cpu_read`).
- Elsewhere, for every token (no host read, no data-dependent shape: the op count depends on the number
  of blocks alone), the float64 form: per block the float64 ``logsumexp`` of the logits other than the
  true class's, then ``x = logsumexp_{j != t} z_j - z_t`` over the blocks and the loss
  ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``, with ``z_t`` the float64 dot product of the token's
  features and the true class's head row: never negative, exact on confident rows at any margin.

Label smoothing needs ``sum_c weight_c log p_c = sum_c weight_c z_c - (z_t + loss) sum_c weight_c``; its
first term is ``h . (sum_c weight_c W_c) (+ weight . b)``: one float64 product per token, no pass over the
logits. The rows' losses then go through the multiclass kernel's last step
(:func:`~xent_metrics.functional._softmax_ce.add_hard_losses`). On the CPU, ignored tokens are dropped
before the projection; elsewhere (where finding them is a host sync) their weight is zero.

float16 and bfloat16 operands go through a float32 GEMM: the token rows widened per block, the head a
block of vocabulary rows at a time (a float32 copy of a whole 128k-row head would be 131 MiB).
Under autograd each token block's whole-vocabulary logits go through the multiclass kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._chunks import HeadPlan, cpu_read
from xent_metrics.functional._nll import _limits
from xent_metrics.functional._softmax_ce import (
    ClassOptions,
    _drop_ignored,
    add_hard_losses,
    softmax_ce_sums,
)
from xent_metrics.functional._sums import NUM_SUMS

if TYPE_CHECKING:
    from xent_metrics.functional._cluster_sums import ClusterSums


class HeadOptions(ClassOptions, Protocol):
    """What the head's kernel reads of a task's options."""

    @property
    def validate_args(self) -> bool: ...

    @property
    def block_size(self) -> int | None: ...


@dataclass(frozen=True)
class _BlockOptions:
    """The loss kernel's options for a projected block (autograd): logits, never fused, ``ignore_index`` as masked."""

    weight: Tensor | None
    ignore_index: int | None
    label_smoothing: float
    input_format: str = "logits"
    fused: bool = False


@dataclass(frozen=True)
class _Tokens:
    """The tokens a call projects: ``rows`` their positions in the flat hidden states (``None``: all), ``target``."""

    hidden: Tensor
    rows: Tensor | None
    target: Tensor

    def features(self, tokens: slice) -> Tensor:
        """The ``(m, d)`` features of the tokens ``tokens``."""
        return _token_rows(self.hidden, tokens if self.rows is None else self.rows[tokens])

    def positions(self, tokens: slice) -> slice | Tensor:
        """The flat positions, in the call's input, of the tokens ``tokens``."""
        return tokens if self.rows is None else self.rows[tokens]

    def subset(self, positions: Tensor) -> _Tokens:
        """The tokens at ``positions`` (indices among these tokens)."""
        rows = positions if self.rows is None else self.rows[positions]
        return _Tokens(self.hidden, rows, self.target[positions])


def _token_blocks(step: int, count: int) -> tuple[slice, ...]:
    """The blocks of ``step`` tokens (the plan's) over ``count`` tokens."""
    return tuple(slice(start, min(start + step, count)) for start in range(0, count, step))


def _project(rows: Tensor, head: Tensor, bias: Tensor | None, plan: HeadPlan) -> Tensor:
    """``rows @ head (+ bias)`` for one transposed vocabulary block ``head`` ``(d, w)``, into the plan's ``logits``."""
    assert plan.logits is not None
    out = _leading(plan.logits, rows.shape[0], head.shape[1])
    rows = rows if rows.dtype == plan.dtype else rows.to(plan.dtype)
    if bias is None:
        return torch.mm(rows, head, out=out)
    return torch.addmm(bias, rows, head, out=out)


def _leading(buffer: Tensor, rows: int, cols: int) -> Tensor:
    """The buffer itself, or its first ``rows * cols`` elements as a contiguous ``(rows, cols)`` block (one view op)."""
    return buffer if buffer.shape == (rows, cols) else buffer.as_strided((rows, cols), (cols, 1))


def _head_block(weight: Tensor, bias: Tensor | None, cols: slice, plan: HeadPlan) -> tuple[Tensor, Tensor | None]:
    """The head's rows ``cols`` transposed to ``(d, w)`` (and bias) in the plan's dtype (a half head widened)."""
    head = _take(weight, cols)
    if plan.head is not None:
        head = plan.head[: head.shape[0]].copy_(head)
    return head.t(), None if bias is None else _take(bias, cols).to(plan.dtype)


def _take(values: Tensor, rows: slice | Tensor) -> Tensor:
    """The rows ``rows`` (a slice: a view, or ``values`` itself for all its rows; indices: a copy) of ``values``."""
    if isinstance(rows, slice):
        return values if rows == slice(0, values.shape[0]) else values[rows]
    return values.index_select(0, rows)


def _token_rows(hidden: Tensor, rows: slice | Tensor) -> Tensor:
    """The ``(m, d)`` features of tokens ``rows`` (flat positions) of ``(..., d)`` hidden states.

    A layout that flattens to ``(N, d)`` without a copy is sliced; any other (e.g. a GRU's
    ``batch_first`` output, a strided view) is gathered block by block: no copy of the whole input.
    """
    if hidden.ndim == 2:
        return _take(hidden, rows)
    try:
        return _take(hidden.view(-1, hidden.shape[-1]), rows)
    except RuntimeError:  # not viewable as (N, d)
        if isinstance(rows, slice):
            rows = torch.arange(rows.start, min(rows.stop, math.prod(hidden.shape[:-1])), device=hidden.device)
        return hidden[torch.unravel_index(rows, hidden.shape[:-1])]


@cpu_read
def _kept_rows(target: Tensor, ignore_index: int | None, compact: bool) -> Tensor | None:
    """Indices of the tokens to project, or ``None`` for all of them.

    A host read: ``compact`` on the CPU, or where the batch's validation has read values already.
    """
    if ignore_index is None or not compact:
        return None
    keep = target != ignore_index
    return None if bool(keep.all()) else keep.nonzero().squeeze(1)


def _fold_exp(logits: Tensor, target: Tensor, start: int, own: Tensor, rest: Tensor) -> None:
    """Fold one block of logits (vocabulary rows from ``start``) into ``own`` (``z_t``) and ``rest`` (float64 ``R``).

    The true class's logit, where this block holds it, is picked and replaced by ``-inf`` before the
    in-place ``exp``: the block's row sums are the other classes' terms alone.
    """
    width = logits.shape[1]
    local = target - start
    inside = (local >= 0) & (local < width)
    index = local.clamp_(0, width - 1).unsqueeze(1)
    picked = logits.gather(1, index)
    torch.where(inside, picked.squeeze(1), own, out=own)
    logits.scatter_(1, index, picked.masked_fill_(inside.unsqueeze(1), -math.inf))
    rest += logits.exp_().sum(1)


def _exp_sums(tokens: _Tokens, weight: Tensor, bias: Tensor | None, plan: HeadPlan) -> tuple[Tensor, Tensor]:
    """Per token, ``z_t`` (in the plan's dtype) and the float64 sum of the other classes' ``exp(z_j)``."""
    count = tokens.target.shape[0]
    own = tokens.target.new_zeros(count, dtype=plan.dtype)
    rest = tokens.target.new_zeros(count, dtype=torch.float64)
    blocks = _token_blocks(plan.step, count)
    for cols in plan.cols:
        head, head_bias = _head_block(weight, bias, cols, plan)
        for block in blocks:
            logits = _project(tokens.features(block), head, head_bias, plan)
            _fold_exp(logits, tokens.target[block], cols.start, own[block], rest[block])
    return own, rest


def _wide_nll(tokens: _Tokens, weight: Tensor, bias: Tensor | None, plan: HeadPlan) -> tuple[Tensor, Tensor]:
    """Float64 ``-log p_t`` per token in the float64 form (module docstring), and ``z_t``: fixed ops per block.

    Off the CPU the ops are: per call about 20, per token block 3, per vocabulary block 4, per pair 6 (8 for
    a ragged one: the buffers' leading blocks; half-precision rows one more).
    """
    count, device = tokens.target.shape[0], tokens.target.device
    blocks = _token_blocks(plan.step, count)
    wide = plan.wide if plan.wide is not None else torch.empty(plan.step, plan.cols[0].stop, dtype=torch.float64)
    classes = torch.arange(weight.shape[0], device=device)
    targets = [_take(tokens.target, block).unsqueeze(1) for block in blocks]
    features = [tokens.features(block) for block in blocks] if tokens.rows is None else None  # views
    others = torch.empty(len(plan.cols), count, dtype=torch.float64, device=device)
    for part, cols in zip(others.unbind(), plan.cols, strict=True):
        head, head_bias = _head_block(weight, bias, cols, plan)
        columns = _take(classes, cols)
        for index, (block, target) in enumerate(zip(blocks, targets, strict=True)):
            rows = tokens.features(block) if features is None else features[index]
            logits = _project(rows, head, head_bias, plan)
            block_wide = _leading(wide, *logits.shape).copy_(logits)
            torch.logsumexp(block_wide.masked_fill_(columns == target, -math.inf), 1, out=_take(part, block))
    true = _true_logits(tokens, weight, bias)
    rest = torch.logsumexp(others, 0).sub_(true)  # log(R / exp(z_t)); the loss is log(1 + exp(rest)):
    return F.softplus(rest, threshold=40.0), true  # log1p(exp(x)) up to 40, then x (off by exp(-40) / 40 relative)


def _true_logits(tokens: _Tokens, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Float64 ``h . W[t] (+ b[t])`` per token: the true class's logit of the given values."""
    count = tokens.target.shape[0]
    every = tokens.rows is None and tokens.hidden.ndim == 2 and tokens.hidden.shape[0] == count
    rows = (tokens.hidden if every else tokens.features(slice(0, count))).double()
    logit = (rows * weight.index_select(0, tokens.target).double()).sum(1)
    return logit if bias is None else logit.add_(bias.index_select(0, tokens.target))


@cpu_read
def _rows_out_of_range(own: Tensor, rest: Tensor, classes: int) -> Tensor | None:
    """The tokens whose ``exp(z_t)`` or ``R`` left the dtype's normal range (``_nll._limits``), or ``None``."""
    tiny, big, floor = _limits(own.dtype, classes)
    ok = (own >= tiny) & (own <= big) & (rest >= floor) & (rest <= big)
    return None if bool(ok.all()) else (~ok).nonzero().squeeze(1)


def _token_losses(tokens: _Tokens, weight: Tensor, bias: Tensor | None, plan: HeadPlan) -> tuple[Tensor, Tensor]:
    """Float64 ``-log p_t`` per token and the true class's logit (as the loss used it)."""
    if not plan.host_reads:
        return _wide_nll(tokens, weight, bias, plan)
    true, rest = _exp_sums(tokens, weight, bias, plan)
    own = true.exp()
    loss, true = (rest / own).log1p_(), true.double()
    bad = _rows_out_of_range(own, rest, weight.shape[0])
    if bad is not None:  # the float64 form, for those tokens alone
        for block in _token_blocks(plan.step, bad.shape[0]):
            index = bad[block]
            loss[index], true[index] = _wide_nll(tokens.subset(index), weight, bias, plan)
    return loss, true


def _smoothing_terms(tokens: _Tokens, weight: Tensor, bias: Tensor | None, class_weight: Tensor | None,
                     lse: Tensor, plan: HeadPlan) -> Tensor:  # fmt: skip
    """Float64 ``sum_c c_c log p_c = h . (sum_c c_c W_c) (+ c . b) - lse sum_c c_c`` per token (``c``: class weights).

    ``lse`` is each token's float64 ``logsumexp_c z_c``. The head's weighted row sum is built a vocabulary block
    at a time, the products a token block at a time: about 5 ops per block of either kind.
    """
    c = lse.new_ones(weight.shape[0]) if class_weight is None else class_weight.to(torch.float64)
    mix = lse.new_zeros(weight.shape[1])
    for cols in plan.cols:
        mix += c[cols] @ weight[cols].double()
    terms = lse * -c.sum()
    if bias is not None:
        terms += c @ bias.double()
    for block in _token_blocks(plan.step, lse.shape[0]):
        terms[block] += tokens.features(block).double() @ mix
    return terms


def _graph_sums(tokens: _Tokens, weight: Tensor, bias: Tensor | None, sample_weight: Tensor | None,
                options: _BlockOptions, plan: HeadPlan, clusters: ClusterSums | None) -> Tensor:  # fmt: skip
    """Sums under autograd: each token block's whole-vocabulary logits through the multiclass kernel."""
    weight = weight.to(plan.dtype)
    bias = None if bias is None else bias.to(plan.dtype)
    sums = torch.zeros(NUM_SUMS, weight.shape[0], dtype=torch.float64, device=weight.device)
    for block in _token_blocks(plan.step, tokens.target.shape[0]):
        logits = F.linear(tokens.features(block).to(plan.dtype), weight, bias)
        weights = None if sample_weight is None else sample_weight[block]
        sink = None if clusters is None else clusters.take(tokens.positions(block))
        sums = sums + softmax_ce_sums(logits, tokens.target[block], options, weights, clusters=sink)
    return sums


def linear_sums(
    hidden: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    sample_weight: Tensor | None,
    options: HeadOptions,
    block_size: int | None = None,
    per_class: bool = True,
    clusters: ClusterSums | None = None,
) -> Tensor:
    """Return the ``(3, V)`` float64 sums of validated ``(..., d)`` hidden states and ``(N,)`` targets, block by block.

    The step :func:`linear_cross_entropy` and the metrics' hidden-state ``update`` share.
    ``per_class=False`` returns their ``(3, 1)`` totals. ``clusters`` (error bars) also gets each
    token's weighted loss and weight (:func:`~xent_metrics.functional._softmax_ce.softmax_ce_sums`).
    """
    classes, device = linear_weight.shape[0], hidden.device
    sums = torch.zeros(NUM_SUMS, classes, dtype=torch.float64, device=device)
    if not target.shape[0]:
        return sums if per_class else sums.sum(1, keepdim=True)
    plan = _chunks.head_plan(hidden, linear_weight, linear_bias, target.shape[0], block_size)
    target = target if target.dtype == torch.int64 else target.long()  # int16 / uint8 cannot index
    compact = plan.host_reads or options.validate_args  # finding the kept rows reads the host
    kept = _kept_rows(target, options.ignore_index, compact)
    if kept is None or kept.shape[0]:
        ignore = None if kept is not None or compact else options.ignore_index  # else their weight is zero
        weights = None if sample_weight is None else _take(sample_weight, slice(None) if kept is None else kept)
        tokens = _Tokens(hidden, kept, target if kept is None else target.index_select(0, kept))
        if plan.grad:
            block_options = _BlockOptions(options.weight, ignore, options.label_smoothing)
            sums = _graph_sums(tokens, linear_weight, linear_bias, weights, block_options, plan, clusters)
        else:
            sums = _loss_sums(sums, tokens, linear_weight, linear_bias, weights, options, ignore, plan, clusters)
    return sums if per_class else sums.sum(1, keepdim=True)


def _loss_sums(sums: Tensor, tokens: _Tokens, weight: Tensor, bias: Tensor | None, sample_weight: Tensor | None,
               options: HeadOptions, ignore: int | None, plan: HeadPlan,
               clusters: ClusterSums | None) -> Tensor:  # fmt: skip
    """Add the tokens' losses into ``sums`` (no autograd): per-token losses, then the multiclass kernel's last step.

    ``clusters`` (error bars) gets each token's weighted loss and weight in that step.
    """
    target, weights = tokens.target, None if sample_weight is None else sample_weight.double()
    if ignore is not None:
        target, weights = _drop_ignored(target, weights, ignore)
        tokens = _Tokens(tokens.hidden, tokens.rows, target)
    loss, true = _token_losses(tokens, weight, bias, plan)
    smooth = None
    if options.label_smoothing:
        smooth = _smoothing_terms(tokens, weight, bias, options.weight, true + loss, plan)
    count = target.shape[0]
    if weights is None:  # unit weights: the weight and target-mass rows count the tokens
        weights = loss.new_ones(count)
    sink = None if clusters is None else clusters.take(tokens.positions(slice(0, count)))
    add_hard_losses(sums, loss, smooth, target, weights, options, sink, slice(0, count))
    return sums


def batch_sums(
    options: HeadOptions,
    batch: tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None],
    *,
    per_class: bool = True,
    clusters: ClusterSums | None = None,
) -> Tensor:
    """A task's ``sums`` step: :func:`linear_sums` of a checked ``(hidden, weight, target, bias, sample_weight)``."""
    hidden, linear_weight, target, linear_bias, sample_weight = batch
    return linear_sums(
        hidden, linear_weight, target, linear_bias, sample_weight, options, options.block_size, per_class, clusters
    )
