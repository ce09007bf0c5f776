"""The server caps glibc's malloc arenas (docs/benchmarks.md, "Soak": RSS grew in
per-thread arenas). Counted the way glibc reports them, in a fresh process each time."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from frostgate.config.allocator import limit_malloc_arenas

# Eight threads that each allocate from C while all are alive: without a cap glibc
# gives each its own arena; malloc_stats() then prints one "Arena N:" block per arena.
_PROBE = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys, threading
    from frostgate.config.allocator import limit_malloc_arenas
    applied = limit_malloc_arenas(int(sys.argv[1]))
    barrier = threading.Barrier(8)
    held = []
    def work():
        held.append(bytearray(200_000))  # above pymalloc's limit: straight to malloc
        barrier.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
    print(applied)
    """
)


def _arenas(cap: int) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(cap)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return done.stderr.count("Arena "), done.stdout.strip()


def _glibc() -> bool:
    return sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="glibc's arenas only")
def test_serve_caps_malloc_arenas_at_two() -> None:
    uncapped, applied_none = _arenas(0)
    capped, applied = _arenas(2)
    assert applied_none == "False"
    assert applied == "True"
    assert uncapped > 2  # the probe does make per-thread arenas when nothing caps them
    assert capped <= 2


def test_zero_leaves_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(0) is False
    assert "MALLOC_ARENA_MAX" not in os.environ
