"""``python benchmarks/run.py [--quick] [--only CASE ...] [--device cuda] [--long-run]``: see benchmarks/README.md."""

import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]  # this folder would shadow modules
    sys.path.insert(0, str(here.parent))
    from benchmarks.cli import main

    main()
