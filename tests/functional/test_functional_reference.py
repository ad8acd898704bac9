"""Every functional result against an independent float64 reference (sklearn, torch, scipy, hand-derived)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_expit, logsumexp
from sklearn.metrics import d2_log_loss_score, log_loss

from xent_metrics.functional import (
    binary_cross_entropy,
    binary_normalized_entropy,
    cross_entropy,
    multiclass_cross_entropy,
    multiclass_normalized_entropy,
    multilabel_cross_entropy,
    multilabel_normalized_entropy,
    normalized_entropy,
)

RTOL = 1e-12


def close(actual: torch.Tensor, expected: float | np.ndarray | torch.Tensor, rtol: float = RTOL) -> None:
    expected_t = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, expected_t, rtol=rtol, atol=1e-300, equal_nan=True)


# ----------------------------------------------------------------------------------------------- binary
def test_binary_check_value_matches_log_loss_and_exact_math() -> None:
    p = torch.tensor([0.9, 0.3], dtype=torch.float64)
    value = binary_cross_entropy(p, torch.tensor([1, 0]), input_format="probs").item()
    exact = -(math.log(0.9) + math.log1p(-0.3)) / 2  # log_loss rounds 1 - 0.3 first: within an ulp of it
    assert value == pytest.approx(exact, rel=2e-16)
    assert value == pytest.approx(log_loss([1, 0], [0.9, 0.3]), rel=1e-15)


@pytest.mark.parametrize(("dtype", "expected"), [(torch.float64, 52 * math.log(2)), (torch.float32, 23 * math.log(2))])
def test_binary_zero_probability_costs_minus_log_eps(dtype: torch.dtype, expected: float) -> None:
    # eps = 2**-52 (float64) or 2**-23 (float32); clipping p=0 to eps costs -log(eps).
    value = binary_cross_entropy(torch.tensor([0.0], dtype=dtype), torch.tensor([1]), input_format="probs")
    close(value, expected, rtol=1e-7 if dtype == torch.float32 else RTOL)


def test_binary_probs_match_log_loss_with_weights(rng: np.random.Generator) -> None:
    p = rng.uniform(size=500)
    p[:5] = [0.0, 1.0, 1e-20, 1 - 1e-17, 0.5]
    y = rng.integers(0, 2, size=500)
    w = rng.uniform(0, 3, size=500)
    value = binary_cross_entropy(
        torch.from_numpy(p), torch.from_numpy(y), input_format="probs", sample_weight=torch.from_numpy(w)
    )
    close(value, log_loss(y, p, sample_weight=w, labels=[0, 1]))


def test_binary_logits_match_scipy_and_torch(rng: np.random.Generator) -> None:
    z = rng.normal(scale=30, size=(64, 3))
    y = rng.uniform(size=(64, 3))
    pos = 2.5
    expected = -(pos * y * log_expit(z) + (1 - y) * log_expit(-z)).mean()
    value = binary_cross_entropy(torch.from_numpy(z), torch.from_numpy(y), pos_weight=pos)
    close(value, expected)
    torch_ref = F.binary_cross_entropy_with_logits(
        torch.from_numpy(z), torch.from_numpy(y), pos_weight=torch.tensor(pos, dtype=torch.float64)
    )
    close(value, torch_ref.item())


def test_binary_extreme_logits_are_finite() -> None:
    close(binary_cross_entropy(torch.tensor([-200.0]), torch.tensor([1])), 200.0)
    close(binary_cross_entropy(torch.tensor([200.0], dtype=torch.float64), torch.tensor([0])), 200.0)
    close(binary_cross_entropy(torch.tensor([-800.0], dtype=torch.float64), torch.tensor([1])), 800.0)


def test_binary_log_probs_match_probs_path(rng: np.random.Generator) -> None:
    p = rng.uniform(0.01, 0.99, size=100)
    y = rng.integers(0, 2, size=100)
    lp = torch.from_numpy(np.log(p))
    close(binary_cross_entropy(lp, torch.from_numpy(y), input_format="log_probs"), log_loss(y, p))
    # log p = 0 on a positive costs nothing; on a negative it costs inf (no clipping of log-probabilities)
    close(binary_cross_entropy(torch.zeros(1, dtype=torch.float64), torch.ones(1), input_format="log_probs"), 0.0)
    close(binary_cross_entropy(torch.zeros(1, dtype=torch.float64), torch.zeros(1), input_format="log_probs"), math.inf)


def test_binary_ignore_index_and_smoothing(rng: np.random.Generator) -> None:
    z = rng.normal(size=200)
    y = rng.integers(0, 2, size=200)
    y[::7] = -1
    keep = y != -1
    smooth = 0.2
    ys = y[keep] * (1 - smooth) + smooth / 2
    expected = -(ys * log_expit(z[keep]) + (1 - ys) * log_expit(-z[keep])).mean()
    value = binary_cross_entropy(torch.from_numpy(z), torch.from_numpy(y), ignore_index=-1, label_smoothing=smooth)
    close(value, expected)


def test_binary_per_element_weights(rng: np.random.Generator) -> None:
    z, y, w = rng.normal(size=(20, 4)), rng.integers(0, 2, size=(20, 4)), rng.uniform(size=(20, 4))
    expected = np.sum(-w * (y * log_expit(z) + (1 - y) * log_expit(-z))) / w.sum()
    close(binary_cross_entropy(torch.from_numpy(z), torch.from_numpy(y), sample_weight=torch.from_numpy(w)), expected)


# ----------------------------------------------------------------------------------------------- multiclass
def test_multiclass_probs_match_log_loss(rng: np.random.Generator) -> None:
    p = rng.dirichlet(np.ones(5), size=300)
    p[0] = [1.0, 0, 0, 0, 0]
    y = rng.integers(0, 5, size=300)
    w = rng.uniform(0, 2, size=300)
    value = multiclass_cross_entropy(
        torch.from_numpy(p), torch.from_numpy(y), input_format="probs", sample_weight=torch.from_numpy(w)
    )
    close(value, log_loss(y, p, sample_weight=w, labels=range(5)))


@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_multiclass_logits_match_torch(rng: np.random.Generator, smoothing: float) -> None:
    z = torch.from_numpy(rng.normal(scale=5, size=(120, 6)))
    y = torch.from_numpy(rng.integers(0, 6, size=120))
    y[::9] = -100
    weight = torch.from_numpy(rng.uniform(0.5, 2, size=6))
    expected = F.cross_entropy(z, y, weight=weight, ignore_index=-100, label_smoothing=smoothing)
    value = multiclass_cross_entropy(z, y, weight=weight, ignore_index=-100, label_smoothing=smoothing)
    close(value, expected.item())


def test_multiclass_logits_match_scipy_logsumexp(rng: np.random.Generator) -> None:
    z = rng.normal(scale=100, size=(50, 7))
    y = rng.integers(0, 7, size=50)
    expected = np.mean(logsumexp(z, axis=1) - z[np.arange(50), y])
    close(multiclass_cross_entropy(torch.from_numpy(z), torch.from_numpy(y)), expected)


def test_multiclass_extreme_logit_on_true_class() -> None:
    z = torch.tensor([[-200.0, 0.0, 0.0]])
    close(multiclass_cross_entropy(z, torch.tensor([0])), 200.0 + math.log(2), rtol=1e-7)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_multiclass_soft_targets_match_torch(rng: np.random.Generator, smoothing: float) -> None:
    z = torch.from_numpy(rng.normal(size=(40, 4)))
    y = torch.from_numpy(rng.dirichlet(np.ones(4), size=40))
    weight = torch.from_numpy(rng.uniform(0.5, 2, size=4))
    expected = F.cross_entropy(z, y, weight=weight, label_smoothing=smoothing)
    close(multiclass_cross_entropy(z, y, weight=weight, label_smoothing=smoothing), expected.item())


def test_multiclass_spatial_and_sequence_shapes(rng: np.random.Generator) -> None:
    z = torch.from_numpy(rng.normal(size=(3, 5, 4, 2)))
    y = torch.from_numpy(rng.integers(0, 5, size=(3, 4, 2)))
    close(multiclass_cross_entropy(z, y), F.cross_entropy(z, y).item())
    lm = torch.from_numpy(rng.normal(size=(2, 6, 11)))  # (B, L, V)
    tokens = torch.from_numpy(rng.integers(0, 11, size=(2, 6)))
    tokens[0, 4:] = -100
    expected = F.cross_entropy(lm.reshape(-1, 11), tokens.reshape(-1), ignore_index=-100)
    close(multiclass_cross_entropy(lm.movedim(-1, 1), tokens, ignore_index=-100), expected.item())


def test_multiclass_log_probs_match_nll_loss(rng: np.random.Generator) -> None:
    lp = torch.log_softmax(torch.from_numpy(rng.normal(size=(30, 4))), dim=1)
    y = torch.from_numpy(rng.integers(0, 4, size=30))
    close(multiclass_cross_entropy(lp, y, input_format="log_probs"), F.nll_loss(lp, y).item())


def test_multiclass_per_class_and_macro(rng: np.random.Generator) -> None:
    z = torch.from_numpy(rng.normal(size=(200, 4)))
    y = torch.from_numpy(rng.integers(0, 3, size=200))  # class 3 never occurs
    per_sample = F.cross_entropy(z, y, reduction="none")
    expected = torch.tensor([per_sample[y == c].mean().item() for c in range(3)] + [math.nan], dtype=torch.float64)
    close(multiclass_cross_entropy(z, y, average="none"), expected)
    with pytest.warns(UserWarning, match=r"average='macro' skipped 1 classes with no weight \(indices \[3\]\)"):
        macro = multiclass_cross_entropy(z, y, average="macro")
    close(macro, expected[:3].mean().item())


def test_multiclass_uniform_logits_give_log_c() -> None:
    close(multiclass_cross_entropy(torch.zeros(10, 7, dtype=torch.float64), torch.arange(10) % 7), math.log(7))


# ----------------------------------------------------------------------------------------------- multilabel
def test_multilabel_check_values() -> None:
    logits, labels = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64), torch.tensor([[1, 0, 1]])
    per = [-log_expit(2.0), -log_expit(1.0), -log_expit(0.5)]  # label 2 is negative: -log(1 - s(-1)) = -log s(1)
    close(multilabel_cross_entropy(logits, labels, average="none"), np.array(per))
    close(multilabel_cross_entropy(logits, labels), np.mean(per))


def test_multilabel_probs_match_per_column_log_loss(rng: np.random.Generator) -> None:
    p = rng.uniform(size=(150, 4))
    y = rng.integers(0, 2, size=(150, 4))
    w = rng.uniform(size=150)
    per = np.array([log_loss(y[:, k], p[:, k], sample_weight=w, labels=[0, 1]) for k in range(4)])
    args = (torch.from_numpy(p), torch.from_numpy(y))
    close(multilabel_cross_entropy(*args, input_format="probs", sample_weight=torch.from_numpy(w), average="none"), per)
    close(
        multilabel_cross_entropy(*args, input_format="probs", sample_weight=torch.from_numpy(w), average="macro"),
        per.mean(),
    )
    close(multilabel_cross_entropy(*args, input_format="probs", sample_weight=torch.from_numpy(w)), per.mean())


def test_multilabel_logits_match_torch_with_pos_weight_and_ignore(rng: np.random.Generator) -> None:
    z = torch.from_numpy(rng.normal(scale=4, size=(80, 5)))
    y = torch.from_numpy(rng.integers(0, 2, size=(80, 5)))
    pos = torch.from_numpy(rng.uniform(0.5, 3, size=5))
    close(
        multilabel_cross_entropy(z, y, pos_weight=pos),
        F.binary_cross_entropy_with_logits(z, y.double(), pos_weight=pos).item(),
    )
    y_ign = y.clone()
    y_ign[rng.uniform(size=(80, 5)) < 0.2] = -1
    keep = y_ign != -1
    elementwise = F.binary_cross_entropy_with_logits(z, y_ign.clamp(min=0).double(), reduction="none")
    expected = torch.stack([elementwise[:, k][keep[:, k]].mean() for k in range(5)])
    close(multilabel_cross_entropy(z, y_ign, ignore_index=-1, average="none"), expected)
    close(multilabel_cross_entropy(z, y_ign, ignore_index=-1), elementwise[keep].mean().item())


# ----------------------------------------------------------------------------------------------- normalized entropy
def test_binary_normalized_entropy_is_one_minus_d2(rng: np.random.Generator) -> None:
    p, y, w = rng.uniform(0.05, 0.95, size=300), rng.integers(0, 2, size=300), rng.uniform(size=300)
    value = binary_normalized_entropy(
        torch.from_numpy(p), torch.from_numpy(y), input_format="probs", sample_weight=torch.from_numpy(w)
    )
    close(value, 1 - d2_log_loss_score(y, p, sample_weight=w), rtol=1e-10)


# torcheval scripts functions at import time; torch 2.13 deprecates torch.jit.script. Not ours.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_binary_normalized_entropy_matches_torcheval(rng: np.random.Generator) -> None:
    torcheval_functional = pytest.importorskip("torcheval.metrics.functional")
    torcheval_ne = torcheval_functional.binary_normalized_entropy

    z, y = torch.from_numpy(rng.normal(size=200)), torch.from_numpy(rng.integers(0, 2, size=200)).double()
    expected = torcheval_ne(z, y, from_logits=True)
    close(binary_normalized_entropy(z, y), expected.item(), rtol=1e-10)


def test_multiclass_normalized_entropy_is_one_minus_d2(rng: np.random.Generator) -> None:
    p, y = rng.dirichlet(np.ones(4), size=250), rng.integers(0, 4, size=250)
    value = multiclass_normalized_entropy(torch.from_numpy(p), torch.from_numpy(y), input_format="probs")
    close(value, 1 - d2_log_loss_score(y, p, labels=range(4)), rtol=1e-10)


def test_multilabel_normalized_entropy_per_label(rng: np.random.Generator) -> None:
    p, y = rng.uniform(0.05, 0.95, size=(200, 3)), rng.integers(0, 2, size=(200, 3))
    expected = np.array([1 - d2_log_loss_score(y[:, k], p[:, k]) for k in range(3)])
    args = (torch.from_numpy(p), torch.from_numpy(y))
    close(multilabel_normalized_entropy(*args, input_format="probs", average="none"), expected, rtol=1e-10)
    close(multilabel_normalized_entropy(*args, input_format="probs", average="macro"), expected.mean(), rtol=1e-10)
    per_loss = np.array([log_loss(y[:, k], p[:, k]) for k in range(3)])
    rate = y.mean(0)
    entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    close(multilabel_normalized_entropy(*args, input_format="probs"), per_loss.sum() / entropy.sum(), rtol=1e-10)


def test_degenerate_base_rate_gives_nan_and_warning() -> None:
    with pytest.warns(UserWarning, match="Normalized entropy is undefined"):
        value = binary_normalized_entropy(torch.tensor([0.3, -1.0]), torch.tensor([1, 1]))
    assert math.isnan(value.item())
    with pytest.warns(UserWarning, match="Normalized entropy is undefined"):
        per = multilabel_normalized_entropy(torch.zeros(2, 2), torch.tensor([[1, 0], [0, 0]]), average="none")
    assert math.isnan(per[1].item()) and per[0].item() == pytest.approx(1.0)
    with pytest.warns(UserWarning, match="Normalized entropy is undefined"):
        assert math.isnan(multiclass_normalized_entropy(torch.zeros(2, 3), torch.tensor([1, 1])).item())


def test_dispatch_matches_task_functions(rng: np.random.Generator) -> None:
    z = torch.from_numpy(rng.normal(size=(10, 3)))
    y = torch.from_numpy(rng.integers(0, 3, size=10))
    close(cross_entropy(z, y, task="multiclass", num_classes=3), multiclass_cross_entropy(z, y).item())
    yb = torch.from_numpy(rng.integers(0, 2, size=(10, 3)))
    close(cross_entropy(z, yb, task="multilabel", average="none"), multilabel_cross_entropy(z, yb, average="none"))
    close(cross_entropy(z[:, 0], yb[:, 0], task="binary"), binary_cross_entropy(z[:, 0], yb[:, 0]).item())
    close(normalized_entropy(z, y, task="multiclass"), multiclass_normalized_entropy(z, y).item())


def test_no_data_gives_nan_and_warning() -> None:
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):
        value = multiclass_cross_entropy(torch.zeros(3, 2), torch.tensor([-1, -1, -1]), ignore_index=-1)
    assert math.isnan(value.item())
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):
        assert math.isnan(binary_cross_entropy(torch.zeros(0), torch.zeros(0)).item())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs_computed_in_float32(rng: np.random.Generator, dtype: torch.dtype) -> None:
    z = torch.from_numpy(rng.normal(scale=3, size=(64, 10))).to(dtype)
    y = torch.from_numpy(rng.integers(0, 10, size=64))
    expected = F.cross_entropy(z.double(), y).item()  # the same (rounded) inputs, in float64
    close(multiclass_cross_entropy(z, y), expected, rtol=1e-6)
