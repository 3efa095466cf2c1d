"""What each chapter costs: wall time and peak memory of every notebook, quick and full mode.

Executes each notebook of the book in table-of-contents order in a Jupyter kernel, once
per mode. Each mode starts from a fresh, empty AELIB_CACHE_DIR, so no model comes from an
earlier run: the total is what building the whole book from scratch costs, and a chapter
reuses only the models that the chapters before it trained in the same run (as in
`make book`). Modes:

* ``quick``        AELIB_QUICK=1 on the digits (what CI runs);
* ``full-digits``  the full budget on the digits;
* ``full-mnist``   the full budget on the MNIST stand-in (8,000 training and 2,000 test
  images, ../shared/data/mnist-10k);
* ``full-mnist-60k`` the full budget on the complete MNIST (60,000 / 10,000,
  ../shared/data/mnist), the run the website shows.

Each MNIST mode finds its data by its number of training images: in --mnist-10k /
--mnist-60k when given, else in AELIB_DATA_DIR, else in ../shared/data/ beside the
repository; a mode whose data is nowhere is skipped (or an error when asked for).

Each kernel also reports its peak resident memory (`ru_maxrss`) at the end, so the table
says how much memory a laptop needs: the largest kernel of each mode is shown above the
totals. Prints the table with the totals last and writes it to book/_generated/runtime.md (with
the machine, its core count and the date), which the intro page includes. Results are
kept in book/_generated/runtime.json, so a run of some modes or chapters updates only
those cells. Never typed by hand; run with `make book-time` or

    .venv/bin/python bench/book_time.py [--modes quick,full-digits] [--only 01_bottleneck]
        [--keep DIR]   # also keep the executed notebooks, to read the pages of that run

A benchmark, not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "_generated"
MODES = {
    "quick": {"AELIB_QUICK": "1", "AELIB_DATASET": "digits"},
    "full-digits": {"AELIB_QUICK": "0", "AELIB_DATASET": "digits"},
    "full-mnist": {"AELIB_QUICK": "0", "AELIB_DATASET": "mnist"},
    "full-mnist-60k": {"AELIB_QUICK": "0", "AELIB_DATASET": "mnist"},
}
HEADINGS = {"quick": "quick, digits", "full-digits": "full, digits",
            "full-mnist": "full, MNIST 10k", "full-mnist-60k": "full, MNIST 60k"}
#: Training images of the MNIST each mode runs on (read from the idx file's header).
MNIST_TRAIN = {"full-mnist": 8000, "full-mnist-60k": 60000}
SHARED = ROOT.parent / "shared" / "data"


def chapters() -> list[str]:
    """Notebook names in the order of _toc.yml."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [Path(f).name for f in files if (ROOT / f"{f}.ipynb").is_file()]


def mnist_train_count(root: Path) -> int | None:
    """Training images of the MNIST under `root` (a torchvision root holding MNIST/raw/), or None."""
    path = Path(root) / "MNIST" / "raw" / "train-images-idx3-ubyte"
    try:
        with open(path, "rb") as fh:
            header = fh.read(8)
    except OSError:
        return None
    return int.from_bytes(header[4:8], "big") if len(header) == 8 else None


def mnist_dir(mode: str, given: str | None = None) -> Path | None:
    """The data folder for an MNIST mode: `given`, AELIB_DATA_DIR or ../shared/data/, whichever
    holds an MNIST with the mode's number of training images; None when none does."""
    wanted = MNIST_TRAIN[mode]
    if given is not None:
        return Path(given) if mnist_train_count(Path(given)) == wanted else None
    candidates = [os.environ.get("AELIB_DATA_DIR"), SHARED / "mnist-10k", SHARED / "mnist"]
    for folder in candidates:
        if folder and mnist_train_count(Path(folder)) == wanted:
            return Path(folder).resolve()
    return None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


#: Appended to each notebook: the kernel's peak resident memory in MiB (-1 where unknown).
PEAK_RSS_CELL = """
import sys
try:
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    print("AELIB_PEAK_RSS_MIB", peak / (2**20 if sys.platform == "darwin" else 2**10))
except ImportError:  # Windows
    print("AELIB_PEAK_RSS_MIB", -1)
"""


def run_notebook(name: str, env: dict[str, str],
                 keep: Path | None = None) -> tuple[float, float | None]:
    """(seconds, peak MiB) of book/<name>.ipynb in a fresh kernel with `env`.

    The executed notebook is written to `keep`/<name>.ipynb when `keep` is given (so that a
    timing run can also be read), else discarded. A failing cell raises after the write."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_RSS_CELL))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=None, kernel_name="python3",
                           resources={"metadata": {"path": str(ROOT / "book")}}).execute()
        finally:
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, keep / f"{name}.ipynb")
        seconds = time.perf_counter() - start
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        peak = float(text.split("AELIB_PEAK_RSS_MIB")[1].split()[0])
        return seconds, (peak if peak >= 0 else None)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def fmt_mib(mib: float | None) -> str:
    if mib is None:
        return "not measured"
    return f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.1f} GiB"


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "not run"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def render(results: dict, names: list[str]) -> str:
    modes = [m for m in MODES if m in results["modes"]]
    lines = ["<!-- Generated by bench/book_time.py; do not edit by hand. -->", "",
             "| chapter | " + " | ".join(HEADINGS[m] for m in modes) + " |",
             "| --- | " + " | ".join("---:" for _ in modes) + " |"]
    for name in names:
        cells = [fmt(results["modes"][m]["seconds"].get(name)) for m in modes]
        lines.append(f"| {{doc}}`{name}` | " + " | ".join(cells) + " |")
    peaks = [max(results["modes"][m].get("peak_rss_mib", {}).values(), default=None) for m in modes]
    lines.append("| largest kernel, peak memory | " + " | ".join(fmt_mib(p) for p in peaks) + " |")
    totals = []
    for m in modes:
        times = [results["modes"][m]["seconds"].get(n) for n in names]
        totals.append(fmt(sum(times)) if None not in times else "incomplete")
    lines.append("| **whole book** | " + " | ".join(f"**{t}**" for t in totals) + " |")
    lines.append("")
    for m in modes:
        info = results["modes"][m]
        lines.append(f"- *{HEADINGS[m]}*: measured {info['date']} on {info['machine']}, "
                     f"torch {info['torch']} using {info['threads']} "
                     f"thread{'' if info['threads'] == 1 else 's'}, the chapters "
                     f"in book order from an empty model cache.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=None,
                        help="comma-separated subset of " + ", ".join(MODES)
                        + " (default: all whose data is on disk)")
    parser.add_argument("--only", default=None, help="comma-separated notebook names")
    parser.add_argument("--mnist-10k", default=None, help="data root of the MNIST stand-in")
    parser.add_argument("--mnist-60k", default=None, help="data root of the complete MNIST")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="also write each executed notebook to DIR/<mode>/ (to read the pages)")
    args = parser.parse_args(argv)
    data = {"full-mnist": mnist_dir("full-mnist", args.mnist_10k),
            "full-mnist-60k": mnist_dir("full-mnist-60k", args.mnist_60k)}

    names = chapters()
    todo = names if args.only is None else args.only.split(",")
    unknown = sorted(set(todo) - set(names))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; valid: {', '.join(names)}")
    modes = args.modes.split(",") if args.modes else [
        m for m in MODES if m not in data or data[m] is not None]
    bad = sorted(set(modes) - set(MODES))
    if bad:
        parser.error(f"unknown modes {bad}; valid: {', '.join(MODES)}")
    for mode in modes:
        if mode in data and data[mode] is None:
            parser.error(f"{mode} needs an MNIST with {MNIST_TRAIN[mode]:,} training images on "
                         f"disk: pass --{'mnist-10k' if mode == 'full-mnist' else 'mnist-60k'} "
                         f"DIR (a folder holding MNIST/raw/), or set AELIB_DATA_DIR to it")

    import torch

    store = OUT / "runtime.json"
    results = json.loads(store.read_text()) if store.is_file() else {"modes": {}}
    for mode in modes:
        info = results["modes"].setdefault(mode, {"seconds": {}})
        info.update(date=dt.date.today().isoformat(), machine=machine(),
                    torch=torch.__version__, threads=torch.get_num_threads())
        with tempfile.TemporaryDirectory(prefix="aelib-book-time-") as cache:
            env = dict(MODES[mode], AELIB_CACHE_DIR=cache, AELIB_DEVICE="cpu",
                       AELIB_PROGRESS="0")
            if mode in data:
                env["AELIB_DATA_DIR"] = str(data[mode])
            for name in todo:
                keep = Path(args.keep) / mode if args.keep else None
                seconds, peak = run_notebook(name, env, keep)
                info["seconds"][name] = round(seconds, 1)
                if peak is not None:
                    info.setdefault("peak_rss_mib", {})[name] = round(peak, 1)
                print(f"{mode:12s} {name:22s} {fmt(seconds):>9s} {fmt_mib(peak):>12s}", flush=True)
                OUT.mkdir(parents=True, exist_ok=True)
                store.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    table = render(results, names)
    (OUT / "runtime.md").write_text(table)
    print()
    print(table)
    totals = {m: [results["modes"][m]["seconds"].get(n) for n in names]
              for m in MODES if m in results["modes"]}
    print("totals: " + ", ".join(f"{HEADINGS[m]} {fmt(sum(t)) if None not in t else 'incomplete'}"
                                 for m, t in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
