import pytest
import torch

from aelib import runtime


def test_default_device_is_best_available(monkeypatch):
    monkeypatch.delenv("AELIB_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if runtime._mps_available() else "cpu")
    assert runtime.get_device().type == expected


def test_env_override_and_argument(monkeypatch):
    monkeypatch.setenv("AELIB_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")
    assert runtime.get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AELIB_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU is available.*AELIB_DEVICE=cpu"):
        runtime.get_device()


def test_unknown_device_is_a_clear_error():
    with pytest.raises(RuntimeError, match="not a device name"):
        runtime.get_device("gpu0")
    with pytest.raises(RuntimeError, match="not supported by aelib"):
        runtime.get_device("meta")


def test_seed_and_budget(monkeypatch):
    assert runtime.get_seed() == 0
    monkeypatch.setenv("AELIB_SEED", "7")
    assert runtime.seed_everything() == 7
    a = torch.rand(3)
    runtime.seed_everything(7)
    assert torch.equal(a, torch.rand(3))
    monkeypatch.setenv("AELIB_SEED", "seven")
    with pytest.raises(ValueError, match="not an integer"):
        runtime.get_seed()
    assert runtime.budget(full=10, quick=2) == 10 and runtime.mode() == "full"
    monkeypatch.setenv("AELIB_QUICK", "1")
    assert runtime.budget(full=10, quick=2) == 2 and runtime.mode() == "quick"
    monkeypatch.setenv("AELIB_QUICK", "yes")
    with pytest.raises(ValueError, match="AELIB_QUICK"):
        runtime.is_quick()


def test_relative_dirs_resolve_against_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AELIB_DATA_DIR", "data")
    assert runtime.data_dir() == tmp_path / "data"
    monkeypatch.setenv("AELIB_PROGRESS", "1")
    assert runtime.progress_enabled()
    monkeypatch.setenv("AELIB_PROGRESS", "0")
    assert not runtime.progress_enabled()


def test_import_has_no_side_effects():
    import subprocess
    import sys

    code = ("import torch, matplotlib; before = torch.initial_seed(); rc = dict(matplotlib.rcParams); "
            "import aelib; assert torch.initial_seed() == before; "
            "assert dict(matplotlib.rcParams) == rc; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_only_the_runtime_module_names_cuda():
    """Code outside aelib/runtime.py never assumes CUDA: devices come from get_device."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"""\.cuda\(|["']cuda["']""")
    sources = {p: p.read_text() for p in [*root.glob("aelib/*.py"), *root.glob("bench/*.py")]}
    for nb in root.glob("book/*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        sources[nb] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    offenders = [f"{p.relative_to(root)}: {m.group(0)}" for p, text in sources.items()
                 if p.name != "runtime.py" for m in pattern.finditer(text)]
    assert not offenders, offenders
    assert pattern.search((root / "aelib" / "runtime.py").read_text())  # the scan can match


def test_synchronize_and_fused_adam_on_cpu():
    runtime.synchronize("cpu")  # nothing queued, nothing to wait for
    assert runtime.has_fused_adam("cpu") and not runtime.has_fused_adam("meta")
