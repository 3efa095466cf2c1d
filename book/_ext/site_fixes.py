"""Sphinx fixes for the book's website (loaded through `local_extensions` in _config.yml).

sphinx-thebe registers its inline configuration script once per `env-before-read-docs`
event, which Jupyter Book 1 emits twice, so every page declared `const THEBE_JS_URL` twice
and the browser logged "Identifier 'THEBE_JS_URL' has already been declared". The book does
not use Thebe (live code needs a kernel server on the network), so its scripts are dropped.
Any other script registered twice is kept once.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", _drop_thebe_and_duplicates, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
