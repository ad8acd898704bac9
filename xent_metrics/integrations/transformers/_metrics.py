"""``compute_metrics`` for per-sequence sums: they are folded into :class:`~xent_metrics.Perplexity`."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from transformers import EvalPrediction

from xent_metrics.integrations.transformers._sums import BYTES, LOSS, TOKENS
from xent_metrics.metrics import Perplexity


def _fold(total: Tensor, units: str, num_bytes: int | None) -> float:
    """``Perplexity(units=...)`` of summed loss and tokens, added as one row of log-probabilities.

    :class:`~xent_metrics.Perplexity` takes no sums from outside, so the mean token loss ``m`` enters
    as the log-probability ``-m`` of a two-token distribution, weighted by the token count: its sums
    are then the token count times ``m`` (one rounding) and the token count.
    """
    metric = Perplexity(input_format="log_probs", units=units, num_bytes=num_bytes, sync_on_compute=False)
    tokens = total[TOKENS]
    if tokens > 0:
        mean = total[LOSS] / tokens
        row = torch.stack([-mean, torch.log(-torch.expm1(-mean))])[None]  # log p and log(1 - p)
        metric.update(row, torch.zeros(1, dtype=torch.long), sample_weight=tokens[None])
    return float(metric.compute())  # no tokens: Perplexity warns and returns nan


def _as_sums(predictions: object) -> Tensor:
    """The ``(N, 3)`` per-sequence sums of an ``EvalPrediction`` as a float64 CPU tensor."""
    if isinstance(predictions, (tuple, list)) and len(predictions) == 1:
        predictions = predictions[0]
    if isinstance(predictions, np.ndarray):
        predictions = torch.from_numpy(predictions)
    if not isinstance(predictions, Tensor) or predictions.ndim != 2 or predictions.shape[1] != 3:
        seen = tuple(predictions.shape) if isinstance(predictions, Tensor) else type(predictions).__name__
        raise ValueError(
            f"`predictions` must be the (N, 3) per-sequence sums of PerplexityTrainer or of "
            f"`preprocess_logits_for_metrics=sequence_sums_from_logits`, got {seen}. If these are logits, pass "
            "that preprocess_logits_for_metrics to the Trainer, or use PerplexityTrainer."
        )
    return predictions.detach().to("cpu", torch.float64)


class PerplexityMetrics:
    """``compute_metrics`` for per-sequence sums: perplexity, bits per token and (with bytes) bits per byte.

    Works with ``batch_eval_metrics=False`` (one call with every gathered sequence) and ``True``
    (one call per gathered batch, ``compute_result=True`` on the last: the sums are added in float64
    and the value returned then). The sums are folded into :class:`~xent_metrics.Perplexity`.

    Parameters
    ----------
    num_bytes : int, optional
        The UTF-8 byte count of all the scored text, for ``bits_per_byte`` when the batches carry no
        per-sequence byte counts (``PerplexityTrainer(bytes_column=...)``). Mixing the two is refused.

    Examples
    --------
    >>> import numpy as np
    >>> from transformers import EvalPrediction
    >>> sums = np.array([[2.0, 2.0, 0.0], [1.0, 3.0, 0.0]])  # 3 nats over 5 tokens
    >>> metrics = PerplexityMetrics(num_bytes=10)(EvalPrediction(predictions=sums, label_ids=sums[:, 1]))
    >>> {key: round(value, 4) for key, value in metrics.items()}  # exp(0.6), 0.6 / ln 2, 3 / (10 ln 2)
    {'perplexity': 1.8221, 'bits_per_token': 0.8656, 'bits_per_byte': 0.4328, 'tokens': 5.0}
    """

    def __init__(self, *, num_bytes: int | None = None) -> None:
        if num_bytes is not None:
            Perplexity(units="bits_per_byte", num_bytes=num_bytes)  # refuses a count that is not a positive int
        self.num_bytes = num_bytes
        self._running: Tensor | None = None

    def __call__(self, eval_pred: EvalPrediction, compute_result: bool | None = None) -> dict[str, float]:
        """Return the metrics of the gathered sums (``compute_result``: the ``batch_eval_metrics`` protocol)."""
        total = _as_sums(eval_pred.predictions).sum(0)
        if compute_result is None:
            return self.from_sums(total)
        total = total if self._running is None else self._running + total
        if not compute_result:
            self._running = total
            return {}
        self._running = None
        return self.from_sums(total)

    def from_sums(self, total: Tensor) -> dict[str, float]:
        """The metrics of summed ``(3,)`` loss, tokens and bytes."""
        num_bytes = self.num_bytes
        if float(total[BYTES]) > 0:
            if num_bytes is not None:
                raise ValueError(
                    f"The batches carry per-sequence byte counts (total {int(total[BYTES])}) and "
                    f"PerplexityMetrics(num_bytes={num_bytes}) was given too; pass one of the two."
                )
            num_bytes = round(float(total[BYTES]))
        metrics = {"perplexity": _fold(total, "perplexity", None)}
        nan = float("nan")  # no tokens: Perplexity warned once above
        metrics["bits_per_token"] = _fold(total, "bits_per_token", None) if total[TOKENS] > 0 else nan
        if num_bytes is not None:
            metrics["bits_per_byte"] = _fold(total, "bits_per_byte", num_bytes) if total[TOKENS] > 0 else nan
        metrics["tokens"] = float(total[TOKENS])
        return metrics
