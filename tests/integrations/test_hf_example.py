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

pytest.importorskip("transformers")  # the `transformers` extra; CI's test extra installs it

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hf_trainer_perplexity.py"


def test_example_perplexity_equals_float64_reference() -> None:
    spec = importlib.util.spec_from_file_location("hf_trainer_perplexity_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = example.main(steps=2)
    printed = dict(re.findall(r"^(perplexity|reference|eval_loss) (\S+)", out.getvalue(), re.MULTILINE))
    assert float(printed["perplexity"]) == pytest.approx(float(printed["reference"]), rel=1e-6)
    assert result["perplexity"] == pytest.approx(result["reference"], rel=1e-6)
    # Bytes are tokens here: bits per byte is log2 of the perplexity.
    assert result["bits_per_byte"] == pytest.approx(math.log2(result["reference"]), rel=1e-6)
    # exp(eval_loss) is a mean of batch means: close to, but not, the perplexity of all tokens.
    assert math.exp(float(printed["eval_loss"])) != pytest.approx(result["reference"], rel=1e-6)
    assert "weighted by its sequences" in out.getvalue()
