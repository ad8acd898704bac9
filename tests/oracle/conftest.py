"""Oracle suite: print its case counts and the worst relative errors per dtype at the end of the run.

``ORACLE_PROFILE=long`` (or ``HYPOTHESIS_PROFILE=long``) runs many more cases, by hand.
"""

from collections.abc import Iterator

import oracle_refs
import pytest
import torch

from xent_metrics.functional import _chunks


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The oracle's tensors are tiny: one intra-op thread (a shared 2-core runner otherwise spends most of the
    time waking the second thread for each small op). Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Cases per task and check, and the worst relative error seen per dtype (ours; torch native on the same)."""
    if not oracle_refs.CASES:
        return
    profile = "long" if oracle_refs.LONG else "ci"
    terminalreporter.section(f"oracle cases ({profile} profile)")
    for key in sorted(oracle_refs.CASES):
        terminalreporter.write_line(f"{oracle_refs.CASES[key]:6d}  {key}")
    terminalreporter.write_line(f"{sum(oracle_refs.CASES.values()):6d}  total")
    terminalreporter.section("oracle worst relative errors")
    for key in sorted(oracle_refs.WORST):
        terminalreporter.write_line(f"{oracle_refs.WORST[key]:10.3g}  {key}")


@pytest.fixture(autouse=True, params=["cpu-path", "device-path"])
def _kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every oracle check runs on both kernel paths: the CPU's, and the one other devices take (float64 for every
    value, no host reads, the device block sizes), forced on CPU tensors by ``_chunks.DEVICE_PATH_ON_CPU``."""
    if request.param == "device-path":
        monkeypatch.setattr(_chunks, "DEVICE_PATH_ON_CPU", True)
    return str(request.param)
