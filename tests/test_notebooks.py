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


def _config():
    import yaml

    return yaml.safe_load((ROOT / "_config.yml").read_text())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_aelib_from_the_books_repository(path):
    """A notebook opened alone (Colab, Binder) installs aelib from the URL the launch buttons use."""
    import re

    url = _config()["repository"]["url"].rstrip("/")
    first = json.loads(path.read_text())["cells"][0]
    source = "".join(first["source"])
    assert first["cell_type"] == "code" and 'find_spec("aelib") is None' in source, \
        f"{path.name}: the first cell must install aelib when it is not importable"
    assert "--no-deps" in source, f"{path.name}: the install must keep the reader's own torch"
    assert re.findall(r'"git\+([^"]+)"', source) == [url], \
        f"{path.name}: the install cell and _config.yml's repository.url ({url}) differ"
    assert "remove-cell" in first["metadata"].get("tags", [])


def test_launch_buttons_and_offline_math_are_configured():
    cfg = _config()
    assert cfg["repository"]["url"].startswith("https://github.com/")
    assert cfg["launch_buttons"]["colab_url"] and cfg["launch_buttons"]["binderhub_url"]
    assert cfg["html"]["use_download_button"] is True
    sphinx = cfg["sphinx"]["config"]
    assert sphinx["mathjax_path"] == "../mathjax/tex-chtml.js"      # resolved against _static/
    assert sphinx["html_extra_path"] == [".mathjax"]                # made by `make mathjax`
    assert sphinx["nb_ipywidgets_js"] == {} and sphinx["html_context"]["default_mode"] == "light"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/mathjax"]["version"].startswith("3."), \
        "MathJax 4 has no es5/ bundle: keep mathjax@3"


@pytest.mark.parametrize("name", ["ci.yml", "book.yml"])
def test_workflows_are_valid(name):
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    assert flow["name"] and flow["jobs"]
    on = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert on and "push" in on
    steps = [s for job in flow["jobs"].values() for s in job.get("steps", [])]
    runs = " ".join(s.get("run", "") for s in steps)
    if name == "ci.yml":
        assert ".ci/run" in runs
    else:
        assert "make book" in runs and flow["jobs"]["build"]["env"]["AELIB_DATASET"] == "mnist"
        assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in steps)


def test_intro_includes_the_generated_runtime_table():
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "_generated/runtime.md" in intro
    table = (ROOT / "book" / "_generated" / "runtime.md").read_text()
    assert "bench/book_time.py" in table, "the runtime table is generated, never typed by hand"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_and_alt_text(path):
    """A cell that draws a figure (`fig = ...`) carries myst-nb metadata: a caption and a
    name for the website's figure, and alt text for readers who cannot see it."""
    import re

    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code" or not re.search(r"^\s*fig\b[^=\n]*=", "".join(cell["source"]), re.M):
            continue
        meta = cell["metadata"].get("mystnb", {})
        figure, image = meta.get("figure", {}), meta.get("image", {})
        assert len(figure.get("caption", "")) > 20 and figure.get("name", "").startswith("fig-"), \
            f"{path.name} cell {cell['id']}: figure without caption/name (metadata mystnb.figure)"
        assert len(image.get("alt", "")) > 20, \
            f"{path.name} cell {cell['id']}: figure without alt text (metadata mystnb.image.alt)"
