"""The hook names of ``SumsMetric`` before issue 13 (``_increments``, ``_value``), forwarding to the new ones.

Only until ``SumsMetric`` itself calls ``_batch_sums`` and ``_value_from_sums`` (the metrics-methods
change): then this module and its three uses go.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


class HookNamesBridge:
    """``_increments`` -> ``_batch_sums``, ``_value`` -> ``_value_from_sums``."""

    def _increments(self, *args: Any, **kwargs: Any) -> Tensor:
        return self._batch_sums(*args, **kwargs)  # type: ignore[attr-defined]

    def _value(self, sums: Tensor) -> Tensor:
        return self._value_from_sums(sums)  # type: ignore[attr-defined]
