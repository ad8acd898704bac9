"""The test environment's lock (requirements/dev.lock.txt, `make lock`) installs anywhere and honours pyproject.toml.

`make test` and CI install every test and dev dependency at the version the lock pins (`--constraint`), so a
fresh machine runs what CI ran yesterday; the library itself keeps ranges. A lock that names this machine (an index,
find-links, a local path, a `+cpu` build) or pins torch would break on another machine; a pin outside pyproject's
range (a range raised without `make lock`) would install a version the project does not declare.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "dev.lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            match = PIN.match(line.strip())
            assert match, f"{LOCK.name}: not a plain `name==version` pin: {line!r}"
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _declared(extra: str) -> list[Requirement]:
    """The requirements `pip install .[extra]` asks for, following the project's references to its own extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found, todo, seen = [Requirement(r) for r in project["dependencies"]], [extra], set()
    while todo:
        if (name := todo.pop()) in seen:
            continue
        seen.add(name)
        for requirement in map(Requirement, project["optional-dependencies"][name]):
            if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
                todo += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def test_the_lock_names_no_machine_and_leaves_torch_pip_and_the_project_out() -> None:
    text = LOCK.read_text()
    for needle in ("--index-url", "--extra-index-url", "--find-links", "://", "+cpu", "+cu", " @ "):
        assert needle not in text, f"{LOCK.name} holds {needle!r}: it must install on any machine"
    assert not {"torch", "pip", "setuptools", "xent-metrics"} & set(_pins())
    assert "#    make lock\n" in text  # refreshed by the make target, with its options


def test_every_declared_requirement_is_pinned_inside_its_range() -> None:
    pins, requirements = _pins(), _declared("dev")
    assert len(requirements) > 20 and {"pytest", "hypothesis", "lightning"} <= {r.name for r in requirements}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue  # installed first by the Makefile at TORCH_VERSION, never through the lock
        assert name in pins, f"{requirement} is declared in pyproject.toml but not pinned in {LOCK.name}: make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]} outside pyproject.toml's {requirement}: make lock"
        )


def test_the_lock_pins_torchs_needs_only_as_the_cpu_build_has_them() -> None:
    # Compiled against torch's CPU build: no CUDA runtime wheels (several GB) hide in the lock.
    assert not [name for name in _pins() if name.startswith(("nvidia-", "triton"))]
