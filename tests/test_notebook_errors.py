"""A chapter stops with a clear message when the dataset is mistyped or missing.

The notebook's first code cells (imports and `data.load()`) are executed in a
real kernel with a bad AELIB_DATASET; nothing is downloaded: for the missing
dataset, a cell injected first makes torchvision's download fail as it does
offline.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "01_bottleneck.ipynb"

OFFLINE = """
import torchvision.datasets as tvd
def _offline(self):
    raise OSError("no network in this test")
for _cls in (tvd.MNIST, tvd.FashionMNIST, tvd.KMNIST):
    _cls.download = _offline
"""


def run_until_data(env: dict, prelude: str | None = None) -> str:
    nb = nbformat.read(CHAPTER, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    # the set-up cell that calls data.load(): the first cell after the hidden install cell
    assert "find_spec(\"aelib\")" in code_cells[0].source
    cells = code_cells[1:2]
    assert "data.load(" in cells[0].source
    if prelude:
        cells = [nbformat.v4.new_code_cell(prelude)] + cells
    nb.cells = cells
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(CHAPTER.parent)}}).execute()
    except CellExecutionError as err:
        return str(err)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    pytest.fail("the notebook ran on although the dataset was wrong")


def test_mistyped_dataset_stops_the_chapter_with_a_suggestion(tmp_path):
    message = run_until_data({"AELIB_DATASET": "minst", "AELIB_DATA_DIR": str(tmp_path)})
    assert "unknown dataset 'minst'" in message and "Did you mean 'mnist'" in message


def test_missing_explicit_dataset_stops_instead_of_using_digits(tmp_path):
    message = run_until_data({"AELIB_DATASET": "mnist", "AELIB_DATA_DIR": str(tmp_path)}, OFFLINE)
    assert "DatasetNotFoundError" in message and "could not be downloaded" in message
    assert "digits" in message  # the message names the offline alternative
