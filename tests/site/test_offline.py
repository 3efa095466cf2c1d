"""The built site reads well with no network: no page or stylesheet fetches anything from
another host (scripts, stylesheets, fonts, images, CSS url(...))."""

from __future__ import annotations

import re

import pytest

from sitecheck import css_references, external_references, is_external, raw_tex, site_pages


@pytest.mark.parametrize("html, expected", [
    ('<script src="https://cdn.example.org/x.js"></script>', ["https://cdn.example.org/x.js"]),
    ("<script src='//cdn.example.org/x.js'></script>", ["//cdn.example.org/x.js"]),
    ('<link rel="stylesheet" href="https://fonts.example.org/a.css">', ["https://fonts.example.org/a.css"]),
    ('<link href="https://fonts.example.org/a.css" rel="stylesheet">', ["https://fonts.example.org/a.css"]),
    ("<link href=//x.org/f.woff2 rel=preload as=font>", ["//x.org/f.woff2"]),
    ('<div style="background: url(\'https://x.org/a.png\')"></div>', ["https://x.org/a.png"]),
    ('<style>@font-face { src: url("//x.org/f.woff") }</style>', ["//x.org/f.woff"]),
    ("<style>@import 'https://x.org/a.css';</style>", ["https://x.org/a.css"]),
    ('<img srcset="a.png 1x, https://x.org/b.png 2x">', ["https://x.org/b.png"]),
    # allowed: local files, links a reader clicks, non-loading relations, data URLs
    ('<script src="_static/x.js"></script><link rel="stylesheet" href="../_static/a.css">', []),
    ('<a href="https://github.com/">repo</a><link rel="canonical" href="https://x.org/">', []),
    ('<div style="background: url(data:image/png;base64,AAAA)"></div>', []),
])
def test_scanner_finds_external_references(html, expected):
    assert external_references(html) == expected


@pytest.mark.parametrize("text, raw", [
    ("Erratum 4: the decoder uses W^T h, the transposed weights", True),  # an admonition title
    ("the score is $\\|x - \\hat x\\|^2 of", True),                       # a bullet cut the formula
    ("the sum $a + b$ over", True),
    ("over the pixels x_{i} of", True),
    ("with \\mathcal N(0, I) as prior", True),
    ("e^{-x} falls", True),
    ("A plain sentence (with brackets), 5^2 = 25, and a price of $5.", False),
    ("a path a/b\\c and a snake_case_name", False),
])
def test_raw_tex_finder(text, raw):
    assert bool(raw_tex(text)) == raw, raw_tex(text)


def test_css_url_forms():
    css = """a{b:url("https://x.org/1")} c{d:url('//x.org/2')} e{f:url(https://x.org/3)} g{h:url(local.woff)}"""
    assert [r for r in css_references(css) if is_external(r)] == [
        "https://x.org/1", "//x.org/2", "https://x.org/3"]


def test_no_page_references_an_external_resource(site):
    pages = [site / "index.html", *site_pages(site)]
    assert len(pages) >= 10, f"only {len(pages)} pages in {site}"
    bad = {str(p.relative_to(site)): refs for p in pages
           if (refs := external_references(p.read_text(encoding="utf-8")))}
    assert not bad, f"pages that need the network to render: {bad}"


def test_no_stylesheet_references_an_external_resource(site):
    sheets = [p for p in site.rglob("*.css") if p.relative_to(site).parts[0] != "mathjax"]
    assert sheets
    bad = {str(p.relative_to(site)): refs for p in sheets
           if (refs := [r for r in css_references(p.read_text(encoding="utf-8", errors="replace"))
                        if is_external(r)])}
    assert not bad, f"stylesheets that fetch from other hosts: {bad}"


def test_math_is_served_by_the_site(site):
    assert (site / "mathjax" / "tex-chtml.js").is_file(), "run `make mathjax` before building"
    intro = (site / "book" / "intro.html").read_text(encoding="utf-8")
    assert "mathjax/tex-chtml.js" in intro


def test_figures_are_numbered_per_chapter(site):
    """Fig. 6.1, 6.2, ... on chapter 6's page; the pages of chapter 7 count on in reading order."""
    import yaml

    toc = yaml.safe_load((site.parents[1] / "_toc.yml").read_text())
    pages = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    seen: dict[int, list[int]] = {}
    for page in pages:
        m = re.match(r"book/(\d\d)_", page)
        if not m:
            continue
        html = (site / f"{page}.html").read_text()
        numbers = re.findall(r'class="caption-number">Fig\. (\d+)\.(\d+)', html)
        assert numbers, f"{page}: no numbered figure"
        for chapter, n in numbers:
            assert int(chapter) == int(m.group(1)), (page, chapter, n)
            seen.setdefault(int(chapter), []).append(int(n))
    for chapter, numbers in seen.items():
        assert numbers == list(range(1, len(numbers) + 1)), (chapter, numbers)
