"""The main demo: ``python -m xent_metrics.demos [--config configs/demo.yaml] [LightningCLI overrides]``.

Trains :class:`~xent_metrics.demos.model.MultiLabelMLP` on the digit-tags data through
``LightningCLI`` with :class:`~xent_metrics.callbacks.PerClassBCEMonitor`, tests it, prints the
monitor's per-tag table and where its heatmap is, then runs the scikit-learn part of the demo.
Any LightningCLI override works, e.g. ``--trainer.max_epochs=3`` or ``--config configs/ddp.yaml``.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from xent_metrics.callbacks import PerClassBCEMonitor
from xent_metrics.demos.data import DigitTagsDataModule
from xent_metrics.demos.model import MultiLabelMLP

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def _with_default_config(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    if any(arg == "--config" or arg.startswith("--config=") for arg in argv):
        return argv
    if not DEFAULT_CONFIG.is_file():
        raise FileNotFoundError(
            f"The default demo config {DEFAULT_CONFIG} is missing (it lives in the repository's configs/ folder); "
            "run from a clone, or pass --config PATH."
        )
    return ["--config", str(DEFAULT_CONFIG), *argv]


@contextlib.contextmanager
def _command_line(args: list[str]) -> Iterator[None]:
    """Show ``args`` to LightningCLI as the command line (it warns when given both ``args`` and ``sys.argv``)."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "xent_metrics.demos", *args]
    try:
        yield
    finally:
        sys.argv = saved


def main(argv: Sequence[str] | None = None, *, sklearn_part: bool = True) -> LightningCLI:
    """Run the demo with LightningCLI arguments ``argv`` (default: the command line) and return the CLI."""
    start = time.perf_counter()
    # Lightning 2.6 with torch 2.13 calls a deprecated pytree API during fit; not ours, harmless.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
    args = _with_default_config(sys.argv[1:] if argv is None else argv)
    with _command_line(args):
        cli = LightningCLI(MultiLabelMLP, DigitTagsDataModule, run=False, save_config_kwargs={"overwrite": True})
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    if not cli.trainer.is_global_zero:
        return cli
    callbacks = cli.trainer.callbacks  # type: ignore[attr-defined]
    monitors = [cb for cb in callbacks if isinstance(cb, PerClassBCEMonitor)]
    for monitor in monitors:
        if monitor.history.get("test"):
            last = monitor.history["test"][-1]
            worst = max(range(monitor.num_labels), key=lambda k: last["values"][k])
            print(
                f"Test ({monitor.prefix}): macro BCE {last['macro']:.4f}; worst tag {monitor.labels[worst]} "
                f"{last['values'][worst]:.4f}"
            )
    print(f"Lightning part finished in {time.perf_counter() - start:.1f} s.")
    if sklearn_part:
        from xent_metrics.demos.sklearn_part import run_sklearn_demo  # imports scikit-learn

        print(run_sklearn_demo())
    print(f"Demo finished in {time.perf_counter() - start:.1f} s.")
    return cli


if __name__ == "__main__":
    main()
