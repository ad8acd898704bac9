"""Layering: functional <- metrics <- callbacks; functional <- scoring; nothing imports upward."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "xent_metrics"

# The first-party layers each module group may import (besides the standard library and its own group).
ALLOWED = {
    "functional": {"xent_metrics.functional"},
    "metrics": {"xent_metrics.functional", "xent_metrics.metrics"},
    "scoring": {"xent_metrics.functional", "xent_metrics.scoring"},
    "callbacks": {"xent_metrics.functional", "xent_metrics.metrics", "xent_metrics.callbacks"},
    # Framework adapters over the Metric classes and the functional API; never callbacks or scoring.
    "integrations": {"xent_metrics.functional", "xent_metrics.metrics", "xent_metrics.integrations"},
}
THIRD_PARTY = {
    "functional": {"torch"},
    "metrics": {"torch", "torchmetrics", "matplotlib"},  # matplotlib only inside `plot` (test_plot.py checks)
    "scoring": {"torch", "numpy", "sklearn", "scipy"},
    "callbacks": {"torch", "torchmetrics", "lightning", "numpy", "matplotlib", "typing_extensions", "PIL"},
    "integrations": {"torch", "numpy", "transformers"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _group_files(group: str) -> list[Path]:
    return sorted(PACKAGE.glob(f"{group}.py")) + sorted((PACKAGE / group).glob("**/*.py"))


@pytest.mark.parametrize("group", sorted(ALLOWED))
def test_layering(group: str) -> None:
    files = _group_files(group)
    if not files:
        pytest.skip(f"xent_metrics.{group} does not exist yet")
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "xent_metrics":
                assert any(name == a or name.startswith(a + ".") for a in ALLOWED[group]), f"{path.name} imports {name}"
            elif top not in sys.stdlib_module_names:
                assert top in THIRD_PARTY[group], f"{path.name} imports third-party {name}"


def test_import_does_not_pull_lightning_or_sklearn() -> None:
    code = (
        "import sys, xent_metrics, xent_metrics.functional, xent_metrics.integrations;"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in {'lightning', 'pytorch_lightning', 'sklearn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""


def test_import_does_not_pull_transformers() -> None:
    # torchmetrics itself imports transformers where it is installed (its BERTScore and CLIP modules): count only
    # what importing xent_metrics adds after torchmetrics (e.g. transformers.trainer, accelerate).
    code = (
        "import sys, torchmetrics; before = set(sys.modules);"
        "import xent_metrics, xent_metrics.functional, xent_metrics.integrations;"
        "print(','.join(m for m in set(sys.modules) - before if m.split('.')[0] in {'transformers', 'accelerate'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""
    loaded = "import sys, xent_metrics.integrations.transformers; print('transformers.trainer' in sys.modules)"
    if importlib.util.find_spec("transformers") is not None:  # the check above can fail: importing ours adds them
        out = subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True, check=True, timeout=120)
        assert out.stdout.strip() == "True"
