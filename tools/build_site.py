"""Build a static HTML site of the executed course: `make site` (or python tools/build_site.py OUT).

Every committed notebook (with its full-run outputs; nothing is executed or trained here) becomes a
page through nbconvert's HTML exporter ("lab" template: figures embedded, mermaid blocks drawn by
mermaid.js in the browser), with a navigation bar (contents, previous, next). The index page is the
chapter map, and the glossary and errata (docs/*.md) become pages of their own. Links between
notebooks (`01_why_pretrain.ipynb`) are rewritten to the pages.
"""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import mistune
import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ptm_lib.course import CHAPTERS  # noqa: E402

STYLE = """<style>
.ptm-nav{position:sticky;top:0;z-index:10;background:#f5f5f5;border-bottom:1px solid #ddd;padding:6px 16px;
font-family:system-ui,sans-serif;font-size:14px}.ptm-nav a{margin-right:18px}
.ptm-page{max-width:1000px;margin:24px auto;font-family:system-ui,sans-serif;line-height:1.5;padding:0 16px}
.ptm-page table{border-collapse:collapse}.ptm-page td,.ptm-page th{border:1px solid #ccc;padding:4px 8px}
</style>"""


def nav(prev: tuple[str, str] | None, nxt: tuple[str, str] | None) -> str:
    links = ['<a href="index.html">Contents</a>', '<a href="glossary.html">Glossary</a>', '<a href="errata.html">Errata</a>']
    if prev:
        links.append(f'<a href="{prev[0]}.html">&larr; {html.escape(prev[1])}</a>')
    if nxt:
        links.append(f'<a href="{nxt[0]}.html">{html.escape(nxt[1])} &rarr;</a>')
    return f'<nav class="ptm-nav">{"".join(links)}</nav>'


def link_pages(text: str) -> str:
    """Links to notebooks and docs become links to their pages."""
    text = re.sub(r'href="(?:\.\./)?(?:notebooks/)?(\d\d[a-z]?_[A-Za-z0-9_]+)\.ipynb', r'href="\1.html', text)
    return re.sub(r'href="(?:\.\./)?docs/(glossary|errata)\.md', r'href="\1.html', text)


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}</head>"
            f"<body>{nav(None, None)}<main class='ptm-page'>{body}</main></body></html>")


def build(out: Path) -> list[Path]:
    """Write the site into `out` (created; existing pages of the same names are replaced); return the pages."""
    out.mkdir(parents=True, exist_ok=True)
    chapters = [(stem, section) for section, stem, _ in CHAPTERS if (ROOT / "notebooks" / f"{stem}.ipynb").exists()]
    titles = {}
    for stem, _ in chapters:
        nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        first = nb.cells[0].source.splitlines()[0] if nb.cells else stem
        titles[stem] = first.lstrip("# ").strip()
    exporter = HTMLExporter(template_name="lab")
    pages = []
    for i, (stem, _) in enumerate(chapters):
        nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": titles[stem]}})
        prev = (chapters[i - 1][0], titles[chapters[i - 1][0]]) if i else None
        nxt = (chapters[i + 1][0], titles[chapters[i + 1][0]]) if i + 1 < len(chapters) else None
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + STYLE + nav(prev, nxt), body, count=1)
        path = out / f"{stem}.html"
        path.write_text(link_pages(body), encoding="utf-8")
        pages.append(path)
    rows = "".join(f"<tr><td>{html.escape(section)}</td><td><a href='{stem}.html'>{html.escape(titles[stem])}</a></td></tr>"
                   for stem, section in chapters)
    index = (f"<h1>ptm-course: pre-trained models, interactively</h1><p>The executed course, {len(chapters)} chapters, "
             "built from the committed notebooks (full-run outputs). Widgets need a running kernel: open the "
             "notebooks in JupyterLab (<code>make lab</code>) to move them.</p>"
             f"<table><tr><th>essay section</th><th>chapter</th></tr>{rows}</table>"
             "<p><a href='glossary.html'>Glossary (English–Chinese)</a> · <a href='errata.html'>Errata of the essay</a></p>")
    (out / "index.html").write_text(page("ptm-course", index), encoding="utf-8")
    pages.append(out / "index.html")
    markdown = mistune.create_markdown(plugins=["table"])
    for name in ("glossary", "errata"):
        text = (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")
        text = re.sub(r"`(\d\d[a-z]?_[A-Za-z0-9_]+)`", r"[\1](\1.html)", text)   # notebook names become links
        if name == "glossary":   # its last column names chapters by number: "03, 08b"
            stems = {stem.split("_")[0]: stem for stem, _ in chapters}
            text = re.sub(r"(?<=[|,] )(\d\d[a-z]?)(?=[, ]*(?:,|\|))",
                          lambda m: f"[{m.group(1)}]({stems[m.group(1)]}.html)" if m.group(1) in stems else m.group(1), text)
        (out / f"{name}.html").write_text(page(name.title(), link_pages(markdown(text))), encoding="utf-8")
        pages.append(out / f"{name}.html")
    return pages


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site"
    built = build(target)
    print(f"{len(built)} pages in {target}; open {target / 'index.html'}")
