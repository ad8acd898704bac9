"""One test per error and warning of the functional core: type, message and the fix it names."""

import math
import warnings

import pytest
import torch

from xent_metrics.functional import (
    binary_cross_entropy,
    cross_entropy,
    multiclass_cross_entropy,
    multilabel_cross_entropy,
)

Z2 = torch.zeros(4, 3)
Y2 = torch.tensor([0, 1, 2, 1])
YB = torch.tensor([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 1]])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"input_format": "logit"},
            ValueError,
            r"`input_format` must be one of \['logits', 'probs', 'log_probs'\], got 'logit'",
        ),
        ({"average": "weighted"}, ValueError, r"`average` must be one of \['micro', 'macro', 'none'\], got 'weighted'"),
        ({"ignore_index": 1.5}, TypeError, r"`ignore_index` must be an int or None, got float 1.5"),
        ({"label_smoothing": "0.1"}, TypeError, r"`label_smoothing` must be a float in \[0, 1\), got str"),
        ({"label_smoothing": 1.0}, ValueError, r"`label_smoothing` must be in \[0, 1\), got 1.0"),
        ({"num_classes": 0}, ValueError, r"`num_classes` must be a positive int, got 0"),
        ({"num_classes": 3.0}, TypeError, r"`num_classes` must be an int or None, got float"),
        ({"num_classes": 4}, ValueError, r"`preds` has 3 classes in dimension 1 \(shape \(4, 3\)\) but num_classes=4"),
        (
            {"weight": torch.ones(2)},
            ValueError,
            r"`weight` must have shape \(3,\), one value per class or label, got \(2,\)",
        ),
        ({"weight": torch.tensor([1.0, -1.0, 1.0])}, ValueError, r"`weight` must be non-negative, got a minimum of -1"),
        ({"sample_weight": torch.ones(3)}, ValueError, r"`sample_weight` must have shape \(4,\), got \(3,\)"),
        ({"sample_weight": [1, 1, 1, 1]}, TypeError, r"`sample_weight` must be a torch.Tensor, got list"),
        (
            {"sample_weight": torch.tensor([1.0, math.nan, 1, 1])},
            ValueError,
            r"`sample_weight` contains NaN or inf \(1 of 4",
        ),
        (
            {"sample_weight": torch.zeros(4)},
            ValueError,
            r"`sample_weight` is zero everywhere \(4 values\); expected some weight > 0",
        ),
        ({"weight": torch.zeros(3)}, ValueError, r"`weight` is zero everywhere \(3 values\)"),
    ],
)
def test_multiclass_option_errors(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        multiclass_cross_entropy(Z2, Y2, **kwargs)


@pytest.mark.parametrize(
    ("preds", "target", "kwargs", "error", "match"),
    [
        (
            [[0.0, 1.0]],
            Y2[:1],
            {},
            TypeError,
            r"`preds` must be a torch.Tensor, got list. Convert with torch.as_tensor",
        ),
        (
            torch.zeros(4, 3, dtype=torch.long),
            Y2,
            {},
            TypeError,
            r"`preds` must be a floating point tensor .* got dtype torch.int64",
        ),
        (
            torch.zeros(4, 3, dtype=torch.complex64),
            Y2,
            {},
            TypeError,
            r"`preds` must be real-valued, got dtype torch.complex64",
        ),
        (torch.zeros(4), Y2, {}, ValueError, r"shape \(N, C, ...\) with C >= 2 .* got \(4,\). For a \(B, L, V\)"),
        (Z2, Y2.float(), {}, TypeError, r"`target` class indices must have an integer dtype, got torch.float32"),
        (
            Z2,
            torch.zeros(4, 2),
            {},
            ValueError,
            r"`target` must hold class indices of shape \(4,\) or probabilities of shape \(4, 3\)",
        ),
        (Z2, torch.tensor([0, 1, 3, 1]), {}, ValueError, r"class indices must lie in \[0, 2\], got values in \[0, 3\]"),
        (
            Z2,
            torch.tensor([0, -1, 5, 1]),
            {"ignore_index": -1},
            ValueError,
            r"\[0, 2\] or ignore_index=-1, got values in \[0, 5\]",
        ),
        (Z2, torch.full((4, 3), 1 / 3), {"ignore_index": -1}, ValueError, r"`ignore_index` cannot be used with soft"),
        (
            Z2,
            torch.full((4, 3), 2.0),
            {},
            ValueError,
            r"`target` probabilities must lie in \[0, 1\], got values in \[2, 2\]",
        ),
        (
            torch.tensor([[math.nan, 0.0]]),
            torch.tensor([0]),
            {},
            ValueError,
            r"`preds` contains NaN or inf \(1 of 2 values\)",
        ),
        (
            torch.tensor([[1.5, -0.5]]),
            torch.tensor([0]),
            {"input_format": "probs"},
            ValueError,
            r"`preds` with input_format='probs' must lie in \[0, 1\], got values in \[-0.5, 1.5\]",
        ),
        (
            torch.tensor([[0.5, -0.1]]),
            torch.tensor([0]),
            {"input_format": "log_probs"},
            ValueError,
            r"must be <= 0, got a maximum of 0.5. Did you mean input_format='logits'",
        ),
        (
            torch.tensor([[math.nan, -0.1]]),
            torch.tensor([0]),
            {"input_format": "log_probs"},
            ValueError,
            r"input_format='log_probs' must not contain NaN or \+inf",
        ),
        (Z2, Y2.to("meta"), {}, ValueError, r"`target` is on the meta device and holds no data"),
        (Z2.to("meta"), Y2, {}, ValueError, r"`preds` is on the meta device and holds no data"),
    ],
)
def test_multiclass_tensor_errors(preds, target, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        multiclass_cross_entropy(preds, target, **kwargs)


@pytest.mark.parametrize(
    ("preds", "target", "kwargs", "error", "match"),
    [
        (torch.zeros(3), torch.zeros(4), {}, ValueError, r"same shape for the binary task, got \(3,\) and \(4,\)"),
        (
            torch.zeros(2),
            torch.tensor([0, 2]),
            {},
            ValueError,
            r"`target` must contain only 0 and 1, got values in \[0, 2\]",
        ),
        (
            torch.zeros(2),
            torch.tensor([0, 2]),
            {"ignore_index": -1},
            ValueError,
            r"only 0 and 1 \(or ignore_index=-1\)",
        ),
        (
            torch.zeros(2),
            torch.tensor([0.5, 1.5]),
            {},
            ValueError,
            r"`target` values must lie in \[0, 1\], got values in \[0.5, 1.5\]",
        ),
        (torch.zeros(2), torch.tensor([0.5, math.inf]), {}, ValueError, r"`target` contains NaN or inf"),
        (
            torch.zeros(2),
            torch.ones(2),
            {"pos_weight": torch.ones(2)},
            ValueError,
            r"`pos_weight` for the binary task must be a scalar, got shape \(2,\)",
        ),
        (torch.zeros(2), torch.ones(2), {"pos_weight": -1.0}, ValueError, r"`pos_weight` must be non-negative"),
        (
            torch.zeros(2),
            torch.ones(2),
            {"sample_weight": torch.tensor([1.0, -2.0])},
            ValueError,
            r"`sample_weight` must be non-negative, got a minimum of -2",
        ),
    ],
)
def test_binary_errors(preds, target, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        binary_cross_entropy(preds, target, **kwargs)


@pytest.mark.parametrize(
    ("preds", "target", "kwargs", "error", "match"),
    [
        (
            torch.zeros(4),
            YB[:, 0],
            {},
            ValueError,
            r"shape \(N, K, ...\), got \(4,\). For a single label use the binary",
        ),
        (
            torch.zeros(4, 2),
            YB,
            {},
            ValueError,
            r"same shape \(N, K, ...\) for the multilabel task, got \(4, 2\) and \(4, 3\)",
        ),
        (
            torch.zeros(4, 3),
            YB,
            {"num_labels": 2},
            ValueError,
            r"`preds` has 3 labels in dimension 1 \(shape \(4, 3\)\) but num_labels=2",
        ),
        (torch.zeros(4, 3), YB, {"pos_weight": torch.ones(4)}, ValueError, r"`pos_weight` must have shape \(3,\)"),
        (torch.zeros(4, 3), YB * 3, {}, ValueError, r"`target` must contain only 0 and 1, got values in \[0, 3\]"),
        (
            torch.zeros(4, 3),
            YB,
            {"sample_weight": torch.ones(4, 3)},
            ValueError,
            r"`sample_weight` must have shape \(4,\), got \(4, 3\)",
        ),
    ],
)
def test_multilabel_errors(preds, target, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        multilabel_cross_entropy(preds, target, **kwargs)


def test_device_mismatch_message() -> None:
    # one real device here: check the message on a stand-in with a cuda device attribute
    from types import SimpleNamespace

    from xent_metrics.functional import _validation

    with pytest.raises(ValueError, match=r"`target` is on device cuda:0 but `preds` is on cpu; move both to one"):
        _validation.check_device("target", SimpleNamespace(device=torch.device("cuda", 0)), Z2)  # type: ignore[arg-type]


def test_unknown_task() -> None:
    with pytest.raises(
        ValueError, match=r"`task` must be one of \['binary', 'multiclass', 'multilabel'\], got 'multi'"
    ):
        cross_entropy(Z2, Y2, task="multi")


def test_probability_rows_not_summing_to_one_warn() -> None:
    with pytest.warns(UserWarning, match="`preds` probabilities do not sum to one along the class dimension") as rec:
        multiclass_cross_entropy(torch.tensor([[0.2, 0.2], [0.5, 0.5]]), torch.tensor([0, 1]), input_format="probs")
    message = str(rec[0].message)
    assert "rows sum to values in [0.4, 1]" in message
    assert "clipped to [eps, 1 - eps] and not renormalised" in message
    assert "input_format='probs'" not in message  # it is set already; the other fix is named
    assert "If they are logits, pass input_format='logits'" in message


@pytest.mark.parametrize(("offset", "warns"), [(0.9, False), (-0.9, False), (1.1, True), (-1.1, True)])
def test_row_sum_warning_bounds_and_values_clipped_not_renormalised(offset: float, warns: bool) -> None:
    tol = 1e-8 + math.sqrt(torch.finfo(torch.float64).eps)
    p = torch.tensor([[0.3, 0.7], [0.6, 0.4 + offset * tol]], dtype=torch.float64)
    y = torch.tensor([1, 1])
    assert (abs(p[1].sum().item() - 1) > tol) == warns
    expected = -(math.log(0.7) + math.log(0.4 + offset * tol)) / 2  # each row as given: no renormalisation
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = multiclass_cross_entropy(p, y, input_format="probs")
    assert [str(w.message).startswith("`preds` probabilities do not sum to one") for w in seen] == [True] * warns
    assert got.item() == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    ("fn", "preds", "target", "hint"),
    [
        (multiclass_cross_entropy, [[0.2, 0.8], [1.0, 0.0]], [1, 0], "probs"),  # in [0, 1]: probabilities
        (multiclass_cross_entropy, [[0.0, 1.0 + 2**-52]], [1], "logits"),  # one ulp above 1
        (multiclass_cross_entropy, [[-(2**-60), 0.5]], [1], "logits"),  # a hair below 0
        (multiclass_cross_entropy, [[0.5, -0.1]], [0], "logits"),
        (binary_cross_entropy, [0.3, 0.9], [0, 1], "probs"),
        (binary_cross_entropy, [2.5, -1.0], [0, 1], "logits"),
        (multilabel_cross_entropy, [[0.3, 0.9]], [[0, 1]], "probs"),
    ],
)
def test_positive_log_probabilities_are_refused_with_the_format_they_look_like(fn, preds, target, hint) -> None:
    p = torch.tensor(preds, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=rf"input_format='log_probs' must be <= 0, .*Did you mean input_format='{hint}'"
    ):
        fn(p, torch.tensor(target), input_format="log_probs")


def test_log_probabilities_at_zero_and_minus_inf_are_accepted() -> None:
    p = torch.tensor([[0.0, -math.inf], [math.log(0.3), math.log(0.7)]], dtype=torch.float64)
    got = multiclass_cross_entropy(p, torch.tensor([0, 1]), input_format="log_probs")
    assert got.item() == pytest.approx(-math.log(0.7) / 2, rel=1e-15)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_one_hot_targets_say_one_hot_and_name_both_fixes(dtype: torch.dtype) -> None:
    one_hot = torch.nn.functional.one_hot(Y2, 3).to(dtype)
    widen = r"\.long\(\)" if dtype == torch.bool else ""  # torch has no argmax of bool
    match = (
        rf"`target` looks one-hot: {dtype} of the shape of `preds` \(4, 3\).*"
        rf"Pass `target{widen}.argmax\(1\)` \(class indices\) or "
        r"`target.float\(\)` \(soft targets\)"
    )
    with pytest.raises(ValueError, match=match):
        multiclass_cross_entropy(Z2, one_hot)
    z = torch.tensor([[0.3, -1.2, 2.0], [1.5, 0.1, -0.4], [0.0, 0.7, 0.2], [-2.0, 3.0, 0.5]], dtype=torch.float64)
    reference = torch.nn.functional.cross_entropy(z, Y2).item()
    assert multiclass_cross_entropy(z, one_hot.long().argmax(1)).item() == pytest.approx(reference, rel=1e-14)
    assert multiclass_cross_entropy(z, one_hot.float()).item() == pytest.approx(reference, rel=1e-7)


def test_validate_args_false_runs_no_value_check() -> None:
    # out-of-range values pass straight through: the result is whatever the math gives, with no host-sync checks
    value = multiclass_cross_entropy(torch.tensor([[math.nan, 0.0]]), torch.tensor([0]), validate_args=False)
    assert math.isnan(value.item())
    value = binary_cross_entropy(torch.tensor([0.5]), torch.tensor([1]), input_format="probs", validate_args=False)
    assert value.item() == pytest.approx(math.log(2))
    # metadata checks still run: they are free
    with pytest.raises(ValueError, match="same shape"):
        binary_cross_entropy(torch.zeros(2), torch.zeros(3), validate_args=False)
