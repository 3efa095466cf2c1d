"""The numbers a notebook glues into its text, read from cell outputs.

myst-nb's `glue(name, value)` emits a display output whose metadata holds
`{"scrapbook": {"name": name, "mime_prefix": ...}}` and whose data holds the
value's `text/plain` under that prefix. The same shape appears in nbval's
outputs during `make test` (recorded when this module is loaded as a pytest
plugin, `pytest -p glue_values`, with tests/ on the path and
AELIB_GLUE_RECORD naming a folder) and in the notebooks the book build
executes (`_build/jupyter_execute/book/<notebook>.glue.json`); tests/test_determinism.py
compares them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

PREFIX = "application/papermill.record/"


def glued(outputs) -> dict[str, str]:
    """`{name: text/plain of the value}` of the glue outputs among `outputs`."""
    values = {}
    for out in outputs or []:
        meta = (out.get("metadata") or {}).get("scrapbook")
        data = out.get("data") or {}
        if meta and "name" in meta:
            text = data.get(meta.get("mime_prefix", PREFIX) + "text/plain")
            if text is not None:
                values[meta["name"]] = text
    return values


def recorded_glue(folder: Path, notebook: str) -> dict[str, str]:
    """What `record` wrote for one notebook."""
    return json.loads((Path(folder) / f"{notebook}.json").read_text())


def build_glue(path: Path) -> dict[str, str]:
    """The values of a `<notebook>.glue.json` that the book build writes next to the
    executed notebook (myst-nb keeps the outputs there, with the mime prefix removed)."""
    return {name: out["data"].get("text/plain", out["data"].get(PREFIX + "text/plain"))
            for name, out in json.loads(Path(path).read_text()).items()}


def record(folder: Path, notebook: str, values: dict[str, str]) -> None:
    """Add `values` to `folder/<notebook>.json` (one file per notebook)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **values}, indent=1, sort_keys=True))


class _GlueRecorder:
    """Writes the values each notebook cell glues, as nbval executes it, to a folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        yield
        outputs = getattr(item, "test_outputs", None)  # nbval's cells keep what they printed
        if outputs:
            values = glued(outputs)
            if values:
                record(self.folder, Path(str(item.fspath)).stem, values)


def pytest_configure(config):
    """As a plugin (`-p glue_values`): record the notebooks' glue in AELIB_GLUE_RECORD."""
    folder = os.environ.get("AELIB_GLUE_RECORD")
    if folder:
        config.pluginmanager.register(_GlueRecorder(Path(folder).resolve()), "aelib-glue-recorder")
