"""Print the pins of the lowest versions pyproject.toml declares for torchmetrics, Lightning, scikit-learn, transformers.

``.ci/test-floors`` installs these (``name==floor``) into a second environment, so the floors CI tests are
always the ones pyproject.toml declares: raising a floor there raises it here.
"""

import re
import sys
import tomllib
from pathlib import Path

PACKAGES = ("torchmetrics", "lightning", "scikit-learn", "transformers")


def floor_pins(pyproject: Path) -> list[str]:
    """Return ``name==version`` for each of PACKAGES, from its ``name>=version`` requirement."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins = []
    for name in PACKAGES:
        floors = {m.group(1) for r in requirements if (m := re.fullmatch(rf"{name}\s*>=\s*([\w.]+)", r.strip()))}
        if len(floors) != 1:
            raise SystemExit(f"pyproject.toml: expected one `{name}>=X` requirement, found {sorted(floors)}")
        pins.append(f"{name}=={floors.pop()}")
    return pins


if __name__ == "__main__":
    print(" ".join(floor_pins(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))))
