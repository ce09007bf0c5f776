"""Capping glibc's per-thread malloc arenas for the server process.

glibc gives each thread that allocates its own arena, up to eight per core, and rarely
hands their memory back. A long-running server whose threads come and go (the writer,
anyio's workers, the database drivers') then grows its resident memory in those
arenas while its Python heap stays flat: the soak measured +16.8 % RSS over ten minutes
that way (docs/benchmarks.md, "Soak"). Two arenas bound that at almost no cost here:
the threads that allocate in C hold the GIL around most of it anyway.

``mallopt(M_ARENA_MAX, n)`` caps this process (arenas made before the call stay); the
``MALLOC_ARENA_MAX`` variable carries the cap to worker processes, where glibc reads it
at start. Other C libraries (musl) have no such arenas: there this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["limit_malloc_arenas"]

_M_ARENA_MAX = -8  # <malloc.h>


def limit_malloc_arenas(count: int) -> bool:
    """Cap malloc arenas at ``count`` (0: leave glibc's default). True when applied."""
    if count <= 0:
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(count)  # for worker processes started later
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    if mallopt is None:  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, count))
