"""The translated editions (Simplified Chinese under zh_CN/, Russian under ru/), read in
Chromium like the English one (test_browser.py runs every check there on their pages too):
each page exists in every edition, its language switcher leads to the same page in the
others, its prose is in its language (no English paragraph), and the edition's search finds
a word of its language."""

from __future__ import annotations

import re

import pytest

from sitecheck import EDITIONS, SITE, site_pages

ENGLISH = [str(p.relative_to(SITE)) for p in site_pages(SITE)
           if p.relative_to(SITE).parts[0] not in EDITIONS] if SITE.is_dir() else []
SCRIPT = {"zh_CN": re.compile(r"[\u4e00-\u9fff]"), "ru": re.compile(r"[А-Яа-яЁё]")}
HTML_LANG = {"en": "en", "zh_CN": "zh-CN", "ru": "ru"}
# a paragraph of the translated prose is English when it has none of the edition's script
# and more Latin words than a name, a unit or a code-like fragment would have
MAX_LATIN_WORDS = 6


def english_paragraphs(prose: list[str], lang: str) -> list[str]:
    return [t for t in prose if not SCRIPT[lang].search(t)
            and len(re.findall(r"[A-Za-z]{2,}", t)) > MAX_LATIN_WORDS]


def test_english_paragraph_finder():
    assert english_paragraphs(["自编码器 learns to copy its input through a bottleneck"], "zh_CN") == []
    assert english_paragraphs(["VAE, MSE of decoded mean", "Vincent et al. (2008)"], "ru") == []
    assert english_paragraphs(["A plain autoencoder learns to copy its input."], "ru")


@pytest.fixture(scope="module")
def site_with_editions(site):
    missing = [lang for lang in EDITIONS if not (site / lang / "book" / "intro.html").is_file()]
    assert not missing, (f"no {missing} edition in {site}: make book and make test build "
                         "every edition (book/_ext/editions.py)")
    return site


@pytest.mark.parametrize("lang", EDITIONS)
def test_every_page_exists_in_every_edition(site_with_editions, lang):
    missing = [rel for rel in ENGLISH if not (site_with_editions / lang / rel).is_file()]
    assert not missing, f"{lang}: pages of the English edition missing: {missing}"


@pytest.mark.parametrize("rel", [f"{lang}/{rel}" for lang in ("",) + EDITIONS
                                 for rel in ("book/intro.html", "book/05_contractive.html")])
def test_switcher_leads_to_the_same_page_in_every_language(visit, server, rel):
    rel = rel.lstrip("/")
    v = visit(rel)
    lang = rel.split("/")[0] if rel.split("/")[0] in EDITIONS else "en"
    page = rel[len(lang) + 1:] if lang != "en" else rel
    links = {s["lang"]: s for s in v.switcher}
    assert set(links) == {"en", "zh-CN", "ru"}, f"{rel}: switcher {v.switcher}"
    for code, link in links.items():
        edition = {"en": "", "zh-CN": "zh_CN/", "ru": "ru/"}[code]
        assert link["href"] == f"{server}/{edition}{page}", (rel, link)
        assert link["current"] == (code == HTML_LANG[lang]), (rel, link)
    assert v.lang == HTML_LANG[lang], f"{rel}: <html lang={v.lang!r}>"


@pytest.mark.parametrize("lang", EDITIONS)
def test_translated_pages_are_in_their_language(site_with_editions, visit, lang):
    pages = [rel for rel in ENGLISH if rel.startswith("book/")]
    problems = {}
    for rel in pages:
        v = visit(f"{lang}/{rel}")
        in_script = [t for t in v.prose if SCRIPT[lang].search(t)]
        english = english_paragraphs(v.prose, lang)
        if not in_script or english:
            problems[rel] = english[:3] or ["no text in the edition's script"]
    assert not problems, f"{lang}: English prose on translated pages: {problems}"


@pytest.mark.parametrize("lang, word, page", [("zh_CN", "收缩", "05_contractive"),
                                              ("ru", "сжимающий", "05_contractive")])
def test_edition_search_finds_a_word_of_its_language(site_with_editions, search, lang, word, page):
    hits = search(lang, word)
    assert any(page in h for h in hits), f"{lang} search for {word!r} found {hits}"
