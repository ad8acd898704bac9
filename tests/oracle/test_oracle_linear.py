"""Hidden states: ``linear_cross_entropy`` in every dtype against torch's rule in float64 on the given values.

The reference projects the given (float16, bfloat16, float32, float64) values exactly in float64 and takes
exact log-probabilities (:func:`oracle_refs.mc_hard`); the contract is the multiclass one, 2e-6 relative for
float32 and half-precision inputs (their logits are float32) and 1e-12 for float64. Two kinds of rows: ordinary
hidden states through a dense head, and confident rows (true-class margins to 690 nats) through a head whose
products and sums are exact in float32 (a one-hot head, a bias on a 1/64 grid: a dense head rounds a logit of
690 by ~4e-5, which no float32 GEMM avoids and which the loss of such a row inherits relatively).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle_cases import AVERAGES, draw_configs, quiet_macro, rng_for
from oracle_refs import RTOL, check, dname, mc_hard, report

from xent_metrics.functional import linear_cross_entropy

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
V, D = 40, 48


def _dense(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """0.3-ish hidden states (scale 1.3) and a dense head (scale 0.37): logits of a few nats."""
    return rng.normal(0.3, 1.3, size=(n, D)), rng.normal(0.0, 0.37, size=(V, D))


def _confident(rng: np.random.Generator, n: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden states whose true feature leads the others by 30 to 690 nats, a one-hot head (logit j = h_j)."""
    hidden = rng.uniform(-0.35, 0.35, size=(n, D))
    hidden[np.arange(n), t] = hidden[:, :V].max(axis=1) + rng.uniform(30.0, 690.0, size=n)
    return hidden, np.eye(V, D)


@pytest.mark.parametrize("kind", ["dense", "confident"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_hidden_states_match_the_float64_loss_of_the_given_values(dtype: torch.dtype, kind: str) -> None:
    rng = rng_for(31, dname(dtype), kind)
    failures: list[str] = []
    configs = draw_configs(rng, 12, bias=[False, True], weight=[False, True], sample=[None, "token", "sequence"],
                           ignore=[None, -100], smoothing=[0.0, 0.1], average=AVERAGES, shape=[(37,), (3, 13)])
    for cfg in configs:
        shape = cfg["shape"]
        n = int(np.prod(shape))
        t = rng.integers(0, V, size=n)
        hidden, head = _dense(rng, n) if kind == "dense" else _confident(rng, n, t)
        h = torch.tensor(hidden, dtype=dtype).reshape(*shape, D)
        w = torch.tensor(head, dtype=dtype)
        b = rng.normal(0.3, 0.3, size=V)
        b = np.round(b * 64) / 64 if kind == "confident" else b  # on a 1/64 grid: h_t + b_t is exact in float32
        b = torch.tensor(b, dtype=dtype) if cfg["bias"] else None
        target = torch.tensor(t).reshape(shape)
        if cfg["ignore"] is not None:
            target = target.masked_fill(torch.tensor(rng.uniform(size=shape) < 0.2), cfg["ignore"])
        cw = torch.tensor(rng.uniform(0.2, 2.3, size=V)) if cfg["weight"] else None
        s = None if cfg["sample"] is None else torch.tensor(rng.uniform(0.05, 2.3, size=shape))
        if cfg["sample"] == "sequence" and len(shape) == 2:
            s = s[:, 0]
        s_tokens = None if s is None else (s[:, None].expand(shape) if s.shape != shape else s)
        logits = F.linear(h.double(), w.double(), None if b is None else b.double()).reshape(n, V)
        want = mc_hard(logits, target.reshape(n), "logits", 0.0, cw, None if s is None else s_tokens.reshape(n),
                       cfg["ignore"], cfg["smoothing"], cfg["average"])
        if bool(want.isnan().all()):
            continue
        with quiet_macro():
            got = linear_cross_entropy(h, w, target, linear_bias=b, weight=cw, sample_weight=s,
                                       ignore_index=cfg["ignore"], label_smoothing=cfg["smoothing"],
                                       average=cfg["average"], block_size=int(rng.choice([5, 16, 64])))
        check(failures, f"hidden states {kind}", got, want, RTOL[dtype], f"{dname(dtype)} {cfg}", dtype)
    report(failures)
