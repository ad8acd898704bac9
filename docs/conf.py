"""Sphinx configuration: ``make docs`` (``sphinx-build -W``) builds docs/_build/html from the checkout."""

import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]  # document this checkout, not an installed copy

import xent_metrics  # noqa: E402

project = "xent-metrics"
author = "xent-metrics contributors"
copyright = "2026, xent-metrics contributors"
release = version = xent_metrics.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    # MathJax 3 from the package (copied into _static/mathjax): formulas render offline, no script from a CDN.
    "sphinx-mathjax-offline",
    "numpydoc",
    "public_api",
    # numpydoc has no `Shape` section: this moves it around numpydoc and renders it after the parameters.
    "shape_section",
]

html_theme = "furo"
html_title = f"xent-metrics {release}"
html_static_path = ["_static"]
exclude_patterns = ["_build"]
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Inherited hooks and methods (torchmetrics, Lightning, torch) keep their own docstring styles: not ours to render.
autodoc_inherit_docstrings = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# numpydoc reports a malformed docstring (a bad underline, an unknown section) as a Python warning, which -W does
# not see: make it fail the build.
warnings.filterwarnings("error", category=UserWarning, module=r"numpydoc\.")
# numpydoc's signature step parses each docstring again and reports the `Shape` section it does not know; the
# `shape_section` extension renders that section, so this one report is not an error.
warnings.filterwarnings("ignore", message=r"Unknown section Shape\b", category=UserWarning, module=r"numpydoc\.")
