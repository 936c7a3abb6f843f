"""Link every chapter to the glossary: its terms, in English and Chinese, at the end of its first cell.

docs/glossary.md is the source: its last column names the chapters where a term is measured
("03, 08b"). This script writes one line, "**Glossary** (English · 中文): term 术语 · ...", linking
to docs/glossary.md, at the end of each chapter's first (title) cell, replacing the line it wrote
before. Only that markdown line changes: the code cells and their outputs are untouched.

    python tools/glossary_links.py          # update notebooks/*.ipynb
    python tools/glossary_links.py --check  # exit 1 if a notebook's line differs from the glossary

tests/test_site.py runs the check.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "**Glossary** (English · 中文):"


def glossary_terms(path: Path = ROOT / "docs" / "glossary.md") -> list[tuple[str, str, list[str]]]:
    """(English, Chinese, chapter ids) of every row of the glossary's table."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("English", "") and not set(cells[0]) <= set("-"):
            rows.append((cells[0], cells[1], [c.strip() for c in cells[3].split(",") if c.strip()]))
    return rows


def chapter_id(stem: str) -> str:
    """'06a_text' -> '06a'."""
    return stem.split("_")[0]


def terms_line(stem: str, terms=None) -> str | None:
    """The glossary line of a chapter, or None when no term names it."""
    terms = glossary_terms() if terms is None else terms
    mine = [f"{en} {zh}" for en, zh, chapters in terms if chapter_id(stem) in chapters]
    if not mine:
        return None
    return f"{PREFIX} " + " · ".join(mine) + " — see the [glossary](../docs/glossary.md)."


def with_line(source: str, line: str | None) -> str:
    """`source` with its glossary line (if any) replaced by `line` (or removed when None)."""
    kept = [l for l in source.rstrip("\n").split("\n") if not l.startswith(PREFIX)]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept + ([""] + [line] if line else []))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    terms, stale = glossary_terms(), []
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        new = with_line(first.source, terms_line(path.stem, terms))
        if new != first.source:
            stale.append(path.name)
            if not args.check:
                first.source = new
                nbformat.write(nb, path)
    if args.check and stale:
        print("glossary line out of date in: " + ", ".join(stale) + "; run python tools/glossary_links.py")
        return 1
    print(("updated: " + ", ".join(stale)) if stale and not args.check else "every chapter's glossary line is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
