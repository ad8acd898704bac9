"""``.. public-api:: module``: autodoc entries for every name in the module's ``__all__``, in that order.

The API reference follows ``__all__``: a name added to it is documented (and checked by the ``-W``
build) without editing the page.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# Members that classes inherit from these bases are theirs, not part of this package's API.
FOREIGN_BASES = "Metric, Module, Callback, DistributedSampler, Sampler"


def entry(module: str, name: str, obj: Any) -> list[str]:
    """The reST lines documenting ``module.name``."""
    if inspect.ismodule(obj):
        return [f".. rubric:: ``{module}.{name}``", "", f"The :mod:`{obj.__name__}` module, below.", ""]
    if inspect.isclass(obj):
        return [
            f".. autoclass:: {module}.{name}",
            "   :members:",
            f"   :inherited-members: {FOREIGN_BASES}",
            "",
        ]
    if inspect.isroutine(obj):
        return [f".. autofunction:: {module}.{name}", ""]
    return [f".. autodata:: {module}.{name}", "   :annotation:", ""]


class PublicApi(SphinxDirective):
    """Document every name in ``__all__`` of the module given as the argument."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Parse the generated ``automodule`` and per-name entries in place of the directive."""
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        lines = [f".. automodule:: {module_name}", "   :no-members:", ""]
        for name in module.__all__:
            lines += entry(module_name, name, getattr(module, name))
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(lines, source=f"<public-api {module_name}>"), container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("public-api", PublicApi)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
