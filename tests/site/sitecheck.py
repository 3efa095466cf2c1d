"""Helpers for the checks of the built website (tests/site).

`external_references` finds everything a page would fetch from another host: scripts,
stylesheets, fonts, images, frames and CSS `url(...)`. Links a reader clicks (`<a href>`)
and non-loading `<link>` relations (canonical, alternate, ...) are not fetched and are
allowed.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"          # the site `make test` builds in quick mode
SCREENSHOTS = ROOT / "_build" / "screenshots"

# A reference is external when it names a scheme with a host, or a host without a scheme.
EXTERNAL = re.compile(r"^\s*(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//", re.ASCII)
# url(...) in CSS, with double, single or no quotes.
CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.IGNORECASE)
# @import "..." without url().
CSS_IMPORT = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
# <link rel=...> relations that make the browser fetch the target.
LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "preconnect",
                "dns-prefetch", "icon", "shortcut", "apple-touch-icon", "manifest",
                "mask-icon", "prerender"}
# Tag attributes that load a resource.
LOADING_ATTRS = {
    "script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "embed": ("src",),
    "object": ("data",), "source": ("src", "srcset"), "video": ("src", "poster"),
    "audio": ("src",), "track": ("src",), "input": ("src",), "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
}


def is_external(ref: str) -> bool:
    return bool(EXTERNAL.match(ref))


def css_references(css: str) -> list[str]:
    """Every target of url(...) and @import in a piece of CSS."""
    found = [next(g for g in m.groups() if g is not None) for m in CSS_URL.finditer(css)]
    found += [next(g for g in m.groups() if g is not None) for m in CSS_IMPORT.finditer(css)]
    return found


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or "") for k, v in attrs}
        tag = tag.lower()
        refs: list[str] = []
        if tag == "link":
            rels = set(a.get("rel", "").lower().split())
            if rels & LOADING_RELS or not rels:
                refs.append(a.get("href", ""))
        for attr in LOADING_ATTRS.get(tag, ()):
            value = a.get(attr, "")
            if attr == "srcset":
                refs += [part.strip().split(" ")[0] for part in value.split(",")]
            else:
                refs.append(value)
        if "style" in a:
            refs += css_references(a["style"])
        self.found += [r for r in refs if r and is_external(r)]
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag.lower() == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.found += [r for r in css_references(data) if is_external(r)]


def external_references(html: str) -> list[str]:
    """External resources that loading this HTML would fetch."""
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    return scanner.found


sys.path.insert(0, str(ROOT / "book" / "_ext"))
from translations import LANGUAGES as EDITIONS  # noqa: E402  translated editions, a folder each


def site_pages(site: Path) -> list[Path]:
    """Every HTML page of the built site, every edition's included: the copied MathJax and
    each edition's root index.html (a redirect to the intro) excluded."""
    def page(p: Path) -> bool:
        parts = p.relative_to(site).parts
        if parts[0] in EDITIONS:
            parts = parts[1:]
        return (not parts[0].startswith(("_static", "mathjax", "_sources"))
                and parts != ("index.html",))
    return sorted(p for p in site.rglob("*.html") if page(p))


# TeX that MathJax did not typeset, in the text a reader sees (code and typeset math removed):
# a pair of dollars, a lone dollar next to a formula character, a backslash command, or a
# sub- or superscript written the TeX way (x_{i}, W^T, e^{...}).
RAW_TEX = [
    re.compile(r"\$[^$\n]{1,80}\$"),
    re.compile(r"\$(?=[\\A-Za-z({])|(?<=[A-Za-z)}0-9])\$"),
    re.compile(r"\\(?:[A-Za-z]{2,}|[{}()\[\],;!|])"),
    re.compile(r"[A-Za-z0-9)}]_\{|\^\{|\b[A-Za-z]\^[A-Za-z0-9]\b"),
]


def raw_tex(text: str) -> list[str]:
    """Snippets of `text` (a page's visible prose) that look like TeX left unrendered."""
    found = []
    for pattern in RAW_TEX:
        for m in pattern.finditer(text):
            found.append(text[max(0, m.start() - 20):m.end() + 20].replace("\n", " "))
    return found
