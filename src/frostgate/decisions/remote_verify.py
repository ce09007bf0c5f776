"""``frostgate verify --url``: verify a tenant's ledger through the API, trusting only a key.

With a ``ledger:read`` key the verifier reads, for the key's tenant, the ``decisions``
and ``audit`` streams: every checkpoint (paged by ``since``), every entry (pages of at
most 1,000), and checks them with :class:`~frostgate.decisions.stream_check.StreamCheck`
against the log's verifier key. The key is the one ``GET /v1/ledger/public-key``
serves, unless the caller pins one (``--vkey``): then a different served key is a
failure, because a server that could swap its key could sign anything. Optionally one
event's inclusion is proven with ``/proof/inclusion?event_id=`` against the newest
checkpoint, with the leaf recomputed here and the proven entry's own ``event_id``
compared with the one asked for.

Every request goes through :class:`frostgate.egress.EgressClient` (the egress policy
applies: https only in prod, private addresses only when allowlisted). Anything that
goes wrong — a refused URL, a failed connection, 401, a truncated or malformed answer,
a bad signature — ends verification with a one-line reason, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import orjson

from frostgate.decisions.stream_check import StreamCheck, StreamFailure, StreamSummary
from frostgate.egress import EgressClient, EgressFailed, EgressRefused
from frostgate.ledger import ProofError, verify_inclusion
from frostgate.ledger.note import NoteError, Verifier

__all__ = [
    "MAX_UNANCHORED",
    "PAGE_SIZE",
    "STREAMS",
    "RemoteFailure",
    "RemoteReport",
    "RemoteStatus",
    "RemoteStreamReport",
    "verify_remote",
]

#: The entries endpoint serves at most this many entries per request.
PAGE_SIZE: Final = 1000
#: The checkpoints endpoint serves at most this many checkpoints per request.
CHECKPOINT_PAGE: Final = 1000
#: Entries past a stream's newest checkpoint the verifier reads before it gives up (the
#: anchoring job signs every 10,000 entries or every minute, so an honest server is far
#: below this).
MAX_UNANCHORED: Final = 1_000_000
#: The streams a tenant key can read, in the order they are verified.
STREAMS: Final = ("decisions", "audit")

Progress = Callable[[int, int], None]


class RemoteFailure(Exception):
    """Verification could not go on (network, HTTP status, malformed answer, wrong key)."""


class RemoteStatus(RemoteFailure):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class RemoteStreamReport:
    stream: str
    ok: bool
    entries: int = 0
    checkpoints: int = 0
    tree_size: int = 0
    first_bad_index: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "tree_size": self.tree_size,
            "unanchored": max(self.entries - self.tree_size, 0),
            "first_bad_index": self.first_bad_index,
            "reason": self.reason,
        }


@dataclass(slots=True)
class RemoteReport:
    url: str
    vkey: str | None = None
    streams: list[RemoteStreamReport] = field(default_factory=list)
    event: dict[str, Any] | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        streams_ok = bool(self.streams) and all(s.ok for s in self.streams)
        event_ok = self.event is None or bool(self.event.get("included"))
        return self.reason is None and streams_ok and event_ok

    @property
    def checked_entries(self) -> int:
        return sum(s.entries for s in self.streams)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "url": self.url,
            "vkey": self.vkey,
            "checked_entries": self.checked_entries,
            "streams": [s.as_dict() for s in self.streams],
            "event": self.event,
        }


class _Api:
    """GETs against the FrostGate API through the egress client, answers as JSON."""

    def __init__(self, client: EgressClient, base_url: str, key: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {key}", "Accept": "application/json"}

    async def get(self, path: str, *, auth: bool = True) -> Any:
        url = self._base + path
        headers = self._auth if auth else {"Accept": "application/json"}
        try:
            response = await self._client.get(url, headers, tenant_id=None)
        except EgressRefused as exc:
            raise RemoteFailure(f"{url} is refused by the egress policy: {exc.reason}") from None
        except EgressFailed as exc:
            raise RemoteFailure(f"GET {path} failed: {exc.reason}") from None
        if response.truncated:
            raise RemoteFailure(
                f"GET {path}: the answer is larger than the verifier's response cap; refused"
            )
        if response.status == 401:
            raise RemoteStatus(
                f"GET {path}: the server refused the key (401 {_code(response.body)})", 401
            )
        if not response.ok:
            raise RemoteStatus(
                f"GET {path} answered {response.status} {_code(response.body)}", response.status
            )
        try:
            return orjson.loads(response.body)
        except orjson.JSONDecodeError:
            raise RemoteFailure(f"GET {path}: the answer is not JSON") from None


def _code(body: bytes) -> str:
    """The ``error_code`` of an error body, if it has one (for the message only)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "(no error code)"
    code = parsed.get("error_code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) and code.isidentifier() else "(no error code)"


def _field(obj: Any, name: str, kind: type, what: str) -> Any:
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise RemoteFailure(f"{what}: the answer has no {name!r} of type {kind.__name__}")
    return value


async def _public_key(api: _Api, pinned: Verifier | None) -> tuple[str, Verifier]:
    body = await api.get("/v1/ledger/public-key", auth=False)
    origin = _field(body, "origin", str, "public key")
    vkey = _field(body, "vkey", str, "public key")
    try:
        served = Verifier.from_vkey(vkey)
    except NoteError as exc:
        raise RemoteFailure(f"the served verifier key is malformed: {exc}") from None
    if pinned is not None and (
        served.name != pinned.name or served.public_key != pinned.public_key
    ):
        raise RemoteFailure(f"the server's verifier key {vkey} is not the pinned key {pinned.vkey}")
    return origin, pinned or served


async def _stream(
    api: _Api,
    kind: str,
    prefix: str,
    verifier: Verifier,
    progress: Progress | None,
    done_before: int,
    started: list[StreamCheck],
    max_unanchored: int,
    event_id: str | None,
) -> tuple[StreamCheck, StreamSummary]:
    base = f"/v1/ledger/{kind}"
    first = await api.get(f"{base}/checkpoints?since=0")
    origin = _field(first, "origin", str, f"{kind} checkpoints")
    if not origin.startswith(f"{prefix}/{kind}/"):
        raise RemoteFailure(
            f"{kind} checkpoints: origin {origin!r} is not under the log's {prefix!r}/{kind}/"
        )
    check = StreamCheck(origin[len(prefix) + 1 :], origin, verifier, event_id=event_id)
    started.append(check)
    page = _field(first, "checkpoints", list, f"{kind} checkpoints")
    while True:
        check.add_checkpoints(page)
        if len(page) < CHECKPOINT_PAGE:
            break
        since = check.newest_size + 1
        page = _field(
            await api.get(f"{base}/checkpoints?since={since}"),
            "checkpoints",
            list,
            f"{kind} checkpoints",
        )
    start = 0
    while True:
        body = await api.get(f"{base}/entries?start={start}&end={start + PAGE_SIZE}")
        items = _field(body, "entries", list, f"{kind} entries")
        check.add_entries(items)
        start += len(items)
        if start - check.newest_size > max_unanchored:
            # The checkpoints bound what a server owes; past them it could serve
            # well-chained entries until the verifier runs out of memory.
            raise RemoteFailure(
                f"{kind} entries: the server serves more than {max_unanchored} entries "
                f"after its newest checkpoint ({check.newest_size})"
            )
        if progress is not None:
            progress(done_before + start, done_before + max(start, check.newest_size))
        if len(items) < PAGE_SIZE:
            break
    return check, check.finish()


async def _event(
    api: _Api, event_id: str, summaries: dict[str, tuple[StreamCheck, StreamSummary]]
) -> dict[str, Any]:
    quoted = quote(event_id, safe="")
    unanchored: list[str] = []
    for kind, (check, summary) in summaries.items():
        if not check.checkpoints:
            continue
        newest = check.checkpoints[-1]
        try:
            proof = await api.get(
                f"/v1/ledger/{kind}/proof/inclusion?event_id={quoted}&size={newest.size}"
            )
        except RemoteStatus as exc:
            if exc.status not in (404, 422):
                raise
            served = check.event_index
            if served is not None and served < newest.size:
                raise RemoteFailure(
                    f"the server denies a proof of event {event_id!r}, which it served "
                    f"as entry {served} of {summary.name}, under its newest checkpoint"
                ) from None
            if exc.status == 422:  # found, but after the newest checkpoint
                unanchored.append(f"{summary.name} (newest checkpoint {newest.size})")
            continue
        index = _field(proof, "index", int, "inclusion proof")
        hashes = _field(proof, "hashes", list, "inclusion proof")
        if not 0 <= index < newest.size:
            raise RemoteFailure(f"inclusion proof: index {index} is outside the checkpoint")
        # The proof is only worth something if it is the asked-for event's entry: a
        # valid proof of another entry "includes" nothing.
        if check.event_index != index:
            raise RemoteFailure(f"inclusion proof: entry {index} is not event {event_id!r}")
        leaf = summary.tree.leaf(index)
        if proof.get("leaf_hash") != leaf.hex():
            raise RemoteFailure(
                f"inclusion proof: the served leaf hash of entry {index} is not the re-hashed one"
            )
        try:
            path = [bytes.fromhex(h) for h in hashes]
            verify_inclusion(leaf, index, newest.size, path, newest.root)
        except (ValueError, TypeError, ProofError) as exc:
            raise RemoteFailure(
                f"inclusion proof of entry {index} does not verify: {exc}"
            ) from None
        return {
            "event_id": event_id,
            "stream": summary.name,
            "index": index,
            "tree_size": newest.size,
            "included": True,
        }
    return {
        "event_id": event_id,
        "stream": None,
        "index": None,
        "tree_size": None,
        "included": False,
        "reason": (
            f"the event comes after the newest checkpoint of {', '.join(unanchored)}: "
            "not anchored yet"
            if unanchored
            else "no checkpointed entry of either stream has this event_id"
        ),
    }


async def verify_remote(
    client: EgressClient,
    base_url: str,
    key: str,
    *,
    pinned: Verifier | None = None,
    event_id: str | None = None,
    progress: Progress | None = None,
    max_unanchored: int = MAX_UNANCHORED,
) -> RemoteReport:
    """Verify the key's tenant's streams at ``base_url``; never raises. More than
    ``max_unanchored`` entries past a stream's newest checkpoint is a failure."""
    report = RemoteReport(url=base_url)
    if not key or not key.isprintable() or any(c.isspace() for c in key):
        report.reason = "the API key is empty or holds spaces or control characters"
        return report
    api = _Api(client, base_url, key)
    summaries: dict[str, tuple[StreamCheck, StreamSummary]] = {}
    try:
        prefix, verifier = await _public_key(api, pinned)
        report.vkey = verifier.vkey
        done = 0
        for kind in STREAMS:
            stream = RemoteStreamReport(kind, ok=False)
            report.streams.append(stream)
            started: list[StreamCheck] = []
            try:
                check, summary = await _stream(
                    api, kind, prefix, verifier, progress, done, started, max_unanchored, event_id
                )
            except StreamFailure as exc:
                stream.reason, stream.first_bad_index = exc.reason, exc.index
                if started:
                    check = started[0]
                    stream.stream, stream.checkpoints = check.name, len(check.checkpoints)
                    stream.tree_size = check.newest_size
                    stream.entries = check.entries if exc.index is None else exc.index
                continue
            stream.stream = summary.name
            stream.ok, stream.entries = True, summary.entries
            stream.checkpoints, stream.tree_size = summary.checkpoints, summary.tree_size
            summaries[kind] = (check, summary)
            done += summary.entries
        if event_id is not None:
            report.event = await _event(api, event_id, summaries)
    except RemoteFailure as exc:
        report.reason = str(exc)
    return report
