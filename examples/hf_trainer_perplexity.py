"""Perplexity of a tiny GPT-2 under Hugging Face's Trainer, from its last hidden states: the logits are never kept.

A GPT-2 built from ``GPT2Config`` (random weights: nothing is downloaded) with a byte vocabulary (256 tokens)
trains for a few steps on the source of Python's ``argparse`` module, then is evaluated on its last windows,
cut to different lengths and padded with ``-100``, by ``PerplexityTrainer``: each batch runs the model's body
and reduces the hidden states with the head's weight to per-sequence float64 sums, which the Trainer gathers.
A plain float64 loop over the model's logits is the reference; the two must agree to 1e-6.

Run: ``python examples/hf_trainer_perplexity.py`` (``--steps N``), on two processes
``torchrun --standalone --nproc_per_node=2 examples/hf_trainer_perplexity.py`` (the same values), or measure the
peak memory of evaluation (a tiny GPT-2, V = 32000, sequences of 128 tokens) with
``--measure-memory integration --sequences 2000`` or ``--measure-memory default --sequences 100`` (the stock
Trainer keeping the logits for ``compute_metrics``: about 16 MiB per sequence, twice over).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import math
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from transformers import EvalPrediction, GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from xent_metrics import Perplexity
from xent_metrics.integrations.transformers import PerplexityTrainer

WINDOW = 64


def load_text() -> bytes:
    """The source of the standard library's ``argparse`` (or, where only bytecode ships, the Zen of Python)."""
    path = Path(argparse.__file__)
    if path.suffix == ".py":
        return path.read_bytes()
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    return codecs.decode(this.s, "rot13").encode() * 40


def windows(data: bytes, first: int, count: int, cut: bool) -> list[dict[str, torch.Tensor]]:
    """``count`` windows of ``WINDOW`` bytes from window ``first``; with ``cut``, of 1 to 64 bytes, padded."""
    rows = []
    for i in range(first, first + count):
        ids = torch.tensor(list(data[i * WINDOW : (i + 1) * WINDOW]), dtype=torch.long)
        keep = 1 + (i * 37) % WINDOW if cut else WINDOW
        labels = torch.where(torch.arange(WINDOW) < keep, ids, -100)
        # the shift scores positions 1..keep-1: keep - 1 bytes of text per sequence
        rows.append(
            {
                "input_ids": ids,
                "attention_mask": (labels != -100).long(),
                "labels": labels,
                "num_bytes": torch.tensor(keep - 1),
            }
        )
    return rows


def reference_perplexity(model: torch.nn.Module, rows: list[dict[str, torch.Tensor]]) -> float:
    """float64 perplexity over every scored token: a plain loop over the logits of the whole evaluation set."""
    model.eval()
    with torch.no_grad():
        batch = {key: torch.stack([row[key] for row in rows]) for key in ("input_ids", "attention_mask")}
        log_p = torch.log_softmax(model(**batch).logits.double(), -1)
    total, count = 0.0, 0
    for b, row in enumerate(rows):
        for t in range(WINDOW - 1):
            if row["labels"][t + 1] != -100:
                total -= float(log_p[b, t, row["labels"][t + 1]])
                count += 1
    return math.exp(total / count)


def _args(out: str, **kwargs: object) -> TrainingArguments:
    return TrainingArguments(
        output_dir=out,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        logging_strategy="no",
        **kwargs,
    )


def main(steps: int = 20) -> dict[str, float]:
    """Train ``steps`` steps, evaluate through the integration, print and return the values."""
    torch.manual_seed(0)
    data = load_text()
    total = len(data) // WINDOW
    evaluated = min(45, total // 10)  # odd: two processes get 23 + 22, the sampler repeats one
    config = GPT2Config(
        vocab_size=256, n_positions=WINDOW, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config)
    eval_rows = windows(data, total - evaluated, evaluated, cut=True)
    with tempfile.TemporaryDirectory() as out:
        args = _args(
            out,
            max_steps=steps,
            per_device_train_batch_size=16,
            learning_rate=3e-3,
            per_device_eval_batch_size=8,
            seed=0,
        )
        trainer = PerplexityTrainer(
            model=model,
            args=args,
            train_dataset=windows(data, 0, total - evaluated, False),
            eval_dataset=eval_rows,
            bytes_column="num_bytes",
        )
        trainer.train()
        metrics = trainer.evaluate()
    reference = reference_perplexity(model, eval_rows)
    result = {
        "perplexity": metrics["eval_perplexity"],
        "reference": reference,
        "eval_loss": metrics["eval_loss"],
        "bits_per_byte": metrics["eval_bits_per_byte"],
        "tokens": metrics["eval_tokens"],
    }
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"perplexity {result['perplexity']:.10f}")
        print(f"reference {reference:.10f}")
        print(
            f"eval_loss {result['eval_loss']:.6f} (exp {math.exp(result['eval_loss']):.6f}): the Trainer's mean of "
            "per-batch token means, each batch weighted by its sequences, not by its scored tokens"
        )
        print(f"bits_per_byte {result['bits_per_byte']:.6f} over {int(result['tokens'])} tokens")
    return result


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _watchdog(limit_mib: float) -> None:
    """Stop this process before its resident memory passes ``limit_mib`` (a shared machine)."""
    page = os.sysconf("SC_PAGE_SIZE")
    while True:
        with open("/proc/self/statm") as f:
            rss_mib = int(f.read().split()[1]) * page / 2**20
        if rss_mib > limit_mib:
            print(f"stopped: resident memory {rss_mib:.0f} MiB passed the {limit_mib:.0f} MiB limit", flush=True)
            os._exit(3)
        time.sleep(0.05)


def _logits_perplexity(eval_pred: EvalPrediction) -> dict[str, float]:
    """The usual ``compute_metrics`` on kept logits (read in place, no copy)."""
    metric = Perplexity(ignore_index=-100)
    logits, labels = torch.from_numpy(eval_pred.predictions), torch.from_numpy(eval_pred.label_ids)
    metric.update(logits[:, :-1], labels[:, 1:])
    return {"perplexity": float(metric.compute())}


def measure_memory(path: str, sequences: int, limit_mib: float) -> None:
    """Peak resident memory of one evaluation (a tiny GPT-2, V = 32000, 128 tokens), printed in MiB."""
    threading.Thread(target=_watchdog, args=(limit_mib,), daemon=True).start()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=32000, n_positions=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 32000, (sequences, 128))
    rows = [{"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x} for x in ids]
    with tempfile.TemporaryDirectory() as out:
        args = _args(out, per_device_eval_batch_size=8)
        if path == "integration":
            trainer: Trainer = PerplexityTrainer(model=model, args=args, eval_dataset=rows)
        else:
            trainer = Trainer(model=model, args=args, eval_dataset=rows, compute_metrics=_logits_perplexity)
        before = _peak_mib()
        start = time.perf_counter()
        metrics = trainer.evaluate()
        seconds = time.perf_counter() - start
    peak = _peak_mib()
    print(
        f"memory {path} sequences={sequences} peak_mib={peak:.0f} before_mib={before:.0f} "
        f"growth_mib={peak - before:.0f} seconds={seconds:.1f} perplexity={metrics['eval_perplexity']:.4f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--measure-memory", choices=["integration", "default"])
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--limit-mib", type=float, default=6900.0, help="stop before this resident memory")
    options = parser.parse_args()
    if options.measure_memory:
        measure_memory(options.measure_memory, options.sequences, options.limit_mib)
    else:
        main(options.steps)
    sys.exit(0)
