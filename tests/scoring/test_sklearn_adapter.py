"""The scikit-learn private names the scoring adapter relies on exist, and no other module of the package touches them.

``xent_metrics/scoring/_sklearn.py`` makes the scorers ``_BaseScorer`` subclasses so that scikit-learn's
``_MultimetricScorer`` hands them its response cache. A release that renames one of those names would
silently bring back one ``predict_proba`` call per scorer: these tests fail first, naming it
(``test_scoring_multimetric.py`` counts the calls).
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re

import pytest
import sklearn
from sklearn.metrics import _scorer

import xent_metrics
from xent_metrics.scoring import CrossEntropyScorer
from xent_metrics.scoring._sklearn import PRIVATE_NAMES

PACKAGE = pathlib.Path(xent_metrics.__file__).parent
ADAPTER = PACKAGE / "scoring" / "_sklearn.py"


def _found(where: str, name: str) -> bool:
    if where.startswith("sklearn."):
        return hasattr(importlib.import_module(where), name)
    return name in vars(getattr(_scorer, where))  # defined by that class itself


@pytest.mark.parametrize(("where", "name"), PRIVATE_NAMES, ids=[f"{w}.{n}" for w, n in PRIVATE_NAMES])
def test_private_name_exists(where: str, name: str) -> None:
    assert _found(where, name), (
        f"scikit-learn {sklearn.__version__} has no {where}.{name}, which xent_metrics/scoring/_sklearn.py relies on: "
        "adapt that module to the new release (and its PRIVATE_NAMES) before anything else."
    )


def test_scorer_is_a_base_scorer() -> None:
    """``_MultimetricScorer`` shares its cache only with ``_BaseScorer`` instances, through ``_score``."""
    assert issubclass(CrossEntropyScorer, _scorer._BaseScorer)
    assert "scorer._score(" in inspect.getsource(_scorer._MultimetricScorer.__call__)
    assert "_response_method" in inspect.getsource(_scorer._MultimetricScorer._use_cache)
    assert "_score" in vars(importlib.import_module("xent_metrics.scoring._sklearn").SharedResponseScorer)


def test_only_the_adapter_imports_sklearn_private_names() -> None:
    private = re.compile(r"(from\s+sklearn[\w.]*\s+import\s+_\w+|sklearn(\.\w+)*\._\w+)")
    offenders = [
        f"{path.relative_to(PACKAGE)}: {match.group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ADAPTER
        for match in private.finditer(path.read_text())
    ]
    assert offenders == []
    assert private.search(ADAPTER.read_text())
