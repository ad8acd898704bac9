"""The Sphinx site builds with every warning an error, documents every public name and runs its examples."""

import doctest
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the `docs` extra (sphinx, furo, numpydoc) is not installed")

DOCS = Path(__file__).resolve().parents[2] / "docs"
PUBLIC_MODULES = ("xent_metrics", "xent_metrics.functional", "xent_metrics.scoring", "xent_metrics.callbacks")
PAGES = (
    "index", "metrics", "lightning", "sklearn", "language_models", "huggingface", "migrating", "accuracy", "error_bars",
    "api",
)
NARRATIVE = [page for page in PAGES if page != "api"]
# Scoped to the pages that need them: Lightning's hint about dataloader workers (shown on machines with more than two
# cores) and torch 2.13's deprecation of torch.jit, which torcheval and ignite call at import. Neither is ours.
PAGE_WARNINGS = {
    "lightning": "ignore::lightning.fabric.utilities.warnings.PossibleUserWarning",
    "migrating": r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sphinx-mathjax-offline", reason="the `docs` extra (sphinx-mathjax-offline) is not installed")
    out = tmp_path_factory.mktemp("docs")
    html = out / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(out / "doctrees")]
    build = subprocess.run([*command, str(DOCS), str(html)], capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, f"sphinx-build -W failed:\n{build.stdout}\n{build.stderr}"
    return html


def _public_anchors() -> list[str]:
    """The HTML id each public name must have: ``module-<name>`` for a module, its dotted path otherwise."""
    anchors = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            anchors.append(f"module-{obj.__name__}" if inspect.ismodule(obj) else f"{module_name}.{name}")
    return anchors


@pytest.mark.slow
def test_site_builds_with_every_page_and_the_heatmap(site: Path) -> None:
    for page in PAGES:
        assert (site / f"{page}.html").is_file(), page
    lightning = (site / "lightning.html").read_text()
    image = re.search(r'<img[^>]+src="(_images/bce_per_label_val\.png)"', lightning)
    assert image is not None and (site / image.group(1)).stat().st_size > 10_000


@pytest.mark.slow
def test_api_page_documents_every_public_name(site: Path) -> None:
    html = (site / "api.html").read_text()
    ids = set(re.findall(r'id="([^"]+)"', html))
    anchors = _public_anchors()
    assert len(anchors) >= 21  # 8 + 8 + 4 + 2 names today; more as __all__ grows
    assert [a for a in anchors if a not in ids] == []
    # numpydoc rendered the sections (a docstring autodoc only pasted would show "Parameters\n----------")
    assert "----------" not in html and html.count('<p class="rubric">Examples</p>') >= 10
    # the Shape sections (numpydoc has no such section: docs/_ext/shape_section.py renders them after Parameters)
    assert "Shape\n-----" not in html and html.count('<p class="rubric">Shape</p>') >= 19


def _page_param(page: str) -> object:
    marks = [pytest.mark.filterwarnings(PAGE_WARNINGS[page])] if page in PAGE_WARNINGS else []
    return pytest.param(page, marks=marks)


@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES])
def test_examples_on_the_pages_run(page: str) -> None:
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    path = DOCS / f"{page}.rst"
    result = doctest.testfile(str(path), module_relative=False, optionflags=flags, verbose=False)
    assert result.failed == 0
    assert result.attempted == path.read_text().count(">>> ")  # every example on the page ran


@pytest.mark.slow
def test_no_page_loads_a_script_from_the_network(site: Path) -> None:
    pages = sorted(site.glob("**/*.html"))
    assert len(pages) >= len(PAGES)
    for page in pages:
        html = page.read_text()
        sources = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
        assert [s for s in sources if re.match(r"(https?:)?//", s)] == [], page.name
        for source in sources:  # every script is a file of the site
            assert (page.parent / source.split("?")[0]).is_file(), (page.name, source)
    # The formulas of the API page are typeset by the MathJax copied into the site.
    api = (site / "api.html").read_text()
    assert 'src="_static/mathjax/tex-chtml.js"' in api and api.count('class="math') >= 5


def _doctest_lines(page: str) -> str:
    text = (DOCS / f"{page}.rst").read_text()
    return "\n".join(line for line in text.splitlines() if line.lstrip().startswith((">>> ", "... ")))


def test_every_public_name_has_a_runnable_example_on_a_narrative_page() -> None:
    examples = {page: _doctest_lines(page) for page in NARRATIVE}
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if inspect.ismodule(getattr(module, name)):
                continue
            if not any(re.search(rf"\b{name}\b", code) for code in examples.values()):
                missing.append(f"{module_name}.{name}")
    assert missing == []
