"""Structure the architecture relies on: faces read sums through the core, options never travel as ``locals()``."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "xent_metrics"
FACES = ("metrics", "scoring", "callbacks")
ROW_NAMES = {"LOSS", "WEIGHT", "TARGET"}


def _face_files() -> list[Path]:
    return [path for face in FACES for path in sorted((PACKAGE / face).glob("**/*.py"))]


ROW_METHODS = {"unbind", "select", "narrow", "split", "chunk", "index_select", "tolist"}


def _is_sums(node: ast.AST) -> bool:
    """A name or attribute ending in ``sums`` (``sums``, ``self.sums``, ``batch_sums``)."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.endswith("sums")


def _row_touches(source: str) -> list[str]:
    """Every way a face could read a sums row itself: what it must leave to the core."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_sums(node.value):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) and _is_sums(node.value):
            found.append(f"line {node.lineno}: unpacks {ast.unparse(node.value)}")
        elif isinstance(node, ast.For) and _is_sums(node.iter):
            found.append(f"line {node.lineno}: iterates over {ast.unparse(node.iter)}")
        elif isinstance(node, ast.Attribute) and node.attr in ROW_METHODS and _is_sums(node.value):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and node.attr in ROW_NAMES:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and ROW_NAMES & {alias.name for alias in node.names}:
            found.append(f"line {node.lineno}: imports a sums row constant")
    return found


@pytest.mark.parametrize("path", _face_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_face_indexes_sums_rows(path: Path) -> None:
    assert _row_touches(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "from xent_metrics.functional._sums import LOSS",
        "x = sums[0].sum()",
        "y = self.sums[2]",
        "loss, weight, target = self.sums",
        "t = self.sums.unbind(0)",
        "t = batch_sums.select(0, 2)",
        "for row in sums:\n    pass",
        "w = _sums.WEIGHT",
    ],
)
def test_the_row_check_sees_each_way_of_reading_a_row(source: str) -> None:
    assert len(_row_touches(source)) == 1, source


def test_the_row_check_lets_whole_sums_through() -> None:
    source = "self.sums.add_(batch)\nn = sums.shape[1]\ntotals = sums.sum(1, keepdim=True)\nv = value_from_sums(sums)\n"
    assert _row_touches(source) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("**/*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_options_never_travel_as_locals(path: Path) -> None:
    assert not re.search(r"\blocals\(\)", path.read_text())
