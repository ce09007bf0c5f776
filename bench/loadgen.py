"""Open-loop, constant-rate load on ``POST /v1/defend`` for ``bench/soak.py``.

wrk is closed-loop: a connection sends its next request only after the answer, so when
the server stalls, wrk stops sending and the stall hides in a few slow samples
("coordinated omission"). Here a pacing clock fixes the send time of request ``i`` at
``t0 + i / rate`` whatever the server does. A request that finds every connection busy
waits in a queue, and its latency is measured from its intended send time, so a stall
counts against every request that should have gone out during it (what wrk2 corrects).

Request ``i`` carries event_id ``<prefix>-<i>``, so the outcome of every request is one
slot in two flat arrays (status, completion time) and the soak can check each acknowledged
id against the database afterwards. HTTP/1.1 keep-alive over asyncio streams, responses
parsed by httptools (uvicorn's own parser, already locked); uvloop when present.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import httptools
from soak_report import FAILED

try:
    import uvloop
except ImportError:  # pragma: no cover - uvicorn[standard] brings it
    uvloop = None


@dataclass
class Recording:
    """Per request ``i``: ``status[i]`` (HTTP status, ``UNFINISHED`` or ``FAILED``) and ``done[i]``,
    seconds from ``t0`` to the answer (or to the failure)."""

    rate: float
    status: array[int]
    done: array[float]


def event_body(event_id: str, rng: random.Random) -> bytes:
    """The bench's event shape (bench/events.lua): sshd auth failures from a random public
    address with 1 to 20 failures, so decisions differ and nothing is a cached answer."""
    ip = f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return (
        f'{{"event_id":"{event_id}","source":"sshd","event_type":"auth.failed",'
        f'"payload":{{"src_ip":"{ip}","failed_auths":{rng.randint(1, 20)}}}}}'
    ).encode()


class _Connection:
    """One keep-alive connection; ``exchange`` sends a request and returns the status."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._parser = httptools.HttpResponseParser(self)
        self._complete = False

    def on_message_complete(self) -> None:  # httptools callback
        self._complete = True

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        self._complete = False
        self._writer.write(request)
        while not self._complete:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise ConnectionResetError("server closed the connection")
            self._parser.feed_data(chunk)
        return self._parser.get_status_code(), self._parser.should_keep_alive()

    def close(self) -> None:
        self._writer.close()


@dataclass(frozen=True)
class Load:
    """``rate`` requests/s to ``host:port`` for ``seconds``, over at most ``connections``
    keep-alive connections; a request gets ``timeout`` s once sent, and whatever is not
    answered ``drain`` s after the last send stays ``UNFINISHED``."""

    host: str
    port: int
    key: str
    prefix: str
    rate: float
    seconds: float
    connections: int
    tick_every: float = 60.0
    timeout: float = 30.0
    drain: float = 60.0


def drive(load: Load, on_tick: Callable[[int], None]) -> Recording:
    """Run ``load``; ``on_tick(k)`` runs on the load loop at ``t0 + k * tick_every`` (keep
    it short: it delays the sends behind it, which then count as late)."""
    coro = _drive(load, on_tick)
    return uvloop.run(coro) if uvloop is not None else asyncio.run(coro)


async def _drive(load: Load, on_tick: Callable[[int], None]) -> Recording:
    host, port, rate, seconds = load.host, load.port, load.rate, load.seconds
    connections, tick_every = load.connections, load.tick_every
    n = int(rate * seconds)
    status = array("H", bytes(2 * n))
    done = array("d", bytes(8 * n))
    head = (
        f"POST /v1/defend HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {load.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    queue: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def pace() -> None:
        i = 0
        while i < n:
            due = min(n, int((loop.time() - t0) * rate) + 1)
            while i < due:  # catch up in a burst if the loop woke late
                queue.put_nowait(i)
                i += 1
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
        for _ in range(connections):
            queue.put_nowait(-1)

    async def ticks() -> None:
        k = 1
        while k * tick_every <= seconds + 1e-9:
            await asyncio.sleep(max(0.0, t0 + k * tick_every - loop.time()))
            on_tick(k)
            k += 1

    async def worker(wid: int) -> None:
        rng = random.Random(wid)  # noqa: S311 - test traffic, not security
        conn: _Connection | None = None
        while (i := await queue.get()) >= 0:
            body = event_body(f"{load.prefix}-{i}", rng)
            code = FAILED
            try:
                if conn is None:
                    conn = _Connection(*await asyncio.open_connection(host, port))
                code, keep = await asyncio.wait_for(
                    conn.exchange(head + b"%d\r\n\r\n" % len(body) + body), load.timeout
                )
                if not keep:
                    conn.close()
                    conn = None
            except (OSError, TimeoutError, httptools.HttpParserError):
                if conn is not None:
                    conn.close()
                conn = None
            status[i] = code
            done[i] = loop.time() - t0
        if conn is not None:
            conn.close()

    tasks = [asyncio.create_task(worker(w)) for w in range(connections)]
    await asyncio.gather(pace(), ticks())
    # Whatever is not answered within ``drain`` s after the last send stays UNFINISHED.
    _finished, pending = await asyncio.wait(tasks, timeout=load.drain)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return Recording(rate=rate, status=status, done=done)
