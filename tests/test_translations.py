"""The translated editions cannot drift from the English one.

- Every catalogue (book/locales/<lang>/LC_MESSAGES: one per page, plus phrases.po for the
  sentences runs word) is complete: no untranslated, fuzzy or obsolete message.
- Every translation keeps what its English message must keep: roles and their targets
  ({ref}, {doc}, {cite}, {glue:text}), math, inline code, link targets, a phrase's
  {placeholders}.
- The catalogues hold exactly the English of today: the messages that Sphinx's gettext
  builder extracts from the pages now, and the templates of every say(...) in the notebooks
  and aelib. Changing an English sentence therefore fails this test until `make translations`
  has merged it and its translations are updated, in the same commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import translations  # noqa: E402
from translations import LANGUAGES, catalogues, entry_problems, tokens  # noqa: E402


@pytest.mark.parametrize("msgid, msgstr, problem", [
    ("See {ref}`ch-pca`.", "见 {ref}`ch-pca`。", None),
    ("See {ref}`the PCA chapter <ch-pca>`.", "见{ref}`PCA 一章 <ch-pca>`。", None),
    ("See {ref}`the PCA chapter <ch-pca>`.", "见{ref}`PCA 一章 <ch-vae>`。", "lost"),
    ("It is {glue:text}`x:.2f` dB.", "Это {glue:text}`x:.1f` dB.", "lost"),
    ("With $k = 2$ and `fit`.", "При $k=2$ и `fit`.", "lost"),
    ("With $k = 2$.", "При $k = 2$ и $k = 2$.", "added"),
    ("[docs](https://x.org/a)", "[文档](https://x.org/b)", "lost"),
    ("{n} of {m} units", "{n} из {m} нейронов", None),
    ("{n} of {m} units", "{n} нейронов", "lost"),
    ("A sentence.", "", "untranslated"),
    ("3. Denoising autoencoders", "3. 去噪自编码器", "starts like a Markdown list"),
    ("3. Denoising autoencoders", "3\\. 去噪自编码器", None),
])
def test_a_translation_keeps_roles_math_code_links_and_placeholders(msgid, msgstr, problem):
    problems = entry_problems(msgid, msgstr, phrase="{n}" in msgid)
    if problem is None:
        assert problems == []
    else:
        assert problems and problems[0].startswith(problem), problems


def test_tokens_name_what_must_be_kept():
    found = tokens("The {cite}`a2008` model, $x^2$, `fit()` and [b](https://b.org) "
                   "{ref}`text <label>`", phrase=False)
    assert set(found) == {"{cite}`a2008`", "math $x^2$", "code fit()", "link https://b.org",
                          "{ref}`label`"}


@pytest.mark.parametrize("path", catalogues(), ids=lambda p: str(p.relative_to(translations.LOCALES)).replace("/LC_MESSAGES", ""))
def test_every_catalogue_is_complete_and_faithful(path):
    problems = translations.catalogue_problems(path)
    assert not problems, "\n".join(problems[:20]) + (
        "\n(run `python book/_ext/translations.py status`; translate with its show/fill)")


def test_every_language_has_a_catalogue_per_page():
    pages = sorted(p.stem for p in (ROOT / "book").glob("*.ipynb")) + sorted(
        p.stem for p in (ROOT / "book").glob("*.md"))
    for lang in LANGUAGES:
        have = {p.stem for p in catalogues(lang)}
        assert set(pages) | {"phrases"} <= have, (lang, set(pages) - have)


def test_phrase_catalogues_hold_exactly_the_phrases_of_the_code():
    templates = set(translations.phrase_templates())
    for lang in LANGUAGES:
        po = polib.pofile(str(translations.LOCALES / lang / "LC_MESSAGES" / "phrases.po"))
        have = {e.msgid for e in po if not e.obsolete}
        assert have == templates, (
            f"{lang}/phrases.po differs from the say(...) templates of the code: missing "
            f"{sorted(templates - have)[:5]}, no longer used {sorted(have - templates)[:5]}; "
            "run make translations and translate what it lists")


def test_catalogues_hold_exactly_the_english_of_the_pages(tmp_path):
    """Sphinx's gettext builder on today's pages gives the messages of the catalogues."""
    from editions import build

    assert build("gettext", tmp_path / "gettext") == 0
    stale = []
    for pot in sorted((tmp_path / "gettext").rglob("*.pot")):
        rel = pot.relative_to(tmp_path / "gettext").with_suffix(".po")
        english = {e.msgid for e in polib.pofile(str(pot))}
        for lang in LANGUAGES:
            po = translations.LOCALES / lang / "LC_MESSAGES" / rel
            have = {e.msgid for e in polib.pofile(str(po)) if not e.obsolete} if po.exists() else set()
            if have != english:
                stale.append(f"{lang}/{rel}: {len(english - have)} new English messages "
                             f"(e.g. {sorted(english - have)[:1]}), "
                             f"{len(have - english)} gone")
    assert not stale, ("catalogues behind the English pages; run `make translations` and "
                       "translate what it lists:\n" + "\n".join(stale))


def test_every_folded_cell_has_prompts_that_can_be_translated():
    """A folded cell without its own prompts shows MyST-NB's "Show code cell source", which no
    catalogue holds, in English on every edition."""
    import json

    bare = []
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            tags = set(cell.get("metadata", {}).get("tags", []))
            prompts = cell.get("metadata", {}).get("mystnb", {})
            if tags & {"hide-input", "hide-output", "hide-cell"} and not (
                    "code_prompt_show" in prompts and "code_prompt_hide" in prompts):
                bare.append(f"{nb.name} cell {cell.get('id')}")
    assert not bare, f"folded cells without code_prompt_show/code_prompt_hide: {bare}"


def test_editions_word_glued_and_displayed_phrases_in_the_page_language():
    import nbformat
    from IPython.core.formatters import format_display_data

    import editions
    from aelib import i18n

    phrase = i18n.say("{pct} above", pct="2.5%")
    note = i18n.MarkdownPhrase(i18n.say("quick"))
    glued, _ = format_display_data(phrase)
    shown, _ = format_display_data(note)
    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={editions.GLUE_PREFIX + k: v
                                                     for k, v in glued.items()},
                               metadata={"scrapbook": {"name": "gap"}}),
        nbformat.v4.new_output("display_data", data=shown)])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    editions.translate_outputs(notebook, "ru")
    ru = editions.phrase_catalogue("ru")
    glued_ru = cell.outputs[0]["data"][editions.GLUE_PREFIX + "text/plain"]
    assert glued_ru == repr(ru["{pct} above"].replace("{pct}", "2.5%")) != repr("2.5% above")
    assert cell.outputs[1]["data"]["text/markdown"] == ru["quick"]


@pytest.mark.parametrize("page, language, expected", [
    ("book/03_denoising", "en", ["book/03_denoising.html", "zh_CN/book/03_denoising.html",
                                 "ru/book/03_denoising.html"]),
    ("book/03_denoising", "ru", ["../book/03_denoising.html", "../zh_CN/book/03_denoising.html",
                                 "../ru/book/03_denoising.html"]),
    ("search", "zh_CN", ["../search.html", "../zh_CN/search.html", "../ru/search.html"]),
])
def test_switcher_links_lead_to_the_same_page(page, language, expected):
    import editions

    links = editions.switcher_links(page, language)
    depth = "../" * page.count("/")
    assert [url for _, _, url, _ in links] == [depth + e for e in expected]
    assert [current for *_, current in links] == [code == language for code, *_ in links]
