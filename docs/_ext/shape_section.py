"""The ``Shape`` section of the docstrings (as torch's losses have), rendered after ``Parameters``.

numpydoc knows a fixed list of sections and drops an unknown one with a warning. Before numpydoc reads a
docstring, :func:`take_shape` cuts its ``Shape`` section out; after numpydoc rendered it, :func:`put_shape`
inserts the section as a ``Shape`` rubric after the parameters (before ``Returns`` when there are none), where
``help()`` shows it in the source.
"""

from __future__ import annotations

import re
from typing import Any

_HEADER = "Shape"
_FIELD = re.compile(r"^:[A-Z][\w ]*:$")  # a section numpydoc renders as a field list (":Parameters:", ":Returns:")
_taken: dict[str, list[str]] = {}  # the Shape sections cut out, by object name, until numpydoc has run


def _is_header(lines: list[str], i: int) -> bool:
    """Whether line ``i`` opens a numpydoc section (a title underlined by dashes of at least its length)."""
    title, rule = lines[i].strip(), lines[i + 1].strip() if i + 1 < len(lines) else ""
    return bool(title) and len(rule) >= len(title) and set(rule) == {"-"}


def take_shape(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Cut the ``Shape`` section out of ``lines`` (before numpydoc), keeping its body for :func:`put_shape`."""
    start = next((i for i in range(len(lines)) if lines[i].strip() == _HEADER and _is_header(lines, i)), None)
    if start is None:
        return
    end = next((i for i in range(start + 2, len(lines)) if _is_header(lines, i)), len(lines))
    _taken[name] = lines[start + 2 : end]
    del lines[start:end]


def put_shape(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Insert the body :func:`take_shape` cut out as a ``Shape`` rubric after the rendered parameters."""
    body = _taken.pop(name, None)
    if body is None:
        return
    fields = [i for i, line in enumerate(lines) if _FIELD.match(line)]
    where = len(lines)
    if ":Parameters:" in lines:
        after = lines.index(":Parameters:") + 1
        where = next((i for i in range(after, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines))
    elif fields:
        where = fields[0]
    lines[where:where] = [f".. rubric:: {_HEADER}", "", *body, ""]


def setup(app: Any) -> dict[str, Any]:
    """Connect the two steps around numpydoc's ``autodoc-process-docstring`` handler (priority 500)."""
    app.connect("autodoc-process-docstring", take_shape, priority=400)
    app.connect("autodoc-process-docstring", put_shape, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
