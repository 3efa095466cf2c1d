"""Run-time settings: device, seed, run budget, folders, progress bars.

Every setting a reader may want to change is an environment variable read
here and nowhere else (see the README's table). Importing this module has no
side effects: nothing is seeded and no device is touched until a function is
called. Introduced in chapter 1.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

_VALID_DEVICE_KINDS = ("cpu", "cuda", "mps")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def get_device(name: str | None = None) -> torch.device:
    """Return the device to compute on.

    With `name=None` the `AELIB_DEVICE` environment variable decides; when it
    is unset too, the best available device is used: CUDA, then Apple MPS,
    then CPU. An unknown name or a device that is not available here raises a
    `RuntimeError` that says what is available. Introduced in chapter 1.
    """
    requested = name if name is not None else _env("AELIB_DEVICE")
    if requested is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise RuntimeError(
            f"AELIB_DEVICE / device={requested!r} is not a device name. "
            f"Use one of 'cpu', 'cuda', 'cuda:1', 'mps', or unset it to pick the "
            f"best available ({available_devices()})."
        ) from err
    if device.type not in _VALID_DEVICE_KINDS:
        raise RuntimeError(
            f"device {requested!r} is not supported by aelib; use 'cpu', 'cuda[:N]' "
            f"or 'mps' (available here: {available_devices()})."
        )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {requested!r} was requested but no CUDA GPU is available "
                f"here (available: {available_devices()}). Unset AELIB_DEVICE or set "
                f"AELIB_DEVICE=cpu."
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {requested!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist (cuda:0 ...)."
            )
    if device.type == "mps" and not _mps_available():
        raise RuntimeError(
            f"device 'mps' was requested but Apple MPS is not available here "
            f"(available: {available_devices()}). Unset AELIB_DEVICE or set AELIB_DEVICE=cpu."
        )
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def synchronize(device: torch.device | str) -> None:
    """Wait until the GPU work queued on `device` is done, so that a timer measures it.

    Nothing to wait for on the CPU. Used by benchmarks; the only place besides
    `get_device` that names a GPU back end.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def has_fused_adam(device: torch.device | str) -> bool:
    """Whether PyTorch's fused Adam kernel runs on `device` (CPU and CUDA)."""
    return torch.device(device).type in ("cpu", "cuda")


def available_devices() -> str:
    """Comma-separated list of the device names usable on this machine."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return ", ".join(names)


def get_seed() -> int:
    """The global seed: `AELIB_SEED` (an integer >= 0), default 0."""
    raw = _env("AELIB_SEED")
    if raw is None:
        return 0
    try:
        seed = int(raw)
    except ValueError as err:
        raise ValueError(f"AELIB_SEED={raw!r} is not an integer; set e.g. AELIB_SEED=0.") from err
    if seed < 0:
        raise ValueError(f"AELIB_SEED={seed} is negative; use an integer >= 0.")
    return seed


def seed_everything(seed: int | None = None) -> int:
    """Seed Python, NumPy and PyTorch (all devices) and return the seed used.

    `seed=None` takes `AELIB_SEED` (default 0). Call it once at the top of a
    notebook; aelib never seeds on import. Introduced in chapter 1.
    """
    if seed is None:
        seed = get_seed()
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def is_quick() -> bool:
    """True when `AELIB_QUICK=1`: the smallest honest budget, used by CI."""
    raw = _env("AELIB_QUICK")
    if raw is None:
        return False
    if raw not in ("0", "1"):
        raise ValueError(f"AELIB_QUICK={raw!r}; use 1 for quick mode or 0 (or unset) for full.")
    return raw == "1"


def mode() -> str:
    """'quick' or 'full', the run budget in words (used in cache keys and output)."""
    return "quick" if is_quick() else "full"


def budget(full: T, quick: T) -> T:
    """Pick a setting by run budget: `quick` under `AELIB_QUICK=1`, else `full`.

    Example: `num_epochs = budget(full=10, quick=3)`. Introduced in chapter 1.
    """
    return quick if is_quick() else full


def data_dir() -> Path:
    """Dataset root: `AELIB_DATA_DIR`, default `~/.cache/aelib/data`.

    A relative path is resolved against the current directory; the Makefile
    passes absolute paths because Jupyter kernels start in `book/`.
    """
    raw = _env("AELIB_DATA_DIR")
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "aelib" / "data"
    return path.resolve()


def cache_dir() -> Path:
    """Checkpoint cache: `AELIB_CACHE_DIR`, default `~/.cache/aelib/checkpoints`."""
    raw = _env("AELIB_CACHE_DIR")
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "aelib" / "checkpoints"
    return path.resolve()


def progress_enabled() -> bool:
    """Whether to draw progress bars.

    `AELIB_PROGRESS=0` turns them off and `1` forces them on; unset means on
    in an interactive session (a terminal or a Jupyter kernel).
    """
    raw = _env("AELIB_PROGRESS")
    if raw is not None:
        if raw not in ("0", "1"):
            raise ValueError(f"AELIB_PROGRESS={raw!r}; use 0 (off) or 1 (on).")
        return raw == "1"
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def describe() -> str:
    """One line naming device, seed and budget, printed at the top of chapters."""
    return f"device={get_device()}, seed={get_seed()}, mode={mode()}, torch={torch.__version__}"
