"""The atheris targets run, and report an unexpected exception as a crash.

``make fuzz`` runs each target for minutes; here each runs a few thousand inputs (so a
target that no longer starts, or finds a crash in seconds, fails the suite), and a parser
replaced by one that raises something undocumented must make libFuzzer report a crash
(so the harness cannot quietly swallow exceptions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {
    "tests.fuzz.atheris_key_parser": "parse_key",
    "tests.fuzz.atheris_webhook_signature": "verify",
}


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("module", sorted(TARGETS))
def test_each_target_runs_clean(module: str, tmp_path: Path) -> None:
    code = f"import {module} as t; t.main()"
    done = _run(code, "-runs=3000", "-seed=1", f"-artifact_prefix={tmp_path}/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Done 3000 runs" in done.stderr


@pytest.mark.parametrize(("module", "parser"), sorted(TARGETS.items()))
def test_an_undocumented_exception_is_a_crash(module: str, parser: str, tmp_path: Path) -> None:
    code = (
        f"import {module} as t\n"
        "def broken(*args, **kwargs):\n"
        "    raise KeyError('not the documented refusal')\n"
        f"t.{parser} = broken\n"
        "t.main()\n"
    )
    done = _run(code, "-runs=100", "-seed=1", f"-artifact_prefix={tmp_path}/")
    assert done.returncode != 0
    assert "KeyError: 'not the documented refusal'" in done.stdout + done.stderr
    assert "libFuzzer: fuzz target exited" in done.stderr
    assert list(tmp_path.glob("crash-*")), "libFuzzer kept no reproducer"
