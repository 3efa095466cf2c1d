"""The same seed gives the same numbers; another seed gives other numbers.

Run by `make test` after the book build, like tests/site. The first pytest
pass of `make test` executes every notebook under nbval (quick mode, seed 0,
a fresh model cache) and records what each glues (AELIB_GLUE_RECORD); the
book build then executes every notebook again, seed 0, loading the models
that nbval trained and saved. Every glued value must be identical in the two
runs, except the timings (`time_*`): a reader who loads a saved model sees
the numbers of one who trains it (and whatever a chapter trains outside the
cache, by-hand loops included, runs twice). That training repeats bit for
bit across processes is tested by tests/test_resume.py. Then each notebook
runs a third time with AELIB_SEED=1 (fresh cache, shared by the chapters of
that run, in book order) and must
glue at least one different float: the seed is really used. That run stops
at the first cell that glues a float different from seed 0's, which is all
it has to show (`make seeds` runs every notebook to the end for seeds 0-4).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from glue_values import build_glue, glued, recorded_glue

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "_build" / "glue" / "nbval"
EXECUTED = ROOT / "_build" / "jupyter_execute" / "book"


def _toc_notebooks() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [Path(f).name for f in files if (ROOT / f"{f}.ipynb").exists()]


NOTEBOOKS = _toc_notebooks()


def _runs_present() -> None:
    missing = [n for n in NOTEBOOKS
               if not (RECORDED / f"{n}.json").exists() or not (EXECUTED / f"{n}.glue.json").exists()]
    if missing:
        message = (f"no recorded runs for {missing}: run `make test`, which records the nbval run "
                   f"(AELIB_GLUE_RECORD={RECORDED}) and builds the book first.")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _numbers(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if not k.startswith("time_")}


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "." in text or "e" in text.lower()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_same_seed_same_numbers(name):
    _runs_present()
    first = _numbers(recorded_glue(RECORDED, name))
    second = _numbers(build_glue(EXECUTED / f"{name}.glue.json"))
    assert first, f"{name} glued no numbers"
    assert first.keys() == second.keys()
    different = {k: (first[k], second[k]) for k in first if first[k] != second[k]}
    assert not different, f"{name}: same seed, different numbers {different}"


class _SeedChanged(Exception):
    """Raised from nbclient's cell hook to stop a run once a glued float has changed."""


def _run_until_changed(name: str, floats: dict[str, str]) -> list[str]:
    """Execute book/<name>.ipynb cell by cell; the names of the first cell's glued floats
    that differ from `floats`, or [] if the notebook ends without one."""
    def hook(cell, cell_index, execute_reply):
        if execute_reply["content"].get("status") == "ok":
            changed = [k for k, v in glued(cell.get("outputs")).items()
                       if k in floats and v != floats[k]]
            if changed:
                raise _SeedChanged(changed)

    nb = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", on_cell_executed=hook,
                            resources={"metadata": {"path": str(ROOT / "book")}})
    try:
        client.execute()
    except _SeedChanged as stop:
        return stop.args[0]
    return []


@pytest.fixture(scope="module")
def other_seed_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("seed1-cache")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_another_seed_changes_a_number(name, other_seed_cache, monkeypatch):
    _runs_present()
    for key, value in {"AELIB_SEED": "1", "AELIB_QUICK": "1", "AELIB_DATASET": "digits",
                       "AELIB_DEVICE": "cpu", "AELIB_CACHE_DIR": str(other_seed_cache)}.items():
        monkeypatch.setenv(key, value)
    seed0 = _numbers(recorded_glue(RECORDED, name))
    floats = {k: v for k, v in seed0.items() if _is_float(v)}
    assert floats, f"{name} glues no float"
    assert _run_until_changed(name, floats), f"{name}: seed 1 glued the numbers of seed 0"
