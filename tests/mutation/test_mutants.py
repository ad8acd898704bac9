"""The mutation runner's mutants on a tiny package: what is mutated, and that an installed mutant is seen everywhere."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import mutants
import pytest

CORE = '''"""A docstring that is never mutated."""

LIMIT = 1 << 3


def clip(x: int, name: str = "x") -> int:
    """Double ``x``; refuse more than LIMIT."""
    if x > LIMIT:
        raise ValueError(f"{name} too big")
    return x * 2


class Box:
    SIZE = 4

    def area(self) -> int:
        return self.SIZE * self.SIZE
'''
USER = '''from mutdemo.core import LIMIT, clip

BOUND = clip


def limit() -> int:
    return LIMIT
'''


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "mutdemo"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "core.py").write_text(CORE)
    (root / "user.py").write_text(USER)
    sys.path.insert(0, str(tmp_path))
    importlib.import_module("mutdemo.user")
    yield "mutdemo.core"
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("mutdemo")]:
        del sys.modules[name]
    mutants._source.cache_clear()


def _one(found: list[mutants.Mutant], key: str) -> mutants.Mutant:
    (mutant,) = [m for m in found if m.key == key]
    return mutant


def test_mutants_cover_operators_constants_and_raises_not_docstrings(package: str) -> None:
    found = mutants.mutants_of(package)
    keys = {m.key for m in found}
    assert "core:LIMIT=:binop:1 << 3 -> 1 >> 3" in keys
    assert "core:LIMIT=:constant:3 -> 4" in keys
    assert "core:clip:compare:x > LIMIT -> x >= LIMIT" in keys
    assert "core:clip:remove-raise:raise ValueError(f'{name} too big') -> pass" in keys
    assert "core:Box.SIZE=:constant:4 -> 5" in keys
    assert not any("never mutated" in m.before or m.before == "'x'" for m in found)  # docstrings, defaults


def test_an_installed_mutant_is_seen_through_every_reference(package: str) -> None:
    core, user = sys.modules[package], sys.modules["mutdemo.user"]
    found = mutants.mutants_of(package)
    assert mutants.install(_one(found, "core:clip:binop:x * 2 -> x / 2")) == 1
    assert core.clip(4) == user.BOUND(4) == 2.0
    assert mutants.install(_one(found, "core:LIMIT=:constant:3 -> 4")) == 2
    assert core.LIMIT == user.limit() == 16
    assert mutants.install(_one(found, "core:Box.SIZE=:constant:4 -> 5")) == 1
    assert core.Box().area() == 25


def test_every_module_of_the_three_packages_has_a_subset() -> None:
    """A module added to functional/, metrics/ or scoring/ is mutated too (not the compiled kernel, not plots)."""
    import subsets

    root = Path(__file__).resolve().parents[2] / "xent_metrics"
    modules = {
        f"xent_metrics.{package}.{path.stem}"
        for package in ("functional", "metrics", "scoring")
        for path in (root / package).glob("*.py")
        if path.stem not in ("__init__", "_fused", "_plot")
    }
    assert modules == set(subsets.SUBSETS)
    for args in subsets.SUBSETS.values():
        assert all(Path(root.parent, a).exists() for a in args if a.startswith("tests/") and "::" not in a), args
