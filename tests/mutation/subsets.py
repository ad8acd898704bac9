"""Which fast tests each mutated module runs against (pytest arguments, fastest and most telling first).

Left out everywhere: tests that read source files or frames (``tests/packaging``, the host-read spy of
``test_metrics_contract.py``, deselected, the adapter tests that read torchmetrics' and sklearn's source), which a
swapped ``__code__`` fools; the memory, fused-kernel (``torch.compile``), distributed, callback and slow tests.
"""

from __future__ import annotations

from pathlib import Path

_FUSED = "tests/functional/test_chunking.py::test_fused_kernel_matches_eager_and_compiles_once"
_SLOW = "not language_model_shape and not half_hidden and not fresh_process and not n_jobs"

#: The oracle suite and the kernel-level tests: every kernel runs against all of it.
KERNEL_TESTS = [
    "tests/oracle",
    "tests/functional/test_far_rows.py",
    "tests/functional/test_recompute_rows.py",
    "tests/functional/test_core_edges.py",
    "tests/functional/test_float64_sums.py",
    "tests/functional/test_autograd_values.py",
    "tests/functional/test_device_path.py",
    "tests/functional/test_functional_reference.py",
    "tests/functional/test_trust_regressions.py",
    "tests/functional/test_sums_rows.py",
    "tests/functional/test_chunking.py",
    "tests/functional/test_gpu_ready.py",
    "tests/metrics/test_perplexity_bytes.py",
    "--deselect", _FUSED,
]
#: Error bars (issue 23): the kernels fill the clusters' sums; the metrics, the paired difference and the scorer
#: read them.
ERROR_BAR_TESTS = [
    "tests/functional/test_error_bars.py",
    "tests/metrics/test_error_bars_metrics.py",
    "tests/metrics/test_error_bars_clusters.py",
    "tests/metrics/test_error_bars_sweep.py",
    "tests/metrics/test_error_bars_weighted.py",
    "tests/metrics/test_error_bars_edges.py",
    "tests/scoring/test_scoring_interval.py",
]
#: The hidden-state head's kernel: the kernels' subset and the head's own tests.
HEAD_TESTS = [
    *KERNEL_TESTS,
    *ERROR_BAR_TESTS,
    "tests/functional/test_linear.py",
    "tests/functional/test_head_blocks.py",
    "-k", _SLOW,
]
VALIDATION_TESTS = [
    "tests/functional/test_functional_errors.py",
    "tests/functional/test_options.py",
    "tests/functional/test_probs_as_logits.py",
    "tests/functional/test_shapes_unvalidated.py",
    "tests/oracle/test_oracle_references.py",
    "tests/oracle/test_oracle_binary.py",
    "tests/oracle/test_oracle_multiclass.py",
    "tests/functional/test_fuzz_functional.py",
    "tests/metrics/test_degenerate.py",
    "tests/functional/test_checks_edges.py",
]
METRIC_TESTS = [
    "tests/oracle/test_oracle_metrics.py",
    "tests/functional/test_shapes_unvalidated.py",
    "tests/metrics/test_metrics_lifecycle.py",
    "tests/metrics/test_metrics.py",
    "tests/metrics/test_degenerate.py",
    "tests/metrics/test_state_layouts.py",
    "tests/metrics/test_layout_matrix.py",
    "tests/metrics/test_layout_hints.py",
    "tests/metrics/test_linear_metrics.py",
    "tests/metrics/test_perplexity_bytes.py",
    "tests/metrics/test_checkpoints.py",
    "tests/metrics/test_refactor_seams.py",
    "tests/metrics/test_metrics_properties.py",
    "tests/metrics/test_sync_in_process.py",
    "tests/metrics/test_state_rules.py",
    "tests/functional/test_core_edges.py",
    "tests/metrics/test_metrics_contract.py",
    "--deselect", "tests/metrics/test_metrics_contract.py::test_validate_args_false_update_reads_no_tensor_value",
    "-k", _SLOW,
]
SCORING_TESTS = [
    "tests/scoring/test_scoring_loss.py",
    "tests/scoring/test_scoring_padding.py",
    "tests/scoring/test_scoring_scorer.py",
    "tests/scoring/test_scoring_d2.py",
    "tests/scoring/test_scoring_names.py",
    "tests/scoring/test_one_rule_set.py",
    "tests/scoring/test_signed_weight_total.py",
    "tests/scoring/test_scoring_checks_once.py",
    "tests/scoring/test_scoring_broken_models.py",
    "tests/scoring/test_scoring_multimetric.py",
    "-k", _SLOW,
]

_F, _M, _S = "xent_metrics.functional.", "xent_metrics.metrics.", "xent_metrics.scoring."
#: Module -> the pytest arguments of its subset. ``_fused`` (compiled by ``torch.compile``: minutes per mutant)
#: and the plotting module are not mutated; every other module of the three packages is
#: (``tests/mutation/test_mutants.py`` checks that).
SUBSETS: dict[str, list[str]] = {
    _F + "_nll": KERNEL_TESTS,
    **{_F + name: [*KERNEL_TESTS, *ERROR_BAR_TESTS] for name in ("_bce", "_softmax_ce")},
    _F + "_sums": [
        *KERNEL_TESTS, *ERROR_BAR_TESTS, "tests/metrics/test_degenerate.py", "tests/scoring/test_scoring_d2.py",
        "tests/scoring/test_scoring_loss.py",
    ],
    **{_F + name: HEAD_TESTS for name in ("_head_ce", "linear", "_chunks")},
    **{_F + name: [*ERROR_BAR_TESTS, *KERNEL_TESTS[:2]] for name in ("_error_bars", "_cluster_sums")},
    **{_F + name: VALIDATION_TESTS + KERNEL_TESTS[:2] for name in ("_validation", "_value_checks")},
    **{_F + name: KERNEL_TESTS + VALIDATION_TESTS[:3] for name in ("binary", "multiclass", "multilabel", "dispatch")},
    _M + "_base": [*METRIC_TESTS[:-4], *ERROR_BAR_TESTS[1:6], "tests/metrics/test_plot.py", *METRIC_TESTS[-4:]],
    **{
        _M + name: [*METRIC_TESTS[:-4], *ERROR_BAR_TESTS[1:6], *METRIC_TESTS[-4:]]
        for name in ("_head", "perplexity", "_torchmetrics")
    },
    **{_M + name: METRIC_TESTS for name in ("_layout", "_options", "_state", "_sync")},
    **{_M + name: METRIC_TESTS for name in ("binary", "multiclass", "multilabel")},
    **{_M + name: [*ERROR_BAR_TESTS, *METRIC_TESTS[:3]] for name in ("_error_bars", "_paired")},
    **{_S + name: SCORING_TESTS for name in ("_d2", "_inputs", "_label_sums", "_loss", "_names", "_scorer")},
    _S + "_sklearn": SCORING_TESTS,
    _S + "_interval": ["tests/scoring/test_scoring_interval.py", *SCORING_TESTS],
}
#: Time weight of a module in the budget: the kernels get three times a share.
KERNEL_WEIGHT = 3.0


def weight(module: str) -> float:
    """The module's share of the budget relative to an even split (normalised by :func:`select`'s caller)."""
    return KERNEL_WEIGHT if module.rsplit(".", 1)[-1] in ("_nll", "_bce", "_softmax_ce", "_sums", "_head_ce") else 1.0


def _existing(args: list[str]) -> list[str]:
    """``args`` without the test files that do not exist (yet): a run on an older checkout."""
    return [a for a in args if not a.startswith("tests/") or "::" in a or Path(a).exists()]


def select(names: list[str] | None) -> dict[str, list[str]]:
    """The modules whose name ends with one of ``names`` (all when ``None`` or empty), with their subsets."""
    if not names:
        return {m: _existing(args) for m, args in SUBSETS.items()}
    chosen = [m for n in names for m in SUBSETS if m.endswith("." + n) or m == n]  # in the order of ``names``
    return {m: _existing(SUBSETS[m]) for m in dict.fromkeys(chosen)}
