"""bench/book_time.py: the runtime table it writes (the timing itself is a benchmark, not a test)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("book_time", ROOT / "bench" / "book_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chapters_follow_the_toc():
    names = _module().chapters()
    assert names[0] == "01_bottleneck" and len(names) == len(list((ROOT / "book").glob("*.ipynb")))


def test_table_has_a_row_per_chapter_and_totals_last():
    bt = _module()
    stamp = {"date": "2026-01-01", "machine": "test CPU, 2 cores", "torch": "2.x", "threads": 2}
    results = {"modes": {
        "quick": {"seconds": {"a": 30.0, "b": 100.0}, "peak_rss_mib": {"a": 700.0, "b": 1500.0},
                  **stamp},
        "full-digits": {"seconds": {"a": 200.0}, **stamp},
    }}
    table = bt.render(results, ["a", "b"])
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows[2] == "| {doc}`a` | 30 s | 3.3 min |"
    assert rows[3] == "| {doc}`b` | 1.7 min | not run |"
    assert rows[-2] == "| largest kernel, peak memory | 1.5 GiB | not measured |"
    assert rows[-1] == "| **whole book** | **2.2 min** | **incomplete** |"
    assert "bench/book_time.py" in table and "test CPU, 2 cores" in table


def test_peak_memory_cell_reports_mib(capsys):
    exec(_module().PEAK_RSS_CELL, {})
    label, value = capsys.readouterr().out.split()
    assert label == "AELIB_PEAK_RSS_MIB" and 10 < float(value) < 64 * 1024  # this process: MiB, not KiB


def test_each_mnist_mode_finds_the_data_with_its_number_of_images(tmp_path, monkeypatch):
    bt = _module()
    for name, count in (("small", 8000), ("complete", 60000)):
        raw = tmp_path / name / "MNIST" / "raw"
        raw.mkdir(parents=True)
        (raw / "train-images-idx3-ubyte").write_bytes((2051).to_bytes(4, "big") + count.to_bytes(4, "big"))
    monkeypatch.setattr(bt, "SHARED", tmp_path / "nowhere")
    monkeypatch.setenv("AELIB_DATA_DIR", str(tmp_path / "complete"))
    assert bt.mnist_dir("full-mnist-60k") == (tmp_path / "complete").resolve()
    assert bt.mnist_dir("full-mnist") is None  # AELIB_DATA_DIR holds the complete MNIST
    assert bt.mnist_dir("full-mnist", str(tmp_path / "small")) == tmp_path / "small"
    assert bt.mnist_dir("full-mnist-60k", str(tmp_path / "small")) is None  # wrong size: refused
    assert bt.mnist_train_count(tmp_path / "nowhere") is None
    assert bt.HEADINGS["full-mnist-60k"] == "full, MNIST 60k"
