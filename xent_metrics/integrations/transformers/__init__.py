r"""Perplexity in a Hugging Face ``Trainer``'s evaluation from the last hidden states: the logits are never built.

:class:`PerplexityTrainer` evaluates a causal language model by running its body (``model.base_model``)
for the last hidden states and handing them, with the output head's weight and bias, to
:func:`~xent_metrics.functional.linear_cross_entropy`, one sequence at a time: no ``(B, L, V)``
logits exist at any point. Each batch becomes ``(B, 3)`` float64 **sums per sequence** (summed token
loss in nats, scored tokens, bytes), which the Trainer's own ``gather_for_metrics`` collects from every
process (dropping the samples its sampler repeats to even out the last batch) and hands to
:class:`PerplexityMetrics`, which folds them into :class:`~xent_metrics.Perplexity`.

A head it cannot read (soft-capped logits, a sharded weight under FSDP, DeepSpeed or a ``DTensor``,
anything that is not a plain ``torch.nn.Linear`` on the body's output, checked on the first
sequence of each evaluation) falls back, with a warning, to the model's logits of one batch at a
time, reduced at once to the same sums. :func:`sequence_sums_from_logits` is that reduction; as a
stock ``Trainer``'s ``preprocess_logits_for_metrics`` it is the whole integration for a Trainer you
cannot replace.
"""

from xent_metrics.integrations.transformers._metrics import PerplexityMetrics
from xent_metrics.integrations.transformers._sums import sequence_sums_from_hidden, sequence_sums_from_logits
from xent_metrics.integrations.transformers._trainer import PerplexityTrainer

__all__ = ["PerplexityMetrics", "PerplexityTrainer", "sequence_sums_from_hidden", "sequence_sums_from_logits"]
