"""examples/lm_perplexity.py: one process in-process, and two under torchrun (127.0.0.1) logging the same value."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import re
import warnings
from pathlib import Path

import pytest
from helpers.dist import run_torchrun

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lm_perplexity.py"


def _load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("lm_perplexity_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def single() -> tuple[dict, str]:
    """One single-process run of the example (3 training steps), shared by both tests."""
    example = _load_example()
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        # Lightning 2.6 with torch 2.13 calls a deprecated pytree API during fit; not ours (as in pyproject).
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
        result = example.main(steps=3, measure_memory=True)
    return result, out.getvalue()


def test_example_logs_the_same_perplexity_from_hidden_states_and_logits(single: tuple[dict, str]) -> None:
    result, out = single
    assert result["processes"] == 1
    assert result["relative_difference"] <= 1e-6
    assert math.isclose(result["val/ppl"], result["val/ppl_logits"], rel_tol=1e-6)
    assert math.isclose(result["val/bits_per_byte"], math.log2(result["val/ppl"]), rel_tol=1e-6)  # byte-level
    assert 1 < result["val/ppl"] < 256  # some learning: below the uniform distribution's 256
    assert "val/ppl (hidden states)" in out
    if "peak_mib_hidden" in result:  # Linux: the logits path holds ~100 MiB of logits, the hidden path one block
        assert result["peak_mib_hidden"] < 64 < result["peak_mib_logits"]


@pytest.mark.distributed
@pytest.mark.slow
def test_example_under_torchrun_logs_the_one_process_value(single: tuple[dict, str]) -> None:
    out = run_torchrun(str(EXAMPLE), "--steps", "3", "--no-memory", timeout=120)
    assert re.search(r"processes\s+2\n", out), out
    ppl = float(re.search(r"val/ppl \(hidden states\)\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    assert math.isclose(ppl, single[0]["val/ppl"], rel_tol=1e-9), (ppl, single[0]["val/ppl"])
