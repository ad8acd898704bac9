"""``PerplexityTrainer``: a ``Trainer`` whose evaluation reads the output head instead of building the logits."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel, Trainer

from xent_metrics.integrations.transformers._metrics import PerplexityMetrics
from xent_metrics.integrations.transformers._sums import (
    LOSS,
    TOKENS,
    sequence_sums_from_hidden,
    sequence_sums_from_logits,
)


def _readable_head(trainer: Trainer, model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Linear] | str:
    """The body and linear output head of ``model``, or why they cannot be read."""
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        return "its parameters are sharded (FSDP or DeepSpeed)"
    head = model.get_output_embeddings() if isinstance(model, PreTrainedModel) else None
    body = getattr(model, "base_model", model)
    if type(head) is not torch.nn.Linear or body is model:
        return f"its output head ({type(head).__name__}) is not a torch.nn.Linear on a separate body"
    if type(head.weight.data) is not Tensor:
        return f"its output head's weight is a {type(head.weight.data).__name__} (sharded)"
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if cap:
        return f"its logits are soft-capped (final_logit_softcapping={cap})"
    return body, head


def _last_hidden(body: torch.nn.Module, inputs: dict[str, Any]) -> Tensor:
    """The body's last hidden states ``(B, L, d)`` (no key-value cache built)."""
    extra = {"use_cache": False} if "use_cache" in inspect.signature(body.forward).parameters else {}
    outputs = body(**inputs, **extra)
    return outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]


def _probe(
    model: torch.nn.Module, inputs: dict[str, Any], batch: int, body: torch.nn.Module, head: torch.nn.Linear
) -> str | None:
    """Compare the model's logits on the first sequence with the head on its hidden states; a mismatch's reason."""
    one = {k: v[:1] if isinstance(v, Tensor) and v.shape[:1] == (batch,) else v for k, v in inputs.items()}
    outputs = model(**one)
    logits = (outputs.logits if hasattr(outputs, "logits") else outputs[0])[0]
    mine = torch.nn.functional.linear(_last_hidden(body, one)[0], head.weight, head.bias)
    tol = max(1e-3, 16 * torch.finfo(logits.dtype).eps) * (1 + float(logits.abs().max()))
    diff = float((logits - mine).abs().max()) if logits.shape == mine.shape else float("inf")
    return None if diff <= tol else f"its logits are not its head on its last hidden states (off by {diff:.3g})"


class PerplexityTrainer(Trainer):
    """A ``Trainer`` whose evaluation scores a causal LM from its last hidden states, never its logits.

    Each evaluation batch runs ``model.base_model`` and reduces its hidden states with the head's
    weight and bias to ``(B, 3)`` float64 sums per sequence (:func:`sequence_sums_from_hidden`);
    those are the "predictions" the Trainer gathers (``gather_for_metrics``) and keeps, and
    ``compute_metrics`` defaults to :class:`PerplexityMetrics`: ``evaluate()`` returns
    ``eval_perplexity``, ``eval_bits_per_token`` (and ``eval_bits_per_byte``), ``eval_tokens``.
    Training is the stock Trainer's.

    Parameters
    ----------
    model, args, **kwargs
        ``Trainer``'s arguments (all but ``model`` and ``args`` by keyword). ``compute_metrics``
        defaults to ``PerplexityMetrics()``.
    bytes_column : str, optional
        A column of the evaluation batches holding each sequence's byte count (an integer), for
        ``eval_bits_per_byte``; it is kept through ``remove_unused_columns`` and never reaches the model.
    shift : bool, default=True
        Causal language modelling (position ``t`` predicts ``labels[:, t + 1]``); ``False`` for
        labels already aligned with the positions.

    Notes
    -----
    ``eval_loss`` is each batch's token mean, averaged over batches by the Trainer (weighted by
    their numbers of sequences): not the token mean over the whole set that
    ``eval_perplexity`` is the exponential of. A batch with no scored token has a ``nan`` loss, as
    the stock Trainer's; transformers 5 leaves it out of ``eval_loss``, 4.46 does not.

    A head that cannot be read (see the module's description) warns once per evaluation and is
    evaluated from the logits of one batch at a time, reduced at once to the same sums.
    """

    label_names: list[str]

    def __init__(
        self,
        model: Any = None,
        args: Any = None,
        *,
        bytes_column: str | None = None,
        shift: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("compute_metrics") is None:
            kwargs["compute_metrics"] = PerplexityMetrics()
        super().__init__(model, args, **kwargs)
        self.bytes_column = bytes_column
        self.shift = shift
        self._head: tuple[torch.nn.Module, torch.nn.Linear] | str | None = None
        if bytes_column is not None and bytes_column not in self.label_names:
            self.label_names = [*self.label_names, bytes_column]  # kept by remove_unused_columns

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        """The stock loop; the head is read (and checked) again at the start of each evaluation."""
        self._head = None
        return super().evaluation_loop(*args, **kwargs)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The stock loss, without the byte-count column (not a model input)."""
        inputs = {key: value for key, value in inputs.items() if key != self.bytes_column}
        return super().compute_loss(model, inputs, *args, **kwargs)

    def prediction_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: Any = None
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Return the batch's token-mean loss, its ``(B, 3)`` per-sequence sums and its ``(B,)`` token counts."""
        device = self.args.device
        inputs = {key: value.to(device) if isinstance(value, Tensor) else value for key, value in inputs.items()}
        labels = inputs.pop("labels", None)
        if labels is None:
            raise ValueError(
                "PerplexityTrainer needs `labels` in every evaluation batch (the input ids, -100 where not "
                f"scored), got the keys {sorted(inputs)}; e.g. DataCollatorForLanguageModeling(tokenizer, mlm=False)."
            )
        num_bytes = inputs.pop(self.bytes_column, None) if self.bytes_column is not None else None
        with torch.no_grad(), self.compute_loss_context_manager():
            sums = self._batch_sums(self.accelerator.unwrap_model(model), inputs, labels, num_bytes)
        loss = (sums[:, LOSS].sum() / sums[:, TOKENS].sum()).float()  # nan without tokens, as the stock loss
        if prediction_loss_only:
            return loss, None, None
        return loss, sums, sums[:, TOKENS].long()  # the Trainer calls compute_metrics only with labels

    def _batch_sums(
        self, model: torch.nn.Module, inputs: dict[str, Any], labels: Tensor, num_bytes: Tensor | None
    ) -> Tensor:
        """The batch's sums from the hidden states, or from the logits where the head cannot be read."""
        read = self._head
        if read is None:
            read = _readable_head(self, model)
            if not isinstance(read, str):
                read = _probe(model, inputs, labels.shape[0], *read) or read
            if isinstance(read, str):
                self._warn_fallback(read)
            self._head = read
        if isinstance(read, str):
            outputs = model(**inputs)
            logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
            return sequence_sums_from_logits(logits, labels, num_bytes, shift=self.shift)
        body, head = read
        hidden = _last_hidden(body, inputs)
        weight, bias = head.weight.to(hidden.dtype), None if head.bias is None else head.bias.to(hidden.dtype)
        return sequence_sums_from_hidden(hidden, labels, weight, bias, num_bytes, shift=self.shift)

    @staticmethod
    def _warn_fallback(reason: str) -> None:
        warnings.warn(
            f"PerplexityTrainer cannot read the model's output head: {reason}. This evaluation runs the whole "
            "model and reduces the logits of each batch at once (one batch of (B, L, V) logits at a time).",
            UserWarning,
            stacklevel=4,
        )
