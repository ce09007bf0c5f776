"""Diagnostics the benchmark harness can switch on inside the servers it starts.

``bench/run.py`` puts this directory on ``PYTHONPATH`` only when one of its probe flags is
given; Python then imports this module at start-up. It changes nothing unless one of
these variables is set (the harness sets them for ``frostgate serve`` only, except the
switch interval, which it sets for both servers):

``BENCH_PROBE_SWITCH_INTERVAL``  seconds for ``sys.setswitchinterval`` (experiment)
``BENCH_PROBE_GC_OFF``           ``1``: ``gc.disable()`` (experiment: what GC costs)
``BENCH_PROBE_GC_OUT``           path: record every garbage collection (wall-clock start,
                                 generation, duration) and write them there as JSON at exit
"""

from __future__ import annotations

import os
import sys

_switch = os.environ.get("BENCH_PROBE_SWITCH_INTERVAL")
if _switch:
    sys.setswitchinterval(float(_switch))

if os.environ.get("BENCH_PROBE_GC_OFF") == "1":
    import gc

    gc.disable()

_gc_out = os.environ.get("BENCH_PROBE_GC_OUT")
if _gc_out:
    import atexit
    import gc
    import json
    import time

    _collections: list[tuple[float, int, float]] = []
    _started: dict[int, tuple[float, float]] = {}

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        generation = info["generation"]
        if phase == "start":
            _started[generation] = (time.time(), time.perf_counter())
        elif generation in _started:
            wall, t0 = _started.pop(generation)
            _collections.append((wall, generation, time.perf_counter() - t0))

    def _dump() -> None:
        with open(_gc_out, "w") as handle:
            json.dump({"pid": os.getpid(), "collections": _collections}, handle)

    gc.callbacks.append(_on_gc)
    atexit.register(_dump)
