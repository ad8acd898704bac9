"""Token-level perplexity: ``exp`` of the weighted micro cross-entropy, computed from logits stably."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor

from xent_metrics.functional import _error_bars, _validation
from xent_metrics.functional._sums import (
    NUM_SUMS,
    byte_sum_from_sums,
    loss_sum_from_sums,
    weight_sum_from_sums,
)
from xent_metrics.functional._validation import Batch
from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.metrics import _state
from xent_metrics.metrics._head import HeadSumsMetric
from xent_metrics.metrics._options import OptionAttribute

UNITS = ("perplexity", "bits_per_token", "bits_per_byte")
#: The fixed shifts ``r0`` of the error-bar rows (nats per token, nats per byte): near a language model's
#: loss, where the shifted moments lose the fewest digits (:mod:`xent_metrics.functional._error_bars`).
_TOKEN_REFERENCE, _BYTE_REFERENCE = 2.5, 0.7


def _check_units(units: str, num_bytes: int | None) -> None:
    """``units`` is known; ``num_bytes`` (a positive int) is given only with units='bits_per_byte'."""
    _validation.check_choice("units", units, UNITS)
    _validation.check_count("num_bytes", num_bytes)
    if num_bytes is not None and units != "bits_per_byte":
        raise ValueError(
            f"`num_bytes` (the UTF-8 byte count of the evaluated text) goes with units='bits_per_byte' and only "
            f"with it, got units={units!r} and num_bytes={num_bytes!r}."
        )


def _check_bytes_mode(units: str, global_bytes: int | None, num_bytes: object) -> None:
    """Bytes come per update exactly when the metric counts bits per byte and was given no global count.

    Other units read no bytes and take the argument unread, so that one ``MetricCollection`` call feeds a
    perplexity and a bits-per-byte metric alike.
    """
    if units != "bits_per_byte":
        return
    if num_bytes is not None and global_bytes is not None:
        raise ValueError(
            f"This metric was constructed with num_bytes={global_bytes} (the count of all the text), so `update` "
            f"takes no `num_bytes` (got {_seen(num_bytes)}); use one of the two: construct "
            "Perplexity(units='bits_per_byte') without num_bytes to count bytes per update."
        )
    if num_bytes is None and global_bytes is None:
        raise ValueError(
            "`num_bytes` is required in every `update` of Perplexity(units='bits_per_byte') constructed without "
            "num_bytes: pass the batch's UTF-8 byte count, an int or one count per sequence of shape (B,); or "
            "construct the metric with num_bytes=<the count of all the text>."
        )


def _seen(value: object) -> str:
    """What a ``num_bytes`` argument was, for an error message."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"


def _batch_bytes(num_bytes: object, target: Tensor, validate_args: bool, like: Tensor) -> Tensor:
    """The batch's byte count, checked, as a ``(1, 1)`` tensor in ``like``'s dtype and device (the state's row)."""
    if isinstance(num_bytes, numbers.Integral) and not isinstance(num_bytes, bool):
        negative, total = int(num_bytes) < 0, torch.tensor([[int(num_bytes)]], dtype=like.dtype, device=like.device)
    elif isinstance(num_bytes, Tensor) and not (num_bytes.is_floating_point() or num_bytes.is_complex()):
        _check_bytes_tensor(num_bytes, target)
        negative = validate_args and bool((num_bytes < 0).any())
        total = num_bytes.sum().to(device=like.device, dtype=like.dtype).reshape(1, 1)
    else:
        raise TypeError(
            f"`num_bytes` must be an int or an integer tensor of byte counts (one per sequence), "
            f"got {_seen(num_bytes)}."
        )
    if negative:
        raise ValueError(f"`num_bytes` must hold byte counts >= 0, got {_seen(num_bytes)} with a negative count.")
    return total


def _check_bytes_tensor(num_bytes: Tensor, target: Tensor) -> None:
    """An integer tensor of byte counts: one total ``()``, or one per sequence ``(B,)`` (a row of the target).

    A sequence is a row (index 0) of the target: of a ``(B, L)`` target, or one token of an ``(N,)`` target.
    """
    if num_bytes.dtype == torch.bool:
        raise TypeError(f"`num_bytes` must hold integer byte counts, got {_seen(num_bytes)}.")
    sequences = tuple(target.shape[:1])
    if num_bytes.ndim != 0 and tuple(num_bytes.shape) != sequences:
        raise ValueError(
            f"`num_bytes` must have shape () or {sequences}, one count per sequence, i.e. per row of the target, "
            f"for target of shape {tuple(target.shape)}; got {_seen(num_bytes)}. Pass the batch's total as an int, "
            "or one count per sequence."
        )


def _vocab_last(preds: object, target: object, validate_args: bool) -> tuple[Tensor, Tensor]:
    """Check the language-model layout ``(..., V)`` / ``(...)`` and return ``preds`` with V in dimension 1."""
    preds = _validation.check_float_preds(preds, not validate_args)
    target = _validation.check_tensor("target", target, not validate_args)
    if preds.ndim < 2 or preds.shape[-1] < 2 or tuple(target.shape) != tuple(preds.shape[:-1]):
        raise ValueError(
            "`preds` must have shape (..., V) with the vocabulary last and V >= 2, e.g. (B, L, V), and `target` "
            f"the token ids of shape (...), e.g. (B, L); got preds {tuple(preds.shape)} and target "
            f"{tuple(target.shape)}.{_classes_first_hint(preds, target)}"
        )
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"`target` must hold integer token ids, got dtype {target.dtype}.")
    return (preds.movedim(-1, 1) if preds.ndim > 2 else preds), target


def _classes_first_hint(preds: Tensor, target: Tensor) -> str:
    """The fix for ``preds`` in ``F.cross_entropy``'s ``(B, V, L)`` layout, or "" when the shapes do not fit it."""
    if preds.ndim < 3 or tuple(target.shape) != tuple(preds.shape[:1] + preds.shape[2:]):
        return ""
    return (
        f" The vocabulary looks to be in dimension 1 (F.cross_entropy's (B, V, L) layout, V={preds.shape[1]}): "
        "pass `preds.movedim(1, -1)`, or use `MulticlassCrossEntropy`, which takes that layout as is."
    )


class Perplexity(HeadSumsMetric):
    r"""Token-level perplexity of a language model, accumulated exactly and computed stably from logits.

    .. math::
        \mathrm{PPL} = \exp\left(-\frac{\sum_t w_t \log \mathrm{softmax}(z_t)_{y_t}}{\sum_t w_t}\right)

    over every token ``t`` of every batch and process, ignored tokens dropping out. The log-softmax
    runs through log-sum-exp and the mean is accumulated in float64, so extreme logits give a
    finite result: a logit margin of 100 against the true token costs ``exp(100)``, where
    torchmetrics' and torcheval's ``Perplexity`` (softmax, then log) give ``inf``. The result is
    ``inf`` only when the mean cross-entropy exceeds ``log(float64 max) ~ 709.78``.

    Parameters
    ----------
    ignore_index : int, optional
        Token id that drops out, e.g. ``-100`` for padding (Hugging Face's and ``F.cross_entropy``'s
        convention).
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How ``preds`` is read (probabilities are clipped to ``[eps, 1 - eps]``).
    validate_args : bool, default=True
        Check input values in ``update`` (a device-to-host sync). With ``False`` only type, shape
        and device checks run.
    fused : bool, default=False
        Run the logits through a ``torch.compile``-d kernel, compiled once per vocabulary size (and
        sequence length, for ``(B, L, V)`` batches) on the first batch of at least ``2**23`` logits;
        see :func:`~xent_metrics.functional.multiclass_cross_entropy`.
    units : {"perplexity", "bits_per_token", "bits_per_byte"}, default="perplexity"
        What ``compute`` returns, from the same sums: ``exp(CE)``; ``CE / ln 2``, the base-2 log of
        the perplexity; or lm-evaluation-harness' ``bits_per_byte``, the total negative
        log-likelihood over ``num_bytes * ln 2``.
    num_bytes : int, optional
        With ``units="bits_per_byte"`` (and only then): the UTF-8 byte count of all the text whose
        tokens are evaluated between two resets, over every process (lm-evaluation-harness counts
        ``len(doc.encode("utf-8"))`` per document). ``forward``'s batch value divides that batch's
        loss by the same count. The alternative, where the count is not known ahead: construct
        without ``num_bytes`` and pass each batch's bytes to ``update(..., num_bytes=n)`` (see Notes).
        ``merge_state`` and ``load_state_dict`` take only the state of a ``Perplexity`` of the same
        ``units`` and ``num_bytes`` (the count of everything pooled), or, bytes given per update, of
        another such metric (its byte count adds).
    error_bars : bool, default=False
        Keep the error-bar rows for :meth:`compute_interval`: five more float64 rows, still one
        ``all_reduce``. A cluster is a sequence (index 0 of the batch), or the sequences of one
        document given by ``update(..., cluster_ids=ids)`` (shape ``(B,)``; a cluster lies within one
        update). With bits per byte and bytes per update, ``num_bytes`` must be one count per sequence,
        ``(B,)`` (``(N,)`` for an ``(N,)`` target, each row a cluster): the clusters' denominators are their
        bytes. ``False`` leaves the state and the update as
        without the option.
    **kwargs
        torchmetrics' ``Metric`` options.

    Shape
    -----
    - ``preds``: ``(B, L, V)`` or ``(N, V)``, vocabulary last (``update`` and ``forward``); or the hidden
      states ``(B, L, d)`` / ``(N, d)`` of a linear head given as ``linear_weight``.
    - ``target``: ``(B, L)`` or ``(N,)`` token ids.
    - ``sample_weight``: ``(B, L)`` / ``(N,)`` per token, or ``(B,)`` per sequence.
    - ``linear_weight``: ``(V, d)``.
    - ``linear_bias``: ``(V,)``.
    - ``num_bytes``: an int, or ``(B,)`` one count per sequence (``(N,)``, one per row, for an ``(N,)`` target).
    - Output: ``()`` (``compute`` and ``forward``).

    Attributes
    ----------
    sums : Tensor of shape (3, 1), or (4, 1) with bytes given per update
        float64 loss and weight sums over all tokens (row 2 repeats the weight), whatever ``units``;
        with ``units="bits_per_byte"`` and no ``num_bytes``, row 3 is the byte count of every update.
        Summed across processes with one ``all_reduce`` (the bytes in it) and saved in ``state_dict``.

    Raises
    ------
    TypeError
        ``preds`` not floating, ``target`` not integer, or an argument of the wrong type.
    ValueError
        ``preds`` not ``(..., V)`` with ``target`` of shape ``(...)``, token ids out of range, NaN or
        inf, negative weights, an unknown option, or inputs on another device than the metric;
        ``update``'s ``num_bytes`` negative, of the wrong shape, missing on a ``bits_per_byte``
        metric constructed without ``num_bytes``, or given to one constructed with it (``TypeError``
        where it is not an int or an integer tensor); ``compute`` of tokens over a total of 0 bytes.
        A rejected ``update`` leaves the state exactly as it was.

    See Also
    --------
    MulticlassCrossEntropy : The per-class cross-entropy, classes in dimension 1.

    Notes
    -----
    ``update(preds, target, sample_weight=None)`` takes the language-model layout, vocabulary
    **last** as torchmetrics' ``Perplexity``: ``preds`` of shape ``(B, L, V)`` (or ``(N, V)``),
    ``target`` of shape ``(B, L)`` (or ``(N,)``), and ``sample_weight`` per token ``(B, L)`` or
    per sequence ``(B,)``. The ``(B, L, V)`` logits are read in place (a strided view, no copy).
    The state is ``(3, 1)`` whatever ``V``, so the sync sends three numbers.

    ``update(hidden, target, sample_weight=None, linear_weight=W, linear_bias=b)`` takes the hidden
    states ``(B, L, d)`` (or ``(N, d)``) that a linear head ``W`` ``(V, d)``, ``b`` ``(V,)`` turns into
    logits, and adds the same sums without building the ``(B, L, V)`` logits: see
    :func:`~xent_metrics.functional.linear_cross_entropy` (blocks of at most 8 MiB of logits; on the
    CPU ignored tokens are never projected). ``input_format`` must be ``"logits"``.

    The bits follow lm-evaluation-harness (``lm_eval/api/metrics.py``): ``bits_per_byte(items) =
    -weighted_mean(items) / log(2)`` over ``(loglikelihood, bytes)`` items per document, i.e. the
    summed token loss in nats over the summed bytes, over ``ln 2``. With a byte-level tokenizer it
    equals ``bits_per_token``.

    Bytes per update: ``Perplexity(units="bits_per_byte")`` without ``num_bytes`` takes
    ``update(..., num_bytes=n)`` in every update (logits or hidden states), ``n`` an int (the batch's
    total) or an integer tensor of one count per sequence, shape ``(B,)`` for ``(B, L)`` targets (``(N,)``,
    one per row, for ``(N,)`` targets).
    Only the total is kept, as a float64 fourth row of ``sums``: under DDP each rank passes its own
    shard's bytes and the one ``all_reduce`` adds them with the losses, so the value is exact.
    ``forward`` returns the batch's loss over the batch's bytes. Bytes are given one way only: an
    update without ``num_bytes`` on such a metric, or with it on a metric constructed with
    ``num_bytes``, is refused. Metrics of the other units take ``num_bytes`` and leave it unread, so
    that one ``MetricCollection`` update feeds, say, a perplexity and a bits-per-byte metric. With
    ``validate_args=False`` negative counts are not looked for (that would read the tensor back).

    Examples
    --------
    >>> import torch
    >>> from xent_metrics import Perplexity
    >>> metric = Perplexity(ignore_index=-100)
    >>> logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens: perplexity 4
    >>> metric.update(logits, torch.tensor([[2, 0, -100]]))
    >>> metric.compute()
    tensor(4.0000, dtype=torch.float64)
    >>> extreme = torch.tensor([[[100.0, 0.0]]])  # the true token 1 is 100 nats behind
    >>> Perplexity()(extreme, torch.tensor([[1]]))  # exp(100), finite
    tensor(2.6881e+43, dtype=torch.float64)
    >>> head = torch.nn.Linear(3, 4)  # hidden states in: the logits are made a block at a time
    >>> _ = torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
    >>> bits = Perplexity(units="bits_per_token")
    >>> bits.update(torch.randn(2, 5, 3), torch.randint(0, 4, (2, 5)), linear_weight=head.weight, linear_bias=head.bias)
    >>> bits.compute()  # log2(4): two bits per token
    tensor(2., dtype=torch.float64)
    >>> per_byte = Perplexity(units="bits_per_byte", ignore_index=-100)  # bytes counted per update
    >>> tokens = torch.tensor([[1, 2, 3], [0, -100, -100]])  # two sequences of 5 and 3 bytes
    >>> per_byte.update(torch.zeros(2, 3, 4), tokens, num_bytes=torch.tensor([5, 3]))
    >>> per_byte.update(torch.zeros(1, 2, 4), torch.tensor([[3, 1]]), num_bytes=4)
    >>> per_byte.compute()  # 6 tokens of 2 bits over 5 + 3 + 4 bytes
    tensor(1., dtype=torch.float64)
    """

    plot_lower_bound = 1.0
    _task_name = "perplexity"
    input_format: OptionAttribute[str] = OptionAttribute()
    ignore_index: OptionAttribute[int | None] = OptionAttribute()
    validate_args: OptionAttribute[bool] = OptionAttribute()
    fused: OptionAttribute[bool] = OptionAttribute()

    def __init__(
        self,
        ignore_index: int | None = None,
        *,
        input_format: str = "logits",
        validate_args: bool = True,
        fused: bool = False,
        units: str = "perplexity",
        num_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _validation.check_common_args(input_format, ignore_index, 0.0)  # these errors come before the units'
        _check_units(units, num_bytes)
        self.task = MulticlassTask(
            input_format=input_format, ignore_index=ignore_index, validate_args=validate_args, fused=fused
        )
        self._per_class = False
        self.units = units
        self.num_bytes = num_bytes
        rows = NUM_SUMS + 1 if self._bytes_per_update else NUM_SUMS
        self._error_reference = _BYTE_REFERENCE if self._bytes_per_update else _TOKEN_REFERENCE
        self._add_sums_state(1, _state.state_dtype(self.device), rows=rows)

    @property
    def _bytes_per_update(self) -> bool:
        """Whether ``update`` takes ``num_bytes`` (bits per byte without a global count): the state has a bytes row."""
        return self.units == "bits_per_byte" and self.num_bytes is None

    def update(
        self,
        preds: Tensor,
        target: Tensor,
        sample_weight: Tensor | None = None,
        *,
        linear_weight: Tensor | None = None,
        linear_bias: Tensor | None = None,
        num_bytes: int | Tensor | None = None,
    ) -> None:
        """Add a batch (see the class's Notes); ``num_bytes``: its byte count, an int or one per sequence ``(B,)``.

        A batch that is refused changes nothing.
        """
        task, batch = self._task_and_batch(preds, target, sample_weight, linear_weight, linear_bias)
        self.sums.add_(self._with_extra_rows(task.sums(batch, per_class=False), target, num_bytes=num_bytes))

    def _with_extra_rows(self, sums: Tensor, target: Tensor, **extra: Any) -> Tensor:
        """The batch's ``(3, 1)`` sums, and its byte count (``num_bytes``) as a fourth row if bytes come per update."""
        num_bytes = extra.pop("num_bytes", None)
        sums = super()._with_extra_rows(sums, target, **extra)
        _check_bytes_mode(self.units, self.num_bytes, num_bytes)
        if not self._bytes_per_update:
            return sums
        return torch.cat([sums, _batch_bytes(num_bytes, target, self.task.validate_args, sums)])

    @property
    def _per_byte(self) -> bool:
        """A cluster's denominator: its bytes where bytes come per update, else its token weight."""
        return self._bytes_per_update

    def _cluster_bytes(self, target: Tensor, sequences: int, extra: dict) -> Tensor | None:
        """Each sequence's byte count (required: one per sequence) where bytes come per update, else ``None``."""
        num_bytes = extra.pop("num_bytes", None)
        super()._cluster_bytes(target, sequences, extra)
        _check_bytes_mode(self.units, self.num_bytes, num_bytes)
        if not self._bytes_per_update:
            return None
        if not isinstance(num_bytes, Tensor) or tuple(num_bytes.shape) != (sequences,):
            raise ValueError(
                f"With error_bars=True, bits per byte take the clusters' bytes as their denominators: pass `num_bytes` "
                f"as one count per sequence, an integer tensor of shape ({sequences},) (one per row of the target: a "
                f"sequence of a (B, L) target, a token of an (N,) one); got {_seen(num_bytes)} for target of shape "
                f"{tuple(target.shape)}."
            )
        _batch_bytes(num_bytes, target, self.task.validate_args, self.sums)  # the checks, once
        return num_bytes.to(device=self.sums.device, dtype=self.sums.dtype)

    def _interval_from_sums(self, sums: Tensor, confidence: float) -> dict[str, Tensor]:
        """The interval in the metric's units: ``exp`` of the ends for perplexity, bits divided by ``ln 2``.

        With a global ``num_bytes`` the token interval is scaled by :meth:`_global_byte_scale`.
        """
        value, stderr = _error_bars.stderr_from_sums(sums, self._error_reference, per_byte=self._per_byte)
        if self.units == "perplexity":
            return _error_bars.interval(value, stderr, confidence, torch.exp)
        scale = self._global_byte_scale(sums)
        if scale is not None:
            value, stderr = value * scale, stderr * scale
        return _error_bars.interval(value, stderr, confidence, _error_bars.bits)

    def _global_byte_scale(self, sums: Tensor) -> Tensor | None:
        """With a global ``num_bytes``, the tokens' weight per byte (nats per token to nats per byte), else None.

        The count is fixed, so the value and its standard error scale alike.
        """
        if self.units != "bits_per_byte" or self._bytes_per_update:
            return None
        assert self.num_bytes is not None
        return weight_sum_from_sums(sums) / self.num_bytes

    def _score_batch(self, preds: Tensor, target: Tensor, sample_weight: object) -> Batch:
        """Check a batch of ``(..., V)`` scores: the vocabulary moved to dimension 1, then the task's checks."""
        moved, target = _vocab_last(preds, target, self.task.validate_args)
        return self.task.check_batch(moved, target, sample_weight)

    def _reader(self) -> str:
        """The units and the byte count only read the sums, but states of other ones never pool."""
        num_bytes = "per update" if self._bytes_per_update else repr(self.num_bytes)
        return f"Perplexity(units={self.units!r}, num_bytes={num_bytes})"

    def compute(self) -> Tensor:
        """Return the value over everything added since the last ``reset``, on all processes.

        Raises ``ValueError`` where bits per byte are asked of tokens with weight but no bytes counted.
        """
        no_bytes = self._bytes_per_update and bool(byte_sum_from_sums(self.sums) == 0)
        if no_bytes and bool(weight_sum_from_sums(self.sums) > 0):
            raise ValueError(
                "Perplexity(units='bits_per_byte') was updated with tokens but a total of 0 bytes (`num_bytes` "
                "summed over every update and process); pass each batch's UTF-8 byte count."
            )
        return super().compute()

    def _value_from_sums(self, sums: Tensor) -> Tensor:
        ce = self.task.cross_entropy(sums)
        if self.units == "perplexity":
            return torch.exp(ce)
        if self.units == "bits_per_token":
            return ce / math.log(2)
        num_bytes = byte_sum_from_sums(sums) if self._bytes_per_update else self.num_bytes
        assert num_bytes is not None  # bytes come per update, or globally
        bits = loss_sum_from_sums(sums) / (math.log(2) * num_bytes)  # lm-evaluation-harness' bits_per_byte
        return torch.where(torch.isnan(ce), ce, bits)  # no data: nan (warned), as the other units
