"""requirements.lock pins every Python package, so a course environment stays the same.

`make venv` installs the lock on CPython 3.11 + Linux x86_64 (CI's interpreter) and falls back
to constraints.txt elsewhere; `make lock` regenerates it. The lock's own content is checked
everywhere: every line an exact pin, the pins of constraints.txt kept, every requirement of
pyproject.toml (base, the book, test and instructor extras, the build backend) satisfied. The
environment running the tests is compared with it where make installs it: every installed
distribution at exactly the locked version, so nothing floats.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
EXTRAS = ("book", "test", "instructor")
# The platform the lock is resolved for (`--python-version 3.11 --python-platform
# x86_64-unknown-linux-gnu` in the Makefile), for evaluating environment markers.
LOCK_MARKERS = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                "os_name": "posix", "python_version": "3.11", "python_full_version": "3.11.0",
                "implementation_name": "cpython", "platform_python_implementation": "CPython"}
# The interpreters make venv installs the lock for: LOCK_PLATFORM in the Makefile.
ON_LOCK_PLATFORM = (platform.python_implementation() == "CPython" and sys.version_info[:2] == (3, 11)
                    and sys.platform == "linux" and platform.machine() == "x86_64")
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _lock() -> dict[str, str]:
    """{PEP 503 name: version} of requirements.lock; every requirement line must be `name==version`."""
    pins: dict[str, str] = {}
    for number, line in enumerate(LOCK.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = PIN.fullmatch(text)
        assert match, (f"requirements.lock:{number}: {text!r} is not an exact pin (name==version); "
                       f"regenerate the lock with `make lock` instead of editing it.")
        name = canonicalize_name(match[1])
        assert name not in pins, f"requirements.lock:{number}: {name} is pinned twice"
        pins[name] = match[2]
    return pins


def _same_release(installed: str, locked: str) -> bool:
    """The installed version is the locked one; a local label is the same release built for
    another device, e.g. the README's CPU-only torch 2.14.1+cpu, which pip takes as torch==2.14.1."""
    have, pin = Version(installed), Version(locked)
    return have == pin or (pin.local is None and Version(have.public) == pin)


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _missing_or_unsatisfied(requirements: list[str], pins: dict[str, str]) -> list[str]:
    wrong = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(LOCK_MARKERS):
            continue  # for another platform
        name = canonicalize_name(req.name)
        if name not in pins:
            wrong.append(f"{text} (not in requirements.lock)")
        elif not req.specifier.contains(pins[name], prereleases=True):
            wrong.append(f"{text} (requirements.lock has {pins[name]})")
    return wrong


def test_lock_pins_torch_and_torchvision_as_constraints_txt_does():
    pins = _lock()
    locked = (pins.get("torch"), pins.get("torchvision"))
    assert locked == ("2.14.1", "0.29.1"), f"requirements.lock pins torch, torchvision {locked}"
    constraints = [line.split("#")[0].strip()
                   for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()]
    wrong = _missing_or_unsatisfied([c for c in constraints if c], pins)
    assert not wrong, f"requirements.lock breaks constraints.txt: {wrong}; run `make lock`."


def test_lock_satisfies_every_requirement_of_pyproject():
    pins = _lock()
    project = _pyproject()
    extras = project["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(extras), f"pyproject.toml lost an extra the lock is made from: {EXTRAS}"
    wanted = [*project["project"]["dependencies"], *(r for e in EXTRAS for r in extras[e])]
    # make venv installs aelib with --no-build-isolation: its build backend comes from the lock
    wanted += project["build-system"]["requires"] + ["pip"]
    wrong = _missing_or_unsatisfied(wanted, pins)
    assert not wrong, f"requirements.lock does not satisfy pyproject.toml: {wrong}; run `make lock`."


def test_every_installed_distribution_is_locked_at_its_version():
    if not ON_LOCK_PLATFORM:
        pytest.skip(f"requirements.lock is for CPython 3.11 on Linux x86_64, this is "
                    f"{platform.python_implementation()} {platform.python_version()} on "
                    f"{platform.system()} {platform.machine()}, where make venv uses constraints.txt")
    venv = ROOT / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve() and os.environ.get("CI") != "true":
        pytest.skip(f"these tests do not run in {venv} (sys.prefix is {sys.prefix}), the "
                    f"environment make venv installs from requirements.lock")
    pins = _lock()
    unlocked, other = [], []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name == "aelib" or "_vendor" in Path(str(dist.locate_file(""))).parts:
            continue  # aelib itself; copies vendored inside setuptools/pip (on sys.path once
            # setuptools is imported), which pip never installs
        if name not in pins:
            unlocked.append(f"{name} {dist.version}")
        elif not _same_release(dist.version, pins[name]):
            other.append(f"{name} {dist.version} (requirements.lock: {pins[name]})")
    assert not unlocked and not other, (
        f"installed but not in requirements.lock: {sorted(unlocked)}; installed at another version: "
        f"{sorted(other)}. Add new dependencies to pyproject.toml and run `make lock`, then rebuild "
        f".venv (rm -rf .venv && make venv).")
