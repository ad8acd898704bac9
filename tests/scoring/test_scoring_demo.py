"""The scikit-learn part of the demo: its numbers are the claimed references, and the data fallback works."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

from numpy.testing import assert_allclose

from xent_metrics.demos import sklearn_part


def test_demo_numbers_are_what_the_table_says(monkeypatch):
    rows = sklearn_part.sklearn_demo_results(n_splits=2)
    assert len(rows) == 4
    for r in rows:
        assert_allclose(-r["ours"], r["per_tag_log_loss"], rtol=1e-12)  # ours: mean of per-column log_loss
        assert_allclose(-r["neg_log_loss"], r["positive_terms_only"], rtol=1e-10, atol=1e-15)  # sklearn #10157
    models = {r["model"]: r for r in rows}
    dummy = models.pop("Dummy: every tag on")
    assert dummy["ours"] < -10 and dummy["neg_log_loss"] > -1e-12  # "perfect" for neg_log_loss
    assert all(-1 < r["ours"] < 0 and r["neg_log_loss"] < r["ours"] for r in models.values())
    monkeypatch.setattr(sklearn_part, "sklearn_demo_results", lambda n_splits: rows)
    text = sklearn_part.run_sklearn_demo(n_splits=2)
    assert "2-fold CV" in text and "#10157" in text
    table = text.split("\n")[5:9]
    assert [line.split("  ")[0].strip() for line in table] == [r["model"] for r in rows]
    dummy_line = next(line for line in table if line.startswith("Dummy"))
    assert dummy_line.endswith("neg_log_loss") and f"{dummy['ours']:.4f}" in dummy_line
    assert sum(line.endswith("neg_cross_entropy") for line in table) == 1


def test_sklearn_part_does_not_import_lightning():
    """The scikit-learn half of the demo runs with the ``sklearn`` extra alone."""
    code = (
        "import sys, xent_metrics.demos.sklearn_part, xent_metrics.demos.tags; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_sklearn_example_runs_and_says_what_it_claims(capsys):
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "sklearn_cross_val.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert float(re.search(r"max rel\. diff to neg_log_loss (\S+)", lines[0]).group(1)) < 1e-12
    theirs, ours = re.search(r"neg_log_loss \[(.*)\], ours \[(.*)\]", lines[2]).groups()
    assert theirs.split() == ["nan"] * 5 and all(-1 < float(v) < 0 for v in ours.split())
    ours_ml, per_label = re.search(r"ours (\S+) = -mean per-label log_loss ([-0-9.]+)", lines[3]).groups()
    assert ours_ml == per_label
