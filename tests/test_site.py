"""`make site`: a static HTML page per executed chapter, with its figures and the navigation."""
import re
import subprocess
import sys

import nbformat
import pytest

from ptm_lib import course
from ptm_lib.report import repo_root

ROOT = repo_root()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_every_chapter_has_a_page_with_its_figures_and_navigation(site):
    for nb_path in course.list_notebooks():
        page = (site / f"{nb_path.stem}.html").read_text(encoding="utf-8")
        nb = nbformat.read(nb_path, as_version=4)
        figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert len(re.findall(r'<img[^>]+src="data:image/png', page)) >= figures, nb_path.stem
        assert 'href="index.html"' in page and 'href="glossary.html"' in page and 'href="errata.html"' in page
        links = re.findall(r'href="(?!https?://)([^"]*\.ipynb)[#"]', page)     # links to notebooks, not code
        assert not links or nb_path.stem == "00_start_here", f"{nb_path.stem}: links not rewritten to pages: {links}"


def test_index_links_every_chapter_and_the_appendices(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    for nb_path in course.list_notebooks():
        assert f"href='{nb_path.stem}.html'" in index
    for name in ("glossary", "errata"):
        text = (site / f"{name}.html").read_text(encoding="utf-8")
        assert "<table>" in text and 'href="07_tools.html"' in text


def test_mermaid_diagrams_are_marked_for_rendering(site):
    page = (site / "02_concepts.html").read_text(encoding="utf-8")
    assert '<pre class="mermaid">' in page and "mermaid" in page.split("</head>")[0] + page


def test_every_chapter_links_its_glossary_terms():
    sys.path.insert(0, str(ROOT / "tools"))
    import glossary_links

    terms = glossary_links.glossary_terms()
    assert len(terms) >= 40 and all(zh for _, zh, _ in terms)
    named = {c for _, _, chapters in terms for c in chapters}
    stems = {glossary_links.chapter_id(p.stem) for p in course.list_notebooks()}
    assert named <= stems, f"the glossary names chapters that do not exist: {sorted(named - stems)}"
    for nb_path in course.list_notebooks():
        first = nbformat.read(nb_path, as_version=4).cells[0].source
        line = glossary_links.terms_line(nb_path.stem, terms)
        if line:
            assert first.rstrip().endswith(line), f"{nb_path.name}: run python tools/glossary_links.py"
    assert glossary_links.main(["--check"]) == 0
