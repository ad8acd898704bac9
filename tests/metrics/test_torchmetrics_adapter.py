"""The torchmetrics private names the adapter relies on exist, and no other module of the package touches them.

``xent_metrics/metrics/_torchmetrics.py`` overrides private hooks of ``torchmetrics.Metric`` and writes
its private bookkeeping. A torchmetrics release that renames one would silently bypass an override
(a rejected update counted, a sync of five collectives): these tests fail first, naming it.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re
from collections.abc import Iterable

import pytest
import torch
import torchmetrics
from torchmetrics import Metric

import xent_metrics
from xent_metrics.metrics._base import SumsMetric
from xent_metrics.metrics._torchmetrics import PRIVATE_NAMES, TorchmetricsAdapter

PACKAGE = pathlib.Path(xent_metrics.__file__).parent
ADAPTER = PACKAGE / "metrics" / "_torchmetrics.py"


class _BareMetric(Metric):
    """The smallest torchmetrics Metric: what a fresh instance holds, without this package's overrides."""

    def update(self) -> None:
        pass

    def compute(self) -> torch.Tensor:
        return torch.tensor(0.0)


def _check_private_names(names: Iterable[tuple[str, str]]) -> None:
    """Raise naming every ``(where, name)`` the installed torchmetrics lacks (see ``PRIVATE_NAMES``)."""
    fresh = vars(_BareMetric())
    missing = []
    for where, name in names:
        if where == "Metric":
            found = name in vars(Metric)  # defined by Metric itself: nn.Module's version is not what we override
        elif where == "instance":
            found = name in fresh
        else:
            found = hasattr(importlib.import_module(where), name)
        if not found:
            missing.append(f"{where}.{name}")
    if missing:
        raise AssertionError(
            f"torchmetrics {torchmetrics.__version__} has no {', '.join(missing)}, which "
            "xent_metrics/metrics/_torchmetrics.py relies on: adapt that module to the new release "
            "(and its PRIVATE_NAMES) before anything else."
        )


@pytest.mark.parametrize(("where", "name"), PRIVATE_NAMES, ids=[f"{w}.{n}" for w, n in PRIVATE_NAMES])
def test_each_private_name_exists_in_the_installed_torchmetrics(where: str, name: str) -> None:
    _check_private_names([(where, name)])


@pytest.mark.parametrize(
    "made_up",
    [
        ("instance", "_update_tally"),
        ("Metric", "_wrap_updates"),
        ("Metric", "_call_impl"),  # nn.Module's, not defined by Metric: not a torchmetrics hook
        ("torchmetrics.utilities.data", "_squeeze_if_scalars"),
    ],
)
def test_the_check_fails_naming_a_missing_name(made_up: tuple[str, str]) -> None:
    where, name = made_up
    with pytest.raises(AssertionError, match=rf"has no {re.escape(where)}\.{name}, which .*_torchmetrics\.py"):
        _check_private_names([("instance", "_computed"), made_up])


def test_metric_apply_still_takes_exclude_state() -> None:
    """The adapter moves ``sums`` itself by passing it in ``exclude_state`` to torchmetrics' ``_apply``."""
    assert "exclude_state" in inspect.signature(Metric._apply).parameters


def test_every_torchmetrics_hook_the_adapter_overrides_is_listed() -> None:
    overridden = {
        name
        for name, value in vars(TorchmetricsAdapter).items()
        if inspect.isfunction(value) and name.startswith("_") and name in vars(Metric)
    }
    listed = {name for where, name in PRIVATE_NAMES if where == "Metric"}
    assert overridden == listed


def test_no_other_module_of_the_package_touches_a_private_name() -> None:
    """The measure "modules that touch torchmetrics' private names: 1" (``(?<!\\w)_name\\b`` in the source)."""
    patterns = {name: re.compile(rf"(?<!\w){re.escape(name)}\b") for _, name in PRIVATE_NAMES}
    touching = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ADAPTER
        for name, pattern in patterns.items()
        if pattern.search(path.read_text())
    }
    assert not touching, f"only metrics/_torchmetrics.py may touch torchmetrics' private names, found {touching}"


@pytest.mark.parametrize(
    ("name", "owner"),
    [("update", "SumsMetric"), ("compute", "SumsMetric"), ("forward", "SumsMetric")]
    + [(name, "SumsState") for name in ("merge_state", "state_dict", "_move_sums", "_loadable_sums")],
)
def test_the_metric_behaviour_is_methods_of_sumsmetric(name: str, owner: str) -> None:
    """The behaviour is defined in the class ("go to definition" lands there), not installed free functions.

    Merging, saving, loading and moving the state are ``SumsState``'s, shared with ``PairedDifference``.
    """
    assert getattr(SumsMetric, name).__qualname__ == f"{owner}.{name}"


@pytest.mark.parametrize("name", ["_wrap_update", "_wrap_compute", "_sync_dist", "_apply", "_load_from_state_dict"])
def test_the_torchmetrics_hooks_are_methods_of_the_adapter(name: str) -> None:
    assert getattr(SumsMetric, name).__qualname__ == f"TorchmetricsAdapter.{name}"


def _torchmetrics_private_names() -> set[str]:
    """The single-underscore names torchmetrics' ``Metric`` defines, read from torchmetrics (not from the adapter).

    Class members ``Metric`` itself defines, and instance attributes a fresh ``Metric`` has that a bare
    ``nn.Module`` does not.
    """
    module_attrs = set(vars(torch.nn.Module()))
    names = set(vars(Metric)) | (set(vars(_BareMetric())) - module_attrs)
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def test_every_private_name_the_package_uses_is_listed_and_in_the_adapter_only() -> None:
    """Built from torchmetrics itself: a use the adapter forgot to list, or one elsewhere, fails here."""
    names = _torchmetrics_private_names()
    assert {"_computed", "_update_count", "_wrap_update"} <= names  # the scan reads what it should
    listed = {name for _, name in PRIVATE_NAMES}
    used = {}  # module -> names used as an attribute (``x._name``) or a key (``"_name"``)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        hits = {name for name in names if re.search(rf"(?:\.|[\"']){re.escape(name)}\b", source)}
        if hits:
            used[str(path.relative_to(PACKAGE))] = hits
    assert set(used) == {"metrics/_torchmetrics.py"}, used
    assert used["metrics/_torchmetrics.py"] <= listed, used["metrics/_torchmetrics.py"] - listed
