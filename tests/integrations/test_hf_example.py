"""examples/hf_trainer_perplexity.py: a short run (2 training steps) prints the integration's perplexity and a float64
reference over the logits that agree to 1e-6, and eval_loss beside them."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import re
from pathlib import Path

import pytest
from helpers.dist import run_torchrun

pytest.importorskip("transformers")  # the `transformers` extra; CI's test extra installs it

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hf_trainer_perplexity.py"


@pytest.fixture(scope="module")
def single() -> tuple[dict, str]:
    """One single-process run of the example (2 training steps), shared by both tests."""
    spec = importlib.util.spec_from_file_location("hf_trainer_perplexity_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = example.main(steps=2)
    return result, out.getvalue()


def test_example_perplexity_equals_float64_reference(single: tuple[dict, str]) -> None:
    result, out = single
    printed = dict(re.findall(r"^(perplexity|reference|eval_loss) (\S+)", out, re.MULTILINE))
    assert float(printed["perplexity"]) == pytest.approx(float(printed["reference"]), rel=1e-6)
    assert result["perplexity"] == pytest.approx(result["reference"], rel=1e-6)
    # Bytes are tokens here: bits per byte is log2 of the perplexity.
    assert result["bits_per_byte"] == pytest.approx(math.log2(result["reference"]), rel=1e-6)
    # exp(eval_loss) is a mean of batch means: close to, but not, the perplexity of all tokens.
    assert math.exp(float(printed["eval_loss"])) != pytest.approx(result["reference"], rel=1e-6)
    assert "weighted by its sequences" in out


@pytest.mark.distributed
@pytest.mark.slow
def test_example_under_torchrun_gathers_every_sequence_once(single: tuple[dict, str]) -> None:
    # 45 sequences, 8 per process and batch: the sampler repeats one, gather_for_metrics drops it again.
    out = run_torchrun(str(EXAMPLE), "--steps", "2", timeout=240)
    ppl = float(re.search(r"^perplexity (\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    reference = float(re.search(r"^reference (\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert ppl == pytest.approx(reference, rel=1e-6)  # a repeated or lost sequence moves it by ~1e-3
    tokens = int(re.search(r"over (\d+) tokens", out).group(1))  # type: ignore[union-attr]
    assert tokens == single[0]["tokens"]  # the same evaluation set as one process: every sequence once
