"""xent_metrics.integrations.transformers under a real Hugging Face Trainer (tiny random GPT-2, CPU).

Every expected value is a float64 loop over the model's own logits (``torch.log_softmax`` per token), never the
package's code: perplexity, bits, token counts, and the Trainer's ``eval_loss`` rule.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")  # the `transformers` extra; CI's test extra installs it

from transformers import EvalPrediction, GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402

from xent_metrics.integrations.transformers import (  # noqa: E402
    PerplexityMetrics,
    PerplexityTrainer,
    sequence_sums_from_hidden,
    sequence_sums_from_logits,
)

VOCAB, LENGTH = 37, 12
# Scored tokens per sequence (after the shift): full, padded, one token, none at all (every label -100).
LENGTHS = [12, 9, 0, 2, 12, 1, 5]


def _config() -> GPT2Config:
    torch.manual_seed(3)
    sizes = {"n_positions": LENGTH, "n_embd": 16, "n_layer": 1, "n_head": 2}
    return GPT2Config(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, **sizes)


def _model() -> GPT2LMHeadModel:
    return GPT2LMHeadModel(_config()).eval()


def _dataset(with_bytes: bool = False) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)
    rows = []
    for i, n in enumerate(LENGTHS):
        ids = torch.randint(0, VOCAB, (LENGTH,), generator=generator)
        labels = ids.clone()
        labels[max(n, 1) :] = -100  # n positions, of which the shift scores n - 1 (n = 1 and n = 0: none)
        if n == 0:
            labels[:] = -100
        row = {"input_ids": ids, "attention_mask": (labels != -100).long(), "labels": labels}
        row["attention_mask"][0] = 1
        if with_bytes:
            row["num_bytes"] = torch.tensor(3 * i + 1)
        rows.append(row)
    return rows


def _reference(model: torch.nn.Module, rows: list[dict[str, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    """float64 summed loss and scored tokens per sequence, a plain loop over the model's logits."""
    model.eval()
    losses, counts = [], []
    with torch.no_grad():
        for row in rows:
            logits = model(input_ids=row["input_ids"][None], attention_mask=row["attention_mask"][None]).logits[0]
            log_p = torch.log_softmax(logits.double(), -1)
            total, count = 0.0, 0
            for t in range(LENGTH - 1):
                target = int(row["labels"][t + 1])
                if target != -100:
                    total -= float(log_p[t, target])
                    count += 1
            losses.append(total)
            counts.append(count)
    return np.array(losses), np.array(counts)


def _args(tmp_path: Path, **kwargs: object) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        **kwargs,
    )


def _check_against_reference(metrics: dict, losses: np.ndarray, counts: np.ndarray, prefix: str = "eval_") -> None:
    mean = losses.sum() / counts.sum()
    assert metrics[f"{prefix}tokens"] == counts.sum() == sum(max(n - 1, 0) for n in LENGTHS)
    assert metrics[f"{prefix}perplexity"] == pytest.approx(math.exp(mean), rel=1e-6)
    assert metrics[f"{prefix}bits_per_token"] == pytest.approx(mean / math.log(2), rel=1e-6)


def test_evaluate_from_hidden_states_matches_float64_reference(tmp_path: Path) -> None:
    model, rows = _model(), _dataset()
    losses, counts = _reference(model, rows)
    calls: list[tuple[int, ...]] = []
    model.lm_head.register_forward_hook(lambda module, args, out: calls.append(tuple(out.shape)))
    trainer = PerplexityTrainer(model=model, args=_args(tmp_path), eval_dataset=rows)
    metrics = trainer.evaluate()
    _check_against_reference(metrics, losses, counts)
    # The head ran once, on the first sequence (the check that it is a plain head): never on a batch.
    assert calls == [(1, LENGTH, VOCAB)]
    # eval_loss: the Trainer's mean of batch means, each batch counted once per sequence (3, 3, then 1).
    batch_means = [losses[i : i + 3].sum() / counts[i : i + 3].sum() for i in range(0, len(rows), 3)]
    assert metrics["eval_loss"] == pytest.approx(np.average(batch_means, weights=[3, 3, 1]), rel=1e-6)
    assert metrics["eval_loss"] != pytest.approx(losses.sum() / counts.sum(), rel=1e-6)  # not the token mean
    assert "bits_per_byte" not in " ".join(metrics)


def test_batch_eval_metrics_and_two_evaluations(tmp_path: Path) -> None:
    model, rows = _model(), _dataset()
    losses, counts = _reference(model, rows)
    trainer = PerplexityTrainer(model=model, args=_args(tmp_path, batch_eval_metrics=True), eval_dataset=rows)
    first, second = trainer.evaluate(), trainer.evaluate()  # the running sums restart with each evaluation
    _check_against_reference(first, losses, counts)
    _check_against_reference(second, losses, counts)


def test_bytes_column_gives_bits_per_byte_and_training_ignores_it(tmp_path: Path) -> None:
    model, rows = _model(), _dataset(with_bytes=True)
    args = _args(tmp_path, max_steps=1, per_device_train_batch_size=4, learning_rate=1e-3)
    trainer = PerplexityTrainer(model=model, args=args, train_dataset=rows, eval_dataset=rows, bytes_column="num_bytes")
    trainer.train()  # the byte column travels with the batches and never reaches the model
    losses, counts = _reference(model, rows)
    metrics = trainer.evaluate()
    _check_against_reference(metrics, losses, counts)
    total_bytes = sum(3 * i + 1 for i in range(len(rows)))
    assert metrics["eval_bits_per_byte"] == pytest.approx(losses.sum() / (math.log(2) * total_bytes), rel=1e-6)
    trainer.compute_metrics = PerplexityMetrics(num_bytes=100)
    with pytest.raises(ValueError, match=r"per-sequence byte counts \(total 70\).*num_bytes=100.*one of the two"):
        trainer.evaluate()


def test_stock_trainer_with_preprocess_logits_matches(tmp_path: Path) -> None:
    model, rows = _model(), _dataset()
    losses, counts = _reference(model, rows)
    trainer = Trainer(
        model=model,
        args=_args(tmp_path),
        eval_dataset=rows,
        preprocess_logits_for_metrics=sequence_sums_from_logits,
        compute_metrics=PerplexityMetrics(num_bytes=50),
    )
    metrics = trainer.evaluate()
    _check_against_reference(metrics, losses, counts)
    assert metrics["eval_bits_per_byte"] == pytest.approx(losses.sum() / (math.log(2) * 50), rel=1e-6)


class _ScaledGPT2(GPT2LMHeadModel):
    """Logits scaled after the head (as Cohere's ``logit_scale``): the head alone does not give them."""

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        outputs = super().forward(*args, **kwargs)
        outputs.logits = outputs.logits * 0.5
        return outputs


def _scaled_model() -> _ScaledGPT2:
    return _ScaledGPT2(_config()).eval()


def _soft_capped_model() -> GPT2LMHeadModel:
    model = _model()
    model.config.final_logit_softcapping = 30.0  # GPT-2 ignores it; the trainer must not read the head
    return model


def _wrapped_head_model() -> GPT2LMHeadModel:
    model = _model()

    class Head(torch.nn.Linear):
        pass

    head = Head(16, VOCAB, bias=False)
    head.weight = model.lm_head.weight
    model.lm_head = head
    return model


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_scaled_model, r"not its head on its last hidden states \(off by"),
        (_soft_capped_model, r"soft-capped \(final_logit_softcapping=30.0\)"),
        (_wrapped_head_model, r"output head \(Head\) is not a torch.nn.Linear"),
    ],
)
def test_unreadable_head_falls_back_to_logits(tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    model, rows = make(), _dataset()
    losses, counts = _reference(model, rows)
    # _ScaledGPT2.forward(*args, **kwargs) has no named columns for remove_unused_columns to keep.
    trainer = PerplexityTrainer(model=model, args=_args(tmp_path, remove_unused_columns=False), eval_dataset=rows)
    with pytest.warns(UserWarning, match=rf"cannot read the model's output head: its .*{reason}") as record:
        metrics = trainer.evaluate()
    assert len([w for w in record if "cannot read" in str(w.message)]) == 1  # once per evaluation
    _check_against_reference(metrics, losses, counts)


def test_sequence_sums_against_float64_cross_entropy() -> None:
    hidden, weight, bias = torch.randn(3, 6, 5), torch.randn(11, 5) * 3, torch.randn(11)
    labels = torch.randint(0, 11, (3, 6))
    labels[1, 2:] = -100
    labels[2, 1:] = -100  # nothing after the shift
    logits = torch.nn.functional.linear(hidden, weight, bias).double()
    for shift in (True, False):
        z, y = (logits[:, :-1], labels[:, 1:]) if shift else (logits, labels)
        per_token = torch.nn.functional.cross_entropy(z.transpose(1, 2), y, ignore_index=-100, reduction="none")
        expected = torch.stack([per_token.sum(1), (y != -100).sum(1).double(), torch.tensor([4.0, 0.0, 2.0])], 1)
        got = sequence_sums_from_hidden(hidden, labels, weight, bias, torch.tensor([4, 0, 2]), shift=shift)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        from_logits = sequence_sums_from_logits((logits.float(), None), labels, torch.tensor([4, 0, 2]), shift=shift)
        torch.testing.assert_close(from_logits, expected, rtol=1e-6, atol=1e-6)


def test_metrics_no_tokens_warns_and_returns_nan() -> None:
    sums = np.zeros((2, 3))
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):
        metrics = PerplexityMetrics(num_bytes=8)(EvalPrediction(predictions=sums, label_ids=sums[:, 1]))
    assert math.isnan(metrics["perplexity"]) and math.isnan(metrics["bits_per_token"])
    assert math.isnan(metrics["bits_per_byte"]) and metrics["tokens"] == 0.0


def test_metrics_exact_for_confident_and_tiny_losses() -> None:
    # 1e-12 nats over 3 tokens: perplexity - 1 must keep its digits (expm1 reference).
    for loss, tokens in ((3e-12, 3.0), (0.3, 7.0), (900.0, 2.0)):
        sums = np.array([[loss, tokens, 0.0]])
        metrics = PerplexityMetrics()(EvalPrediction(predictions=sums, label_ids=sums[:, 1]))
        assert metrics["bits_per_token"] == pytest.approx(loss / tokens / math.log(2), rel=1e-14)
        expected = math.exp(loss / tokens) if loss / tokens < 700 else math.inf
        assert metrics["perplexity"] == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: sequence_sums_from_hidden(torch.randn(2, 4), torch.zeros(2, 4).long(), torch.randn(3, 4)),
            ValueError,
            r"`hidden` must be the \(B, L, d\) last hidden states, got \(2, 4\)",
        ),
        (
            lambda: sequence_sums_from_hidden(torch.randn(2, 4, 3), torch.zeros(2, 4), torch.randn(5, 3)),
            TypeError,
            r"`labels` must hold integer token ids \(or -100\), got dtype torch.float32",
        ),
        (
            lambda: sequence_sums_from_logits(torch.randn(2, 4, 3), torch.zeros(2, 5).long()),
            ValueError,
            r"`labels` must have shape \(B, L\) = \(2, 4\).*got \(2, 5\)",
        ),
        (lambda: sequence_sums_from_logits(torch.randn(2, 4, 3), [[0]]), TypeError, r"`labels` must be a tensor"),
        (
            lambda: sequence_sums_from_logits(torch.randn(4, 3), torch.zeros(4).long()),
            ValueError,
            r"`logits` must have shape \(B, L, V\).*got \(4, 3\)",
        ),
        (
            lambda: sequence_sums_from_logits(torch.randn(2, 4, 3), torch.zeros(2, 4).long(), torch.ones(2)),
            TypeError,
            r"`num_bytes` must be an integer tensor.*got dtype torch.float32",
        ),
        (
            lambda: sequence_sums_from_logits(torch.randn(2, 4, 3), torch.zeros(2, 4).long(), torch.ones(3).long()),
            ValueError,
            r"`num_bytes` must have shape \(2,\).*got \(3,\)",
        ),
        (
            lambda: sequence_sums_from_logits(torch.randn(2, 4, 3), torch.zeros(2, 4).long(), torch.tensor([1, -1])),
            ValueError,
            r"`num_bytes` must be non-negative.*minimum of -1",
        ),
        (
            lambda: PerplexityMetrics()(EvalPrediction(predictions=np.zeros((2, 4, 5)), label_ids=np.zeros(2))),
            ValueError,
            r"`predictions` must be the \(N, 3\) per-sequence sums.*got \(2, 4, 5\). If these are logits",
        ),
        (lambda: PerplexityMetrics(num_bytes=0), ValueError, r"num_bytes"),
    ],
)
def test_errors(call, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        call()


def test_missing_labels_is_refused(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "labels"} for row in _dataset()]
    trainer = PerplexityTrainer(model=_model(), args=_args(tmp_path), eval_dataset=rows)
    with pytest.raises(ValueError, match=r"needs `labels` in every evaluation batch.*got the keys \['attention_mask'"):
        trainer.evaluate()
