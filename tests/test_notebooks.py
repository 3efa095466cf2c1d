"""Repository-level checks of the notebooks and the book's configuration."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [], f"{path.name} cell {i} has outputs: clear them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_in_the_toc_and_links_notation(path):
    toc = (ROOT / "_toc.yml").read_text()
    assert f"book/{path.stem}" in toc
    assert "notation" in path.read_text(), f"{path.name} should link the notation page"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_book_config_renders_tables_and_fails_on_errors():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = cfg["sphinx"]["config"]
    # CommonMark (the default) prints plot.markdown_table output as raw pipes
    assert sphinx["nb_render_markdown_format"] == "myst"
    assert sphinx["nb_execution_raise_on_error"] is True
    assert cfg["execute"]["execute_notebooks"] == "force" and cfg["only_build_toc_files"] is True
