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


def _row_touches(source: str) -> list[str]:
    """Subscripts of a name ending in ``sums`` and imports of the row constants: what a face must not do."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name | ast.Attribute):
            name = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
            if name.endswith("sums"):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and ROW_NAMES & {alias.name for alias in node.names}:
            found.append(f"line {node.lineno}: imports a sums row constant")
    return found


@pytest.mark.parametrize("path", _face_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_face_indexes_sums_rows(path: Path) -> None:
    assert _row_touches(path.read_text()) == []


def test_the_row_check_sees_an_index_and_an_import() -> None:
    source = "from xent_metrics.functional._sums import LOSS\nx = sums[LOSS].sum()\ny = self.sums[2]\n"
    assert len(_row_touches(source)) == 3


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("**/*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_options_never_travel_as_locals(path: Path) -> None:
    assert not re.search(r"\blocals\(\)", path.read_text())
