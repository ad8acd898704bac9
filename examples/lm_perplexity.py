"""Validation perplexity of a tiny byte-level language model, from its hidden states: the logits never exist.

A GRU language model (embedding, one GRU layer, linear head over 256 byte values) trains for a few
steps on CPU on the source of Python's ``argparse`` module, then validates on the last tenth of it.
``Perplexity`` gets the GRU's hidden states and the head's weight and bias, and projects one block
of tokens at a time; a second ``Perplexity`` gets the full logits, for comparison. The two must agree
to 1e-6 (float32), and the peak extra memory of each path over the whole text is printed, measured in
this process (Linux).

Run: ``python examples/lm_perplexity.py`` or, on two processes (the same value),
``torchrun --standalone --nproc_per_node=2 examples/lm_perplexity.py``.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import ctypes
import io
import math
import os
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

from xent_metrics import Perplexity

VOCAB, WINDOW = 256, 64


def load_text() -> bytes:
    """The source of the standard library's ``argparse`` (or, where only bytecode ships, the Zen of Python)."""
    path = Path(argparse.__file__)
    if path.suffix == ".py":
        return path.read_bytes()
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    return codecs.decode(this.s, "rot13").encode() * 40


def windows(data: bytes) -> TensorDataset:
    """Non-overlapping windows of ``WINDOW`` bytes and the next byte of each position (the target)."""
    tokens = torch.tensor(list(data), dtype=torch.long)
    count = (len(tokens) - 1) // WINDOW // 2 * 2  # even: two processes get the same number of windows
    x = tokens[: count * WINDOW].view(count, WINDOW)
    y = tokens[1 : count * WINDOW + 1].view(count, WINDOW)
    return TensorDataset(x, y)


class ByteGRU(pl.LightningModule):
    """Embedding, one GRU layer, a linear head; validation perplexity from the hidden states."""

    def __init__(self, num_bytes: int, hidden: int = 64) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 32)
        self.gru = torch.nn.GRU(32, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, VOCAB)
        self.val_ppl = Perplexity()  # hidden states in, one block of logits at a time
        self.val_ppl_logits = Perplexity()  # the full logits, for comparison
        self.val_bpb = Perplexity(units="bits_per_byte", num_bytes=num_bytes)  # byte-level: one token per byte

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(self.embed(x))[0]

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.head(self.features(x)).flatten(0, 1), y.flatten())

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        hidden = self.features(x)
        head = {"linear_weight": self.head.weight, "linear_bias": self.head.bias}
        self.val_ppl.update(hidden, y, **head)
        self.val_bpb.update(hidden, y, **head)
        self.val_ppl_logits.update(self.head(hidden), y)
        self.log("val/ppl", self.val_ppl)
        self.log("val/bits_per_byte", self.val_bpb)
        self.log("val/ppl_logits", self.val_ppl_logits)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


class Bytes(pl.LightningDataModule):
    """Bytes split 9:1; every process trains on the same batches, validation is sharded over the processes.

    The same batches give every process the same gradients, so the model is the one a single process
    trains; the validation metrics sum their shards over the processes.
    """

    def __init__(self, text: bytes, batch_size: int = 16) -> None:
        super().__init__()
        split = len(text) * 9 // 10
        self.train, self.val, self.batch_size = windows(text[:split]), windows(text[split:]), batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        return DataLoader(Subset(self.val, range(rank, len(self.val), world)), batch_size=self.batch_size)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_memory(model: ByteGRU, text: bytes) -> dict[str, float]:
    """Peak extra memory (MiB, RSS high-water above the resident inputs) of each path over the whole text as one batch.

    Linux (glibc) only: writing 5 to ``/proc/self/clear_refs`` resets the high-water mark to the current RSS.
    The hidden-state path runs first, so memory it freed cannot hide the logits path's.
    """
    libc = ctypes.CDLL("libc.so.6")
    x, y = windows(text).tensors
    with torch.no_grad():
        hidden = model.features(x)
        weight, bias = model.head.weight, model.head.bias
        paths = {
            "hidden": lambda metric: metric.update(hidden, y, linear_weight=weight, linear_bias=bias),
            "logits": lambda metric: metric.update(F.linear(hidden, weight, bias), y),
        }
        peaks = {}
        for name, run in paths.items():
            metric = Perplexity()
            libc.malloc_trim(0)  # hand freed heap memory back, so that reusing it counts again
            Path("/proc/self/clear_refs").write_text("5")
            before = _status_kib("VmRSS")
            run(metric)
            peaks[name] = (_status_kib("VmHWM") - before) / 1024
    return peaks


def main(steps: int = 30, measure_memory: bool = True) -> dict[str, float]:
    """Train for ``steps`` steps, validate, check the two paths agree; return the logged values."""
    pl.seed_everything(0, verbose=False)
    text = load_text()
    data = Bytes(text)
    model = ByteGRU(num_bytes=len(data.val) * WINDOW)
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=processes,
        strategy="ddp" if processes > 1 else "auto",
        max_steps=steps,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=None,  # no validation inside fit: once, after training
        val_check_interval=10**9,
        use_distributed_sampler=False,  # the data module shards validation itself
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():  # Lightning's advice on worker counts and small datasets is not the point here
        warnings.filterwarnings("ignore", message=r".*(num_workers|does not have many workers|smaller than).*")
        trainer.fit(model, datamodule=data)
        logged = trainer.validate(model, datamodule=data, verbose=False)[0]
    ppl, ppl_logits = logged["val/ppl"], logged["val/ppl_logits"]
    difference = abs(ppl - ppl_logits) / ppl_logits
    if difference > 1e-6:
        raise AssertionError(f"hidden-state path {ppl!r} and logits path {ppl_logits!r} differ by {difference:.2e}")
    result = {**logged, "relative_difference": difference, "processes": processes}
    if trainer.is_global_zero:
        print(f"processes                       {processes}")
        print(f"val/ppl (hidden states)         {ppl!r}")
        print(f"val/ppl (logits)                {ppl_logits:.9g}   relative difference {difference:.1e} (<= 1e-6)")
        print(
            f"val/bits_per_byte               {logged['val/bits_per_byte']:.9g}   (= log2(ppl) "
            f"{math.log2(ppl):.9g}: one token per byte)"
        )
        if measure_memory and Path("/proc/self/clear_refs").exists():
            peaks = peak_memory(model, text)
            result.update({f"peak_mib_{k}": v for k, v in peaks.items()})
            print(
                f"peak extra memory, {len(text) - 1} tokens: hidden states {peaks['hidden']:.1f} MiB, "
                f"logits {peaks['logits']:.1f} MiB"
            )
    return result


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--steps", type=int, default=30, help="training steps (default: 30)")
    cli.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    options = cli.parse_args()
    main(options.steps, measure_memory=not options.no_memory)
    if torch.distributed.is_available() and torch.distributed.is_initialized():  # under torchrun: leave together
        torch.distributed.barrier()  # rank 0 may still be measuring memory
        torch.distributed.destroy_process_group()  # a live gloo group at exit can abort the process
