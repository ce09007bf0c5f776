"""Dependencies come from a hashed lock that agrees with ``pyproject.toml`` (audit F11).

The audited system had open lower bounds, so two installs on two dates differed. Here
``uv.lock`` pins every package with hashes, ``make install`` runs ``uv sync --locked``
(which refuses a stale lock), and these tests fail when ``pyproject.toml`` and the lock
disagree or the environment the tests run in is not exactly the lock. ``uv`` is the
hash-pinned one that ``make install`` bootstraps into ``.tools``. A matching lock is
checked ``--offline``: it must need no network. Telling how a drifted lock is wrong
takes a resolution, and so the package index (``make install`` fetches wheels, not the
index pages a resolution reads): that check runs online.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"


def _uv(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if not UV.is_file():
        pytest.fail(f"{UV} is missing: run 'make install' first")
    return subprocess.run(
        [str(UV), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_lock_agrees_with_pyproject() -> None:
    done = _uv("lock", "--check", "--offline", cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_lock_check_fails_when_pyproject_changes_without_the_lock(tmp_path: Path) -> None:
    """The same check on a copy whose pyproject.toml lost a dependency the lock still has."""
    shutil.copy(ROOT / "uv.lock", tmp_path / "uv.lock")
    pyproject = (ROOT / "pyproject.toml").read_text()
    dependency = next(
        line for line in pyproject.splitlines() if line.strip().startswith('"redis==')
    )
    (tmp_path / "pyproject.toml").write_text(pyproject.replace(dependency + "\n", ""))
    done = _uv("lock", "--check", cwd=tmp_path)
    assert done.returncode != 0
    assert "needs to be updated" in done.stderr, done.stderr


def test_the_environment_under_test_is_exactly_the_lock() -> None:
    done = _uv(
        "sync",
        "--locked",
        "--check",
        "--offline",
        cwd=ROOT,
        env={"UV_PROJECT_ENVIRONMENT": sys.prefix},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_locked_package_is_pinned_with_hashes() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    registry = [p for p in lock["package"] if "registry" in p.get("source", {})]
    assert len(registry) > 50
    for package in registry:
        assert package.get("version"), package["name"]
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, package["name"]
        for artifact in files:
            assert artifact.get("hash", "").startswith("sha256:"), (package["name"], artifact)
