"""Row chunking: the work of every update runs over row blocks that fit in cache.

No function holds a temporary of the size of ``preds``; only chunk-sized ones. Results do not depend
on the chunk size (the sums are float64 and each row is computed independently).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

#: Elements per chunk (float32: 1 MiB); a few chunk-sized temporaries stay in the L2 cache.
CHUNK_ELEMENTS = 1 << 18


def row_slices(num_rows: int, row_numel: int, chunk_elements: int | None = None) -> Iterator[slice]:
    """Yield slices over ``num_rows`` rows of ``row_numel`` elements each, about ``chunk_elements`` per slice."""
    budget = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    step = max(1, budget // max(1, row_numel))
    for start in range(0, num_rows, step):
        yield slice(start, min(start + step, num_rows))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the math runs in: float64 stays float64, anything else runs in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32
