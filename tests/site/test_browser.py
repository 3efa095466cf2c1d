"""Every page of the built site in headless Chromium, with every request to another host
blocked: the page loads (HTTP 200) without JavaScript errors, its images decode, its
internal links and anchors resolve, its math is typeset by the site's own MathJax and no TeX
is left raw in its prose, nothing on it is wider than the page at 1280 px, its figures keep
readable text, and the search page finds a chapter. A full-page screenshot of every chapter goes to
_build/screenshots/ (the test log names the folder)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from functools import lru_cache
from urllib.parse import urldefrag

import pytest

from sitecheck import SCREENSHOTS, SITE, raw_tex, site_pages

PAGES = [str(p.relative_to(SITE)) for p in site_pages(SITE)] if SITE.is_dir() else ["book/intro.html"]
# pages of the translated editions also photographed (every English chapter is)
EDITION_SCREENSHOTS = {f"{lang}/book/{page}.html" for lang in ("zh_CN", "ru")
                       for page in ("intro", "03_denoising", "06_vae", "glossary")}
IDS = re.compile(r"""\sid=["']([^"']+)["']""")

# Text of the page outside code, math and scripts, as the reader sees it.
VISIBLE_TEXT_JS = """() => {
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  return main.innerText;
}"""
IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return imgs.filter(i => !(i.naturalWidth > 0 && i.naturalHeight > 0))
             .map(i => i.currentSrc || i.src || i.outerHTML.slice(0, 80));
}"""
MATH_JS = """async () => {
  const spans = document.querySelectorAll('span.math, div.math');
  if (spans.length === 0) return {math: 0, typeset: 0, raw: []};
  for (let t = 0; t < 300 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); t++)
    await new Promise(r => setTimeout(r, 50));
  if (!(window.MathJax && MathJax.startup)) return {math: spans.length, typeset: 0, raw: ['MathJax did not start']};
  await MathJax.startup.promise;
  const raw = Array.from(document.querySelectorAll('span.math, div.math'))
    .filter(e => !e.querySelector('mjx-container') && /\\\\[(\\[]|\\$/.test(e.textContent))
    .map(e => e.textContent.slice(0, 60));
  return {math: spans.length, typeset: document.querySelectorAll('mjx-container').length, raw: raw};
}"""
# Tables, code blocks, cell outputs and displayed formulas wider than their container, at the page's width: their
# content scrolls or is cut (scrollWidth > clientWidth), or the box itself sticks out of its
# parent. A wide table that scrolls on purpose is still reported: transpose or split it.
OVERFLOW_JS = """() => {
  const main = document.querySelector('main') || document.body;
  const boxes = main.querySelectorAll('table, pre, div.highlight, div.cell_output, div.output, figure, img, '
                                      + 'mjx-container[display="true"]');
  const out = [];
  for (const e of boxes) {
    if (e.closest('.toggle-hidden, details:not([open]), [hidden]') || e.offsetParent === null) continue;
    const parent = e.parentElement;
    const inner = e.scrollWidth - e.clientWidth;
    const outer = parent ? e.getBoundingClientRect().width - parent.clientWidth : 0;
    if (inner > 1 || outer > 1) {
      const what = (e.innerText || e.getAttribute('src') || '').trim().split('\\n')[0].slice(0, 70);
      out.push(`${e.tagName.toLowerCase()}.${e.className} +${Math.max(inner, outer)}px: ${what}`);
    }
  }
  return out;
}"""
# Figures shown at less than 80% of their size: their 9 pt text (aelib.plot's smallest, 12.5 px
# at matplotlib's 100 dpi) would fall below 10 px. aelib.plot.MAX_WIDTH keeps figures narrow
# enough.
SHRUNK_JS = """() => Array.from(document.querySelectorAll('main img'))
  .filter(i => i.clientWidth > 0 && i.naturalWidth > 0 && i.clientWidth / i.naturalWidth < 0.8)
  .map(i => `${(i.closest('figure') || i.closest('.cell') || {}).id || i.src.split('/').pop()}: `
            + `${i.naturalWidth} px shown at ${i.clientWidth} px`)"""
LINKS_JS = "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
# The prose a reader reads: paragraphs, list items, headings and captions, without code, math,
# cell outputs, tables, citations and navigation (what a translated edition must translate).
PROSE_JS = """() => {
  const main = document.querySelector('main') || document.body;
  return Array.from(main.querySelectorAll('p, li, h1, h2, h3, h4, figcaption, .admonition-title'))
    .filter(e => !e.closest('.cell_output, .output, table, pre, .aelib-languages, .citation, '
                            + 'nav, .bd-toc, .toctree-wrapper, .footnote, .bd-sidebar-secondary'))
    .map(e => { const c = e.cloneNode(true);
                c.querySelectorAll('code, mjx-container, .math, pre, ul, ol').forEach(x => x.remove());
                return c.innerText.trim(); })
    .filter(t => t.length > 0);
}"""
SWITCHER_JS = """() => Array.from(document.querySelectorAll('.aelib-languages a'))
  .map(a => ({lang: a.getAttribute('hreflang'), href: a.href, current: a.hasAttribute('aria-current')}))"""


@lru_cache(maxsize=None)
def _fetch(url: str) -> tuple[int, frozenset[str]]:
    """HTTP status of a page of the site and the ids it defines."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode("utf-8", errors="replace")
            return response.status, frozenset(IDS.findall(body))
    except urllib.error.HTTPError as err:
        return err.code, frozenset()


class Visit:
    """One page loaded in Chromium, with what the checks need."""

    def __init__(self, browser, server: str, rel: str):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r):
            if r.request.url.startswith((server, "data:", "blob:")):
                r.continue_()
            else:
                self.external.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        try:
            response = page.goto(f"{server}/{rel}", wait_until="load")
            self.status = response.status if response else None
            self.math = page.evaluate(MATH_JS)
            self.broken_images = page.evaluate(IMAGES_JS)
            self.text = page.evaluate(VISIBLE_TEXT_JS)
            self.links = page.evaluate(LINKS_JS)
            self.overflow = page.evaluate(OVERFLOW_JS)
            self.shrunk = page.evaluate(SHRUNK_JS)
            self.title = page.title()
            self.prose = page.evaluate(PROSE_JS)
            self.switcher = page.evaluate(SWITCHER_JS)
            self.lang = page.evaluate("() => document.documentElement.lang")
            if rel.startswith("book/") or rel in EDITION_SCREENSHOTS:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / rel.replace("/", "_").replace(".html", ".png")),
                                full_page=True)
        finally:
            context.close()


@pytest.mark.parametrize("rel", PAGES)
def test_page_loads_without_errors_or_network(visit, rel):
    v = visit(rel)
    assert v.status == 200, f"{rel}: HTTP {v.status}"
    assert not v.errors, f"{rel}: JavaScript console errors: {v.errors}"
    assert not v.external, f"{rel}: tried to fetch from other hosts (blocked): {v.external}"


@pytest.mark.parametrize("rel", PAGES)
def test_images_decode(visit, rel):
    v = visit(rel)
    assert not v.broken_images, f"{rel}: images with no size (missing or broken): {v.broken_images}"


@pytest.mark.parametrize("rel", PAGES)
def test_math_is_typeset(visit, rel):
    v = visit(rel)
    assert not v.math["raw"], f"{rel}: math left as TeX: {v.math['raw']}"
    assert v.math["typeset"] >= v.math["math"], f"{rel}: {v.math}"
    leftover = raw_tex(v.text)
    assert not leftover, f"{rel}: TeX left unrendered in the text: {leftover[:5]}"


@pytest.mark.parametrize("rel", PAGES)
def test_nothing_is_wider_than_the_page(visit, rel):
    v = visit(rel)
    assert not v.overflow, f"{rel}: wider than its container at 1280 px: {v.overflow[:8]}"


@pytest.mark.parametrize("rel", PAGES)
def test_figure_text_is_readable(visit, rel):
    v = visit(rel)
    assert not v.shrunk, f"{rel}: figures shrunk below 80% (text under 10 px): {v.shrunk}"


@pytest.mark.parametrize("rel", PAGES)
def test_internal_links_resolve(visit, server, rel):
    v = visit(rel)
    broken = []
    for href in sorted(set(v.links)):
        if not href.startswith(server):
            continue
        target, fragment = urldefrag(href)
        status, ids = _fetch(target)
        if status != 200:
            broken.append(f"{href} (HTTP {status})")
        elif fragment and fragment not in ids:
            broken.append(f"{href} (no element with id '{fragment}')")
    assert not broken, f"{rel}: broken internal links: {broken}"


def test_every_chapter_page_is_checked():
    """Guards the page list itself: the checks above ran on the chapters, not on an empty site."""
    pages = [p for p in PAGES if re.match(r"book/0\d_", p)]
    assert len(pages) >= 6


def test_some_chapter_math_was_typeset(visit):
    assert visit("book/02_pca.html").math["typeset"] > 10


def test_site_root_opens_the_intro(browser, server):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{server}/", wait_until="load")
        page.wait_for_url("**/book/intro.html", timeout=10_000)
        title = page.title()
    finally:
        context.close()
    assert "Autoencoders" in title


def test_search_finds_contractive(search):
    hits = search("", "contractive")
    assert any("05_contractive" in h for h in hits), f"search for 'contractive' found {hits}"
