"""Shared fixtures: a fresh checkpoint cache and a clean aelib environment per test."""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

# No test reaches another machine: the offline guard (tests/offline/sitecustomize.py) is
# loaded here for this process and put first on PYTHONPATH for every Jupyter kernel and
# subprocess the tests start (pytest-socket, configured in pyproject.toml, guards the test
# functions of this process as well).
OFFLINE = Path(__file__).resolve().parent / "offline"
os.environ["PYTHONPATH"] = os.pathsep.join([str(OFFLINE), *filter(None, [os.environ.get("PYTHONPATH")])])
if not getattr(sys.modules.get("sitecustomize"), "GUARD_ACTIVE", False):
    _spec = importlib.util.spec_from_file_location("aelib_offline_guard", OFFLINE / "sitecustomize.py")
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))

AELIB_VARS = ("AELIB_DATASET", "AELIB_DATA_DIR", "AELIB_CACHE_DIR", "AELIB_PROGRESS",
              "AELIB_DEVICE", "AELIB_QUICK", "AELIB_SEED")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Unit tests never see the caller's AELIB_* settings, and never share a cache."""
    for name in AELIB_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AELIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AELIB_DATA_DIR", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("AELIB_PROGRESS", "0")
    monkeypatch.setenv("AELIB_DEVICE", "cpu")


def write_fake_mnist(root: Path, n_train: int = 200, n_test: int = 50, folder: str = "MNIST") -> Path:
    """Write a tiny dataset in torchvision's raw MNIST layout (idx files) under root/folder/raw."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    return root


