"""Sphinx fixes for the book's website (loaded through `local_extensions` in _config.yml).

sphinx-thebe registers its inline configuration script once per `env-before-read-docs`
event, which Jupyter Book 1 emits twice, so every page declared `const THEBE_JS_URL` twice
and the browser logged "Identifier 'THEBE_JS_URL' has already been declared". The book does
not use Thebe (live code needs a kernel server on the network), so its scripts are dropped.
Any other script registered twice is kept once.

Figures (and tables and code blocks with a caption) are numbered per chapter, "Fig. 6.3",
like the exercises: Sphinx numbers them through the whole book when the table of contents
is not numbered. The chapter is the two digits that start the file name (book/06_vae), and
the three pages of chapter 7 (book/07_*) count on from each other in reading order. Pages
without a chapter number (intro, errata, ...) keep Sphinx's numbers.

static/book.css holds the book's few styles: the size of code and output, breakable names in tables.
"""

from __future__ import annotations

import re
from pathlib import Path

CHAPTER = re.compile(r"(?:^|/)(\d\d)_[^/]*$")


def chapter_of(docname: str) -> int | None:
    m = CHAPTER.search(docname)
    return int(m.group(1)) if m else None


def renumber(order: list[str], fignumbers: dict) -> dict:
    """`fignumbers[doc][figtype][id] = (n,)` -> `(chapter, n)`, counted per chapter in `order`."""
    counters: dict[tuple[int, str], int] = {}
    for doc in order:
        chapter = chapter_of(doc)
        if chapter is None or doc not in fignumbers:
            continue
        for figtype, numbers in fignumbers[doc].items():
            for ident, _ in sorted(numbers.items(), key=lambda kv: kv[1]):
                counters[(chapter, figtype)] = counters.get((chapter, figtype), 0) + 1
                numbers[ident] = (chapter, counters[(chapter, figtype)])
    return fignumbers


def _reading_order(env) -> list[str]:
    order: list[str] = []
    stack = [env.config.root_doc]
    while stack:
        doc = stack.pop()
        if doc not in order:
            order.append(doc)
            stack.extend(reversed(env.toctree_includes.get(doc, [])))
    return order


def _number_figures_by_chapter(app, env):
    renumber(_reading_order(env), env.toc_fignumbers)
    return [doc for doc in env.toc_fignumbers if chapter_of(doc) is not None]


def _drop_thebe_and_duplicates(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        name = str(getattr(script, "filename", script) or "")
        body = str(getattr(script, "attributes", {}).get("body", ""))
        if "THEBE_JS_URL" in body or name.endswith("sphinx-thebe.js"):
            continue
        key = (name, body)
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


def _add_static(app):
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app):
    app.connect("builder-inited", _add_static)
    app.add_css_file("book.css")
    app.connect("html-page-context", _drop_thebe_and_duplicates, priority=900)
    # after Sphinx's own TocTreeCollector has assigned the numbers (priority 500)
    app.connect("env-get-updated", _number_figures_by_chapter, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
