"""The book's editions: English at the site root, Simplified Chinese under zh_CN/, Russian under ru/.

As a Sphinx extension (listed in _config.yml), for every edition:
- a language switcher in each page's header, linking to the same page in the other editions;
- in a translated edition, the sentences that notebooks glue into the text (`aelib.i18n.say`)
  and their displayed phrases are rendered in the page's language from `phrases.po`.

As a script, it builds the translated editions after `jupyter-book build` has built the English
one (make book):
    python book/_ext/editions.py [LANG...]   (default: every language of translations.LANGUAGES)
Jupyter Book 1's command line cannot set Sphinx's `language`, so this calls the same
`jupyter_book.sphinx.build_sphinx` as `jupyter-book build`, on the same _config.yml, with
`language` and `locale_dirs` added. The notebooks are not executed again: the English build
keeps a copy of every executed notebook in _build/executed (glued values included), and the
translated builds take their outputs from those copies (refusing a copy executed from other
code), so every edition shows the numbers of one and the same run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from translations import LANGUAGE_NAMES, LANGUAGES, LOCALES  # noqa: E402

TITLES = {"zh_CN": "自编码器：一本经过检验、可以运行的书",
          "ru": "Автоэнкодеры: проверенная книга, которую можно запустить"}
SEARCH_BAR = {"zh_CN": "搜索本书……", "ru": "Поиск по книге..."}
PHRASE_MIME = "application/vnd.aelib.phrase+json"
GLUE_PREFIX = "application/papermill.record/"


# ---------------------------------------------------------------------------- build (script)
def build(builder: str, outdir: Path, language: str | None = None, quiet: bool = True) -> int:
    """One Sphinx build of the book with Jupyter Book's configuration; returns its status."""
    from jupyter_book.sphinx import build_sphinx

    overrides = {"latex_individualpages": False}
    if builder == "gettext":
        overrides.update(nb_execution_mode="off", gettext_compact=False, gettext_uuid=False,
                         gettext_location=False, gettext_additional_targets=["image"])
        # unexecuted notebooks have no glue values: their references warn, harmlessly here
        overrides["suppress_warnings"] = ["mystnb.unknown_mime_type", "mystnb.glue",
                                          "mystnb.glue_ref"]
    if language:
        overrides.update(language=language, locale_dirs=[str(LOCALES)], gettext_compact=False,
                         html_title=TITLES[language], nb_execution_mode="off",
                         external_toc_path=str(translated_toc(language, outdir.parent)))
    doctrees = ROOT / "_build" / f".doctrees-{language or builder}"
    return build_sphinx(str(ROOT), str(outdir), noconfig=True, path_config=str(ROOT / "_config.yml"),
                        confoverrides=overrides, doctreedir=str(doctrees), builder=builder,
                        force_all=True, freshenv=True, quiet=quiet,
                        warningiserror=builder != "gettext", keep_going=True)


def translated_toc(language: str, folder: Path) -> Path:
    """_toc.yml with its part captions ("Foundations") in `language`. Sphinx translates the
    captions on the root page, but the sidebar is drawn from the table of contents itself;
    the translations are those of the root page's catalogue."""
    import polib
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    root = toc["root"]
    po = polib.pofile(str(LOCALES / language / "LC_MESSAGES" / f"{root}.po"))
    words = {e.msgid: e.msgstr for e in po if e.msgstr}
    for part in toc.get("parts", []):
        if part.get("caption") not in words:
            raise KeyError(f"no {language} translation of the part {part.get('caption')!r} "
                           f"in {root}.po: run make translations")
        part["caption"] = words[part["caption"]]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "_toc.yml"
    path.write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def build_editions(languages: list[str]) -> int:
    """Each edition is built in a process of its own (Sphinx keeps the catalogues it loaded
    for the life of a process: a Russian build after a Chinese one in the same process showed
    Chinese prose) in _build/editions/<lang>/html (MyST-NB writes its notebooks next to the
    output folder), then copied to _build/html/<lang>, beside the English site."""
    import shutil
    import subprocess

    for lang in languages:
        start = time.time()
        out = ROOT / "_build" / "editions" / lang / "html"
        status = subprocess.run([sys.executable, __file__, "--one", lang, str(out)]).returncode
        if status:
            print(f"editions: the {LANGUAGE_NAMES[lang]} ({lang}) edition failed", flush=True)
            return status
        site = ROOT / "_build" / "html" / lang
        shutil.rmtree(site, ignore_errors=True)
        shutil.copytree(out, site)
        print(f"editions: {LANGUAGE_NAMES[lang]} ({lang}) built in {time.time() - start:.0f} s "
              f"at {site / 'book' / 'intro.html'}", flush=True)
    return 0


# ----------------------------------------------------------------- phrases (Sphinx extension)
_catalogues: dict[str, dict[str, str]] = {}


def phrase_catalogue(language: str) -> dict[str, str]:
    """msgid -> msgstr of `phrases.po` for `language` (empty translations left out)."""
    if language not in _catalogues:
        import polib

        path = LOCALES / language / "LC_MESSAGES" / "phrases.po"
        po = polib.pofile(str(path)) if path.exists() else []
        _catalogues[language] = {e.msgid: e.msgstr for e in po if e.msgstr and not e.obsolete}
    return _catalogues[language]


def render(data: dict, language: str) -> str:
    from aelib.i18n import render as render_phrase

    return render_phrase(data, language, phrase_catalogue(language))


def translate_outputs(notebook, language: str) -> None:
    """Re-render every phrase output of `notebook` (glued or displayed) in `language`."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for prefix in ("", GLUE_PREFIX):
                payload = data.get(prefix + PHRASE_MIME)
                if payload is None:
                    continue
                if isinstance(payload, str):
                    payload = json.loads(payload)
                text = render(payload, language)
                if prefix + "text/markdown" in data:
                    data[prefix + "text/markdown"] = text
                if prefix + "text/plain" in data:
                    data[prefix + "text/plain"] = repr(text)


EXECUTED = ROOT / "_build" / "executed"


def executed_copy(path: Path) -> Path:
    return EXECUTED / Path(path).resolve().relative_to(ROOT)


def _code(notebook) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def load_outputs(notebook, path: Path) -> None:
    """Give the unexecuted `notebook` (read from `path`) the outputs of the English build."""
    import nbformat

    copy = executed_copy(path)
    if not copy.exists():
        raise RuntimeError(f"editions: no executed copy of {path.name} at {copy}: build the "
                           "English edition first (make book, or jupyter-book build .)")
    executed = nbformat.read(copy, as_version=4)
    if _code(executed) != _code(notebook):
        raise RuntimeError(f"editions: {copy} was executed from other code than {path}: "
                           "build the English edition again (make book)")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    for cell, done in zip(code, (c for c in executed.cells if c.cell_type == "code")):
        cell.outputs = done.outputs
        cell.execution_count = done.get("execution_count")
    notebook.metadata = executed.metadata


def _install_notebook_hooks(app) -> None:
    """English build: keep a copy of every executed notebook (glued values included) in
    _build/executed. Translated build: read the outputs from those copies instead of
    executing, and word the phrases in the page's language."""
    import copy as copying

    import myst_nb.core.execute.base as base
    import nbformat

    language = None if _page_language(app) == "en" else app.config.language
    # only an English build that executes keeps copies (a gettext or unexecuted build has none)
    keep = (not language and app.builder.format == "html"
            and app.config.nb_execution_mode != "off")
    client = base.NotebookClientBase
    enter = getattr(client.__enter__, "__wrapped_original__", client.__enter__)
    extract = getattr(base.extract_glue_data, "__wrapped_original__", base.extract_glue_data)
    current: dict[str, Path | None] = {"path": None}
    glue_of_page: dict[Path, dict] = {}

    def __enter__(self):
        current["path"] = self.path
        try:
            return enter(self)
        finally:
            current["path"] = None

    def extract_glue_data(notebook, source_map, logger):
        path = current["path"]
        mine = path is not None and Path(path).resolve().is_relative_to(ROOT)
        if mine:
            if language:
                load_outputs(notebook, Path(path))
                translate_outputs(notebook, language)
            elif keep:
                target = executed_copy(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(copying.deepcopy(notebook), target)
        data = extract(notebook, source_map, logger)
        if mine:
            glue_of_page[Path(path).resolve()] = data
        return data

    __enter__.__wrapped_original__ = enter
    extract_glue_data.__wrapped_original__ = extract
    client.__enter__ = __enter__
    base.extract_glue_data = extract_glue_data
    if language:
        _glue_in_translated_text(glue_of_page)


def _glue_in_translated_text(glue_of_page: dict) -> None:
    """Sphinx parses each translated message as a small document of its own, after the
    notebook's parse has closed; MyST-NB's glue roles find no glue data there ("No key ...
    found in glue data for this document"). Serve them the data of the page being read."""
    import myst_nb.ext.glue.roles as roles
    from myst_nb.core.variables import VariableOutput

    retrieve = getattr(roles.retrieve_glue_data, "__wrapped_original__",
                       roles.retrieve_glue_data)

    def retrieve_glue_data(document, key):
        if "nb_renderer" in document:
            return retrieve(document, key)
        env = document.settings.env
        data = glue_of_page.get(Path(env.doc2path(env.docname)).resolve(), {})
        if key not in data:
            return retrieve(document, key)  # raises the usual error
        return VariableOutput(data=data[key]["data"], metadata=data[key].get("metadata", {}),
                              nb_renderer=None, vtype="glue")

    retrieve_glue_data.__wrapped_original__ = retrieve
    roles.retrieve_glue_data = retrieve_glue_data


# ----------------------------------------------------------- language switcher (extension)
def _page_language(app) -> str:
    return app.config.language if app.config.language in LANGUAGES else "en"


def switcher_links(pagename: str, language: str) -> list[tuple[str, str, str, bool]]:
    """(code, name, relative URL, is this page) for every edition of page `pagename`."""
    depth = pagename.count("/")
    up_to_edition = "../" * depth
    up_to_site = up_to_edition + ("../" if language != "en" else "")
    links = []
    for code in ("en",) + LANGUAGES:
        base = up_to_site + ("" if code == "en" else code + "/")
        links.append((code, LANGUAGE_NAMES[code], f"{base}{pagename}.html", code == language))
    return links


def _add_switcher(app, pagename, templatename, context, doctree):
    language = _page_language(app)
    items = "".join(
        f'<a class="aelib-lang{" aelib-lang-current" if current else ""}" hreflang="'
        f'{code.replace("_", "-")}" lang="{code.replace("_", "-")}" href="{url}"'
        f'{" aria-current=" + chr(34) + "page" + chr(34) if current else ""}>{name}</a>'
        for code, name, url, current in switcher_links(pagename, language))
    nav = f'<nav class="aelib-languages" aria-label="Language / 语言 / Язык">{items}</nav>'
    if "body" in context:
        context["body"] = nav + context["body"]


def label(text: str, language: str) -> str:
    """A text of a cell's metadata (see translations.cell_labels) in `language`."""
    catalogue = phrase_catalogue(language)
    if text not in catalogue:
        raise KeyError(f"no {language} translation of {text!r} in phrases.po: "
                       "run make translations and translate it")
    return catalogue[text]


def _translate_cell_labels(app, docname, source):
    """The labels of folded cells ("Show the checks"), figure captions and alt texts in the
    page's language. MyST-NB reads them from the cells' metadata before anything runs, so
    they change in the source."""
    from translations import label_slots

    if _page_language(app) == "en" or not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    notebook = json.loads(source[0])
    for cell in notebook["cells"]:
        for holder, key in label_slots(cell):
            if holder[key].strip():
                holder[key] = label(holder[key], app.config.language)
    source[0] = json.dumps(notebook, ensure_ascii=False)


def _theme_strings(app, config):
    """The book's own theme strings (Jupyter Book sets an English search placeholder)."""
    if config.language in SEARCH_BAR:
        config.html_theme_options = {**config.html_theme_options,
                                     "search_bar_text": SEARCH_BAR[config.language]}


def setup(app):
    app.connect("config-inited", _theme_strings)
    app.connect("source-read", _translate_cell_labels)
    app.connect("builder-inited", _install_notebook_hooks)
    app.connect("html-page-context", _add_switcher)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:  # one edition, in this process (build_editions runs this)
        return build("html", Path(argv[2]), argv[1])
    unknown = [a for a in argv if a not in LANGUAGES]
    if unknown:
        print(f"editions: unknown language {unknown}; the editions are {list(LANGUAGES)}")
        return 2
    return build_editions(argv or list(LANGUAGES))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
