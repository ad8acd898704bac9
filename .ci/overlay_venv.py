"""Create a virtual environment that sees its own packages first and then the running interpreter's.

``python -m venv --system-site-packages`` gives the new venv the *base* interpreter's packages: run from inside an
activated venv it does not see that venv's packages (torch, pytest, ...). This creates a plain venv and writes a
``.pth`` file into it that appends every ``site-packages`` directory on the running interpreter's ``sys.path``, the
same from system Python, an activated venv or CI. The paths are plain lines, so ``.pth`` files inside them (a
checkout's editable install) are not processed: what the new venv installs itself always wins.

Usage: ``python .ci/overlay_venv.py PATH [--without-pip]``; ``.ci/test-floors`` and ``tests/packaging/test_wheel.py``
use it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def outer_site_packages() -> list[str]:
    """Return the ``site-packages`` / ``dist-packages`` directories the running interpreter imports from."""
    names = ("site-packages", "dist-packages")
    return [p for p in dict.fromkeys(sys.path) if Path(p).name in names and Path(p).is_dir()]


def create(path: Path, *, with_pip: bool = True) -> Path:
    """Create the venv at ``path`` and return its Python."""
    subprocess.run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(path)], check=True)
    python = path / "bin" / "python"
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run([str(python), "-c", query], check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "_outer_environment.pth").write_text("".join(f"{p}\n" for p in outer_site_packages()))
    return python


if __name__ == "__main__":
    create(Path(sys.argv[1]), with_pip="--without-pip" not in sys.argv[2:])
