"""The wheel, installed in a fresh virtual environment outside the checkout: the demo, the examples, the doctests.

The wheel is built from this checkout with ``pip wheel --no-build-isolation`` (hatchling comes with the ``test``
extra, so no network is needed). The venv reuses the running environment's torch / Lightning / scikit-learn
(``.ci/overlay_venv.py``: from system Python, an activated venv or CI alike), but ``xent_metrics`` must come from
the wheel: every command runs with the venv's
Python, from a temporary directory, without ``PYTHONPATH``, and the test checks where the package was imported from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Lightning 2.6 with torch 2.13 calls a deprecated pytree API during fit; not ours (as in pyproject.toml).
# -W takes the literal start of the message (not a regex): Lightning 2.6 on torch 2.13, exactly that warning.
WARNINGS = ["-W", "error", "-W", "ignore:`isinstance(treespec, LeafSpec)` is deprecated:FutureWarning"]


def _run(command: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Build the wheel, install it into a new venv; return (its python, a work directory outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    assert not base.is_relative_to(ROOT)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(base), str(ROOT)],
        base,
    )
    (wheel,) = base.glob("xent_metrics-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"xent_metrics/demos/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")} <= set(names)
    assert "xent_metrics/py.typed" in names and not [n for n in names if n.startswith(("tests/", "configs/"))]

    _run([sys.executable, str(ROOT / ".ci" / "overlay_venv.py"), str(base / "venv"), "--without-pip"], base)
    python = base / "venv" / "bin" / "python"
    # The outer pip installs into the venv (pip >= 23.1: --python); --ignore-installed: never touch a checkout's
    # editable install that the system site-packages may hold.
    install = ["--python", str(python), "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)]
    _run([sys.executable, "-m", "pip", *install], base)
    work = base / "work"
    work.mkdir()
    where = _run([str(python), "-c", "import xent_metrics; print(xent_metrics.__file__)"], work).stdout.strip()
    assert Path(where).is_relative_to(base / "venv") and not Path(where).is_relative_to(ROOT), where
    return python, work


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_installed_wheel_runs_the_demo_the_examples_and_its_doctests(venv: tuple[Path, Path]) -> None:
    python, work = venv
    # The demo as a user runs it (shortened), with its default config, which must ship in the wheel; in the
    # background while the doctests and the examples run (two cores). Without -W error: Lightning's CLI calls
    # jsonargparse APIs deprecated in jsonargparse 4.49.
    demo_args = ["-m", "xent_metrics.demos", "--trainer.max_epochs=1", "--data.max_samples=300"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    demo = subprocess.Popen([str(python), *demo_args], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        (work / "pytest.ini").write_text("[pytest]\n")  # this directory's (empty) config, not the checkout's
        flags = ["-o", "doctest_optionflags=NORMALIZE_WHITESPACE NUMBER", "-p", "no:cacheprovider", *WARNINGS]
        doctests = _run(
            [str(python), "-m", "pytest", "-q", "--doctest-modules", "--pyargs", "xent_metrics", *flags], work
        )
        assert " passed" in doctests.stdout and "failed" not in doctests.stdout
        assert int(doctests.stdout.strip().splitlines()[-1].split()[0]) >= 20  # the package's doctests all ran

        for example in sorted((ROOT / "examples").glob("*.py")):
            copy = work / example.name  # run from a copy: nothing of the checkout on sys.path
            shutil.copy(example, copy)
            assert _run([str(python), *WARNINGS, str(copy)], work).stdout.strip()
        out, err = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
        demo.communicate()  # reaps it and closes its pipes, also when a check above failed
    assert demo.returncode == 0, err[-3000:]
    assert "Monitor:" not in err  # none of the monitor's warnings fire in the demo
    assert "Demo finished in" in out  # the monitor's table and heatmap path: Lightning's info log, on stderr
    assert "worst first" in err and "Per-label val BCE heatmap: " in err
    assert list((work / "demo_runs").glob("**/bce_per_label_val.png"))  # under the cwd, as configs/demo.yaml says
