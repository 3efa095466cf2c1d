"""`make book` never serves a stale build.

Sphinx rebuilds only the pages whose source changed, and a chapter's
source does not change when the dataset, mode, seed or device does (nor
when aelib does): without `--all`, a `make book` after `make test` kept the
quick-mode digits pages. The test takes the `jupyter-book build` command of
`make book` (from `make -n`), runs it twice on a one-notebook book whose
page prints `AELIB_SEED`, with seed 1 and then seed 2, and requires the
second page to show seed 2.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
JB = Path(sys.executable).with_name("jupyter-book")


def _book_command() -> list[str]:
    """The options `make book` gives `jupyter-book build .`."""
    dry = subprocess.run(["make", "-n", "book"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, MAKEFLAGS=""), check=True).stdout
    lines = [line for line in dry.splitlines() if "jupyter-book build . " in line]
    assert len(lines) == 1, dry
    return shlex.split(lines[0].split("jupyter-book build . ", 1)[1])


def test_the_books_configuration_executes_every_page_it_reads():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "force"


def test_make_book_rebuilds_when_only_the_environment_changed(tmp_path):
    options = _book_command()
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(yaml.safe_dump({
        "title": "stale-build check", "only_build_toc_files": True,
        "execute": {"execute_notebooks": "force", "timeout": 120},
    }))
    (book / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "page"}))
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Seed"),
        nbformat.v4.new_code_cell("import os\nprint('seed is', os.environ['AELIB_SEED'])"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}),
        book / "page.ipynb")
    shown = []
    for seed in ("1", "2"):
        run = subprocess.run([str(JB), "build", str(book), *options], capture_output=True,
                             text=True, env=dict(os.environ, AELIB_SEED=seed))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        page = (book / "_build" / "html" / "page.html").read_text()
        shown.append(re.search(r"seed is (\d)", page)[1])
    assert shown == ["1", "2"], f"the second build still shows seed {shown[1]}: stale"
