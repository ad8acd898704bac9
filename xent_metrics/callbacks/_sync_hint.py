"""Lightning's "use ``sync_dist=True``" hint, silenced for the monitor's own keys while a trainer call runs.

The monitors log values that ``compute()`` has already synced, so they log with ``sync_dist=False``; under DDP
Lightning then suggests ``sync_dist=True`` for each of those keys at every epoch end (syncing each scalar again
would cost K + 1 collectives). The hint is emitted by Lightning's logger connector, outside any hook of the
monitor, so the filter has to be process-wide: :func:`ignore_sync_hint` adds it when the trainer sets the monitor
up and :func:`remove_filter` takes exactly that filter out again at teardown (or when the call fails), so that
no filter outlives the trainer call and every other filter stays where it was (two monitors can tear down in any
order, which nested ``warnings.catch_warnings`` contexts cannot).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import cast

from lightning.fabric.utilities.warnings import PossibleUserWarning


def sync_hint_pattern(stages: Sequence[str], prefix: str) -> str:
    r"""The regular expression that matches Lightning's hint for the keys ``{stage}/{prefix}[_low|_high][/{name}]``.

    Examples
    --------
    >>> import re
    >>> pattern = sync_hint_pattern(["val"], "bce")
    >>> hint = "It is recommended to use `self.log('{}', ..., sync_dist=True)` when logging on epoch level"
    >>> keys = ("val/bce/cat", "val/bce", "val/bce_low/cat", "val/bce_high", "val/loss", "train/bce", "val/bce_x")
    >>> [bool(re.match(pattern, hint.format(key))) for key in keys]
    [True, True, True, True, False, False, False]
    """
    keys = rf"({'|'.join(stages)})/{re.escape(prefix)}(_low|_high)?(/[^']*)?"
    return rf"It is recommended to use `self\.log\('{keys}', \.\.\., sync_dist=True\)`"


def ignore_sync_hint(stages: Sequence[str], prefix: str) -> tuple[object, ...] | None:
    """Ignore Lightning's hint for these keys; return the filter added (``None`` when an equal one was there)."""
    before = list(warnings.filters)
    warnings.filterwarnings("ignore", message=sync_hint_pattern(stages, prefix), category=PossibleUserWarning)
    added = [entry for entry in warnings.filters if entry not in before]
    return added[0] if added else None


def remove_filter(entry: tuple[object, ...] | None) -> None:
    """Take out the filter :func:`ignore_sync_hint` added (only that one); nothing when it is gone or ``None``.

    Removing an ``"ignore"`` filter leaves the modules' warning registries valid: an ignored warning is never
    recorded there, so the warnings it silenced are shown again after the call.
    """
    if entry is not None and entry in warnings.filters:
        cast("list[object]", warnings.filters).remove(entry)  # typeshed types the list as a read-only Sequence
