"""The oracle's references checked against torch itself (where torch is exact) and against mpmath.

The sweeps compute -log p from exact log-probabilities (oracle_refs.exact_log_softmax) and torch's documented
smoothing and weighting rules; here those agree with ``F.cross_entropy`` / ``F.binary_cross_entropy_with_logits``
in float64 on rows that are not confident (where torch's lse(z) - z_t is accurate), and with mpmath on confident
rows (where torch is not): the references encode torch's rules, not the package's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from oracle_cases import logits, rng_for
from oracle_refs import bce_elements, check, confident_rows, exact_log_softmax, exact_row_mp, mc_hard, mc_soft, report


def test_multiclass_references_equal_torch_cross_entropy() -> None:
    rng = rng_for(30)
    failures: list[str] = []
    for shape in [(7, 3), (5, 20), (4, 130), (3, 4, 2, 3)] * 5:
        z = torch.tensor(rng.normal(scale=1.3, size=shape))
        y = torch.tensor(rng.integers(0, shape[1], size=shape[:1] + shape[2:]))
        y.view(-1)[0] = -100
        w = torch.tensor(rng.uniform(0.2, 2.3, size=shape[1]))
        for ls in (0.0, 0.13):
            want = F.cross_entropy(z, y, weight=w, ignore_index=-100, label_smoothing=ls)
            check(failures, "reference self-check", mc_hard(z, y, "logits", 0.0, w, None, -100, ls), want, 1e-13,
                  f"hard {shape} ls={ls}")
            soft = torch.tensor(rng.uniform(size=shape))
            want = F.cross_entropy(z, soft, weight=w, label_smoothing=ls)
            check(failures, "reference self-check", mc_soft(z, soft, "logits", 0.0, w, None, ls), want, 1e-13,
                  f"soft {shape} ls={ls}")
    report(failures)


def test_exact_log_softmax_equals_mpmath_on_confident_rows() -> None:
    rng = rng_for(31)
    failures: list[str] = []
    for C in (2, 16, 130):
        for margin in (-30.3, 0.3, 11.0, 30.3, 79.7, 300.7, 599.7):
            z, t = confident_rows(rng, 3, C, margin, torch.float64)
            got = -exact_log_softmax(z).gather(1, t.unsqueeze(1)).squeeze(1)
            want = torch.tensor([exact_row_mp(z[i].tolist(), int(t[i])) for i in range(3)], dtype=torch.float64)
            check(failures, "reference self-check", got, want, 1e-13, f"C={C} margin={margin}")
    report(failures)


def test_sigmoid_reference_equals_torch_bce_with_logits() -> None:
    rng = rng_for(32)
    failures: list[str] = []
    for _ in range(20):
        z = torch.tensor(logits(rng, (6, 4))).clamp(-3, 3)  # torch's log(1 + exp(-|z|)) is exact enough here
        y = torch.tensor(rng.uniform(size=(6, 4)))
        pw = torch.tensor(rng.uniform(0.2, 2.3, size=4))
        want = F.binary_cross_entropy_with_logits(z, y * 0.9 + 0.05, pos_weight=pw, reduction="none")
        check(failures, "reference self-check", bce_elements(z, y, "logits", 0.0, pw, 0.1), want, 1e-13, "bce")
    report(failures)
