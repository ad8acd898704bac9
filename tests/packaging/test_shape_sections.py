"""Every public function and Metric has a ``Shape`` section that names the tensors (arrays) it takes and its output.

The section is numpydoc-style (``Shape`` underlined by dashes, after ``Parameters``), one bullet per input:
``- ``name``: shape`` or ``- Output: shape``; a twin (a normalized entropy, D²) may say ``- ``a``, ``b``: as in
:func:`its_cross_entropy```, whose section must then name them. The names must be parameters that exist (of the
function, of a Metric's ``update`` or ``__init__``, of a scorer's ``__call__``), and every tensor or array
parameter must be named.
The docs build renders it (``docs/_ext/shape_section.py``; ``tests/packaging/test_docs.py`` counts the rubrics).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from torchmetrics import Metric

PUBLIC_MODULES = ("xent_metrics", "xent_metrics.functional", "xent_metrics.scoring")
# Public callables that take no tensor or array, so have no shape to state.
NO_DATA = {
    "xent_metrics.scoring.get_scorer": "takes a scorer's name",
    "xent_metrics.scoring.get_scorer_names": "takes nothing",
    "xent_metrics.scoring.make_cross_entropy_scorer": "takes options; CrossEntropyScorer has the section",
}
SKLEARN_ARRAYS = ("X", "y_true", "y_proba", "sample_weight")  # scikit-learn's array arguments (typed `object`)
SHAPE = re.compile(r"``\(([\w.]+(, [\w.]+)*,?)?\)``")  # a shape tuple in double backticks: ``(N, C, ...)``, ``()``
AS_IN = re.compile(r"^as in :(?:func|class):`~?([\w.]+)`")  # a twin's reference to its cross-entropy's section


def _public() -> Iterator[tuple[str, object]]:
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.ismodule(obj) and f"{module_name}.{name}" not in NO_DATA:
                yield f"{module_name}.{name}", obj


def _transformers_functions() -> Iterator[tuple[str, object]]:
    module_name = "xent_metrics.integrations.transformers"
    module = importlib.import_module(module_name)
    for name in module.__all__:
        if inspect.isfunction(getattr(module, name)):
            yield f"{module_name}.{name}", getattr(module, name)


def _signatures(obj: object) -> list[inspect.Signature]:
    """What takes the data: the function; a Metric's ``update`` and ``__init__``; a scorer's ``__call__``."""
    if inspect.isroutine(obj):
        return [inspect.signature(obj)]  # type: ignore[arg-type]
    cls = obj if inspect.isclass(obj) else type(obj)
    if issubclass(cls, Metric):
        return [inspect.signature(cls.update), inspect.signature(cls.__init__)]
    return [inspect.signature(cls.__call__)]


def _shape_entries(doc: str) -> list[str]:
    """The bullets of the docstring's one ``Shape`` section (a bullet's continuation lines joined to it)."""
    lines = inspect.cleandoc(doc).splitlines()
    starts = [i for i, line in enumerate(lines[:-1]) if line == "Shape" and lines[i + 1] == "-----"]
    assert len(starts) == 1, f"{len(starts)} Shape sections"
    body = []
    for i in range(starts[0] + 2, len(lines)):
        if i + 1 < len(lines) and lines[i] and set(lines[i + 1]) == {"-"}:
            break  # the next section's title
        body.append(lines[i])
    entries: list[str] = []
    for line in body:
        if line.startswith("- "):
            entries.append(line[2:])
        elif line.startswith("  ") and entries:
            entries[-1] += " " + line.strip()
        else:
            assert not line.strip(), f"a Shape line that is not a bullet: {line!r}"
    return entries


def _doc(obj: object) -> str:
    doc = obj.__doc__ if inspect.isroutine(obj) or inspect.isclass(obj) else type(obj).__doc__
    assert doc
    return doc


def _named(obj: object) -> set[str]:
    """The parameter names the Shape section of ``obj`` gives a shape."""
    return {n for entry in _shape_entries(_doc(obj)) for n in re.findall(r"``(\w+)``", entry.partition(": ")[0])}


def _check(name: str, obj: object, public: dict[str, object]) -> None:
    doc = _doc(obj)
    parameters = {p for sig in _signatures(obj) for p in sig.parameters if p != "self"}
    data = {
        p.name
        for sig in _signatures(obj)
        for p in sig.parameters.values()
        if "Tensor" in str(p.annotation) or p.name in SKLEARN_ARRAYS
    }
    named: set[str] = set()
    outputs = 0
    for entry in _shape_entries(doc):
        head, _, shape = entry.partition(": ")
        assert shape, f"{name}: a Shape bullet without `name: shape`: {entry!r}"
        names = [] if head == "Output" else re.findall(r"``(\w+)``", head)
        outputs += head == "Output"
        if head != "Output":
            assert names and ", ".join(f"``{n}``" for n in names) == head, f"{name}: {head!r} is not ``name``s"
            assert set(names) <= parameters, f"{name}: Shape names {set(names) - parameters}, which it does not take"
            named |= set(names)
        twin = AS_IN.match(shape)
        if twin and names:  # the twin's section must give these names a shape
            (other,) = [v for k, v in public.items() if k.endswith("." + twin.group(1).rpartition(".")[2])]
            assert other is not obj and set(names) <= _named(other), f"{name}: {entry!r} refers to no such shapes"
            continue
        referred = re.findall(r"the shape of ``(\w+)``", shape)
        assert SHAPE.search(shape) or referred or shape.startswith("a float"), f"{name}: no shape in {entry!r}"
        assert set(referred) <= parameters, f"{name}: {entry!r} refers to a parameter that does not exist"
    assert outputs == 1, f"{name}: {outputs} Output bullets"
    assert data <= named, f"{name}: the Shape section leaves out {sorted(data - named)}"


PUBLIC = list(_public())
BY_NAME = dict(PUBLIC)


def test_every_public_name_is_checked_or_exempt() -> None:
    assert len(PUBLIC) >= 20  # 7 Metrics + 9 functions + the scorer class, 2 scorers, 2 score functions
    exempt = {f"{m}.{n}" for m in PUBLIC_MODULES for n in importlib.import_module(m).__all__} & set(NO_DATA)
    assert exempt == set(NO_DATA)  # no stale exemption
    for name in NO_DATA:
        module_name, _, attr = name.rpartition(".")
        for sig in _signatures(getattr(importlib.import_module(module_name), attr)):
            assert [p for p in sig.parameters.values() if "Tensor" in str(p.annotation)] == [], name


@pytest.mark.parametrize(("name", "obj"), PUBLIC, ids=[name for name, _ in PUBLIC])
def test_public_name_has_a_shape_section(name: str, obj: object) -> None:
    _check(name, obj, BY_NAME)


def test_transformers_functions_have_a_shape_section() -> None:
    pytest.importorskip("transformers", reason="the `transformers` extra is not installed")
    functions = list(_transformers_functions())
    assert len(functions) == 2
    for name, obj in functions:
        _check(name, obj, dict(functions))


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("Sum.\n\nShape\n-----\n- ``preds``: ``(N,)``.\n- ``target``: ``(N,)``.\n", "0 Output"),
        ("Sum.\n\nShape\n-----\n- ``preds``: ``(N,)``.\n- ``other``: ``(N,)``.\n- Output: ``()``.", "does not take"),
        ("Sum.\n\nShape\n-----\n- ``preds``: ``(N,)``.\n- Output: ``()``.", r"leaves out \['target'\]"),
        ("Sum.\n\nShape\n-----\n- ``preds``: any.\n- ``target``: ``(N,)``.\n- Output: ``()``.", "no shape"),
        ("Sum.\n\nParameters\n----------\npreds : Tensor\n", "0 Shape sections"),
        (
            "Sum.\n\nShape\n-----\n- ``preds``, ``target``: as in :func:`cross_entropy_loss`.\n- Output: ``()``.\n",
            "no such",
        ),
    ],
)
def test_the_check_sees_a_wrong_section(doc: str, match: str) -> None:
    def loss(preds: object, target: object) -> object:
        return preds

    loss.__annotations__.update(preds="Tensor", target="Tensor")
    loss.__doc__ = doc
    with pytest.raises(AssertionError, match=match):
        _check("loss", loss, BY_NAME)


def test_the_docs_hook_renders_the_section_after_the_parameters() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "_ext" / "shape_section.py"
    spec = importlib.util.spec_from_file_location("shape_section", path)
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    doc = ["Sum.", "", "Parameters", "----------", "x : Tensor", "    One.", "", "Shape", "-----", "- ``x``: ``(N,)``."]
    doc += ["", "Returns", "-------", "Tensor", "    Two."]
    hook.take_shape(None, "function", "f", None, None, doc)  # before numpydoc: numpydoc drops an unknown section
    assert doc[6:] == ["", "Returns", "-------", "Tensor", "    Two."] and "Shape" not in doc
    rendered = [":Parameters:", "", "    **x** : Tensor", "        One.", "", ":Returns:", "", "    Tensor"]
    hook.put_shape(None, "function", "f", None, None, rendered)  # after numpydoc: between the two field lists
    assert rendered[5:9] == [".. rubric:: Shape", "", "- ``x``: ``(N,)``.", ""] and rendered[10] == ":Returns:"
    untouched = [":Parameters:", "", "    **x** : Tensor"]
    hook.put_shape(None, "function", "f", None, None, untouched)  # taken once, put once
    assert untouched == [":Parameters:", "", "    **x** : Tensor"]
