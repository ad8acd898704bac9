"""examples/torchrun_eval.py under the launcher users run: the same values for N = 1, 2, 3 and the float64 reference.

Each world size is one ``python -m torch.distributed.run --standalone`` launch (loopback: ``localhost``
is 127.0.0.1 here, gloo is bound to ``lo``) in its own process group, killed whole on timeout or
exit; the three run at once. The reference is torch.nn.functional in float64 on the full data set, never the package.
"""

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "torchrun_eval.py"
WORLD_SIZES = (1, 2, 3)
LAUNCH_TIMEOUT_S = 180
TOL = 1e-12


def _start(world_size: int) -> subprocess.Popen:
    """Launch the example under torchrun in a new session (its own process group)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world_size}"]
    return subprocess.Popen(
        [*cmd, str(EXAMPLE)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every worker it started
    except ProcessLookupError:
        pass


def _finish(proc: subprocess.Popen, world_size: int, deadline: float) -> str:
    """Wait for a launch until ``deadline``; return its stdout, or fail with its stderr."""
    try:
        out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        pytest.fail(f"torchrun with N={world_size} did not finish in {LAUNCH_TIMEOUT_S} s; stderr:\n{err[-3000:]}")
    assert proc.returncode == 0, f"torchrun with N={world_size} exited {proc.returncode}; stderr:\n{err[-3000:]}"
    return out


def _parse(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, f"expected one RESULT line (rank 0 only), got {len(lines)}:\n{out}"
    return json.loads(lines[0][len("RESULT ") :])


@pytest.fixture(scope="module")
def results() -> dict[int, dict]:
    """One launch per world size, all three at once (each waits on imports more than on the CPU)."""
    procs = {n: _start(n) for n in WORLD_SIZES}
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    try:
        return {n: _parse(_finish(proc, n, deadline)) for n, proc in procs.items()}
    finally:
        for proc in procs.values():
            _kill_group(proc)


def _example():
    spec = importlib.util.spec_from_file_location("torchrun_eval", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of a distribution (last dim) or of Bernoulli rates, with 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(-1)


def _reference() -> dict[str, float]:
    """Every metric on the full data set with torch.nn.functional in float64."""
    example = _example()
    d = example.make_data()
    w = d["weight"]
    yb, ym, yl = d["binary_target"], d["multiclass_target"], d["multilabel_target"].double()
    bce = F.binary_cross_entropy_with_logits(d["binary_logits"], yb.double(), reduction="none")
    rate = (w * yb).sum() / w.sum()
    cce = F.cross_entropy(d["multiclass_logits"], ym, reduction="none")
    prior = torch.zeros(example.NUM_CLASSES, dtype=torch.float64).index_add_(0, ym, w) / w.sum()
    mlb = F.binary_cross_entropy_with_logits(d["multilabel_logits"], yl, reduction="none")
    rates = (w[:, None] * yl).sum(0) / w.sum()
    lm = F.cross_entropy(
        d["lm_logits"].reshape(-1, example.VOCAB), d["lm_target"].reshape(-1), ignore_index=example.IGNORE
    )
    binary_ce = (w * bce).sum() / w.sum()
    multilabel_loss = (w[:, None] * mlb).sum()
    return {
        "BinaryCrossEntropy": float(binary_ce),
        "BinaryNormalizedEntropy": float(binary_ce / _entropy(torch.stack([rate, 1 - rate]))),
        "MulticlassCrossEntropy": float((w * cce).sum() / w.sum()),
        "MulticlassNormalizedEntropy": float((w * cce).sum() / w.sum() / _entropy(prior)),
        "MultilabelCrossEntropy": float(multilabel_loss / (w.sum() * example.NUM_LABELS)),
        "MultilabelNormalizedEntropy": float(
            multilabel_loss / (w.sum() * _entropy(torch.stack([rates, 1 - rates], -1))).sum()
        ),
        "Perplexity": math.exp(float(lm)),
    }


def test_every_world_size_prints_the_float64_reference(results):
    expected = _reference()
    for n in WORLD_SIZES:
        values = results[n]["values"]
        assert sorted(values) == sorted(expected), f"N={n}: {sorted(values)}"
        for name, value in values.items():
            assert value == pytest.approx(expected[name], rel=TOL, abs=0), f"N={n} {name}: {value} vs {expected[name]}"


def test_world_sizes_agree_and_shards_are_uneven(results):
    base = results[1]["values"]
    for n in WORLD_SIZES:
        assert results[n]["world_size"] == n
        shards = results[n]["shards"]
        assert sum(shards) == _example().NUM_SAMPLES and len(set(shards)) == n, shards
        for name, value in results[n]["values"].items():
            assert value == pytest.approx(base[name], rel=TOL, abs=0), f"N={n} vs N=1, {name}: {value} vs {base[name]}"
