"""The main demo: ``python -m xent_metrics.demos [--config demo|ddp|tensorboard|PATH] [LightningCLI overrides]``.

Trains :class:`~xent_metrics.demos.model.MultiLabelMLP` on the digit-tags data through
``LightningCLI`` with :class:`~xent_metrics.callbacks.PerClassBCEMonitor`, tests it, prints the
monitor's per-tag table and where its heatmap is, then runs the scikit-learn part of the demo.
Any LightningCLI override works, e.g. ``--trainer.max_epochs=3`` or ``--config ddp``.

The configs ship inside the package (``xent_metrics/demos/configs/*.yaml``), so the demo runs from
any directory after ``pip install``; ``configs/`` at the repository root holds the same files for
users to read and copy (a test keeps the two identical).
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

CONFIGS = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIGS / "demo.yaml"
DESCRIPTION = (
    "The xent-metrics demo. Part 1 (Lightning): trains a small MLP on scikit-learn's 8x8 digits, each image tagged "
    "with 7 labels (even, prime, greater_than_4, ...), with PerClassBCEMonitor logging the binary cross-entropy of "
    "every tag in train, val and test; at the end of fit it prints a worst-first table and saves a heatmap PNG. "
    "Part 2 (scikit-learn) follows: cross-validates scikit-learn models on the same tags with "
    "neg_cross_entropy_scorer beside neg_log_loss. Without --config, the packaged configs/demo.yaml is used. "
    f"--config also takes the name of a packaged config ({', '.join(sorted(p.stem for p in CONFIGS.glob('*.yaml')))}) "
    "or a path to your own YAML; any --trainer.* / --model.* / --data.* option below overrides it."
)
USAGE = (
    "python -m xent_metrics.demos [--config demo|ddp|tensorboard|PATH] [--trainer.* ...] [--model.* ...] [--data.* ...]"
)
EPILOG = (
    "Examples: python -m xent_metrics.demos --trainer.max_epochs=3 | python -m xent_metrics.demos --config ddp | "
    "python -m xent_metrics.demos --config tensorboard --print_config"
)


def _resolve(value: str) -> str:
    """A path that exists as given, else the packaged config of that name (``ddp``, ``ddp.yaml``, ``configs/ddp.yaml``).

    Examples
    --------
    >>> Path(_resolve("ddp")) == Path(_resolve("configs/ddp.yaml")) == CONFIGS / "ddp.yaml"
    True
    """
    if Path(value).is_file():
        return value
    name = Path(value).name
    for candidate in (CONFIGS / name, CONFIGS / f"{name}.yaml"):
        if candidate.is_file():
            return str(candidate)
    return value  # LightningCLI reports the missing file


def _with_default_config(argv: Sequence[str]) -> list[str]:
    """Prepend the default config unless one is given; resolve each ``--config`` value to a file."""
    args = list(argv)
    given = False
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            args[i + 1], given = _resolve(args[i + 1]), True
        elif arg.startswith("--config="):
            args[i], given = f"--config={_resolve(arg.split('=', 1)[1])}", True
    if given:
        return args
    if not DEFAULT_CONFIG.is_file():
        raise FileNotFoundError(
            f"The default demo config {DEFAULT_CONFIG} is missing (it ships inside the package: reinstall "
            "xent-metrics); or pass --config PATH."
        )
    return ["--config", str(DEFAULT_CONFIG), *args]


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
        cli = LightningCLI(
            MultiLabelMLP,
            DigitTagsDataModule,
            run=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                "prog": "python -m xent_metrics.demos",
                "usage": USAGE,
                "description": DESCRIPTION,
                "epilog": EPILOG,
            },
        )
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
