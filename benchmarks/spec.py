"""What a benchmark case is: its implementations and its typed targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20

Inputs = dict[str, Any]
Call = Callable[[], Any]


@dataclass(frozen=True)
class Impl:
    """One implementation of a case: ``build(inputs)`` returns the zero-argument call that is timed."""

    name: str
    ours: bool
    build: Callable[[Inputs], Call]
    warm_rows: int | None = 2  # memory child: warm the code path on this many rows first (None: no warm-up)
    full_only: bool = False  # left out of --quick
    meta: bool = False  # also count its ops on a `meta` batch (the device-independent dispatch count)
    torch_ops: bool = True  # False for numpy/scikit-learn peers: no aten op count to show


@dataclass(frozen=True)
class Speedup:
    """``peer time / impl time >= at_least``, at every thread count measured."""

    what: str
    impl: str
    peer: str
    at_least: float


@dataclass(frozen=True)
class FloorFraction:
    """``floor time / impl time >= at_least``: how close to one ``exp`` per logit or one read of the input."""

    what: str
    impl: str
    at_least: float


@dataclass(frozen=True)
class PeakMemory:
    """Peak extra memory of one call of ``impl`` (inputs not counted) at most ``limit_bytes``."""

    what: str
    impl: str
    limit_bytes: float


@dataclass(frozen=True)
class Accuracy:
    """The fact ``key`` (a relative error) at most ``limit``, or at most the fact ``than`` (a peer's error)."""

    what: str
    key: str
    limit: float | None = None
    than: str | None = None


@dataclass(frozen=True)
class OpsAtMost:
    """Aten ops one call of ``impl`` dispatches on a ``meta`` batch: at most ``limit``, whatever the batch size."""

    what: str
    impl: str
    limit: int


Target = Speedup | FloorFraction | PeakMemory | Accuracy | OpsAtMost


@dataclass
class Case:
    """A workload, the implementations timed side by side on it, and the targets they are held to."""

    name: str
    title: str
    make: Callable[[str], Inputs]  # device -> inputs
    impls: list[Impl]
    peer: str  # the peer each of ours is compared with in the table
    input_bytes: Callable[[Inputs], int]
    floor_work: Callable[[Inputs], tuple[int, int, int]]  # (exp count, log1p count, bytes read)
    targets: list[Target] = field(default_factory=list)
    check: Callable[[Inputs, dict[str, Any]], dict[str, float]] | None = None  # inputs, first outputs -> facts
    per_call: bool = False  # tiny per-step cases: time many calls per sample, no memory or floor column
    cpu_only: bool = False


def head(x: Inputs, rows: int) -> Inputs:
    """The first ``rows`` rows of every array or tensor in ``x`` (for warm-up calls)."""
    return {k: v[:rows] if hasattr(v, "shape") else v for k, v in x.items()}
