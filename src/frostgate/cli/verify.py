"""``frostgate verify``: check a ledger offline.

* ``frostgate verify --packet audit.zip --vkey <verifier key or file>``: verify an audit
  packet (:mod:`frostgate.ledger.packet`) with nothing but the log's public key;
* ``frostgate verify``: verify every ledger stream of the configured database
  (:func:`frostgate.decisions.ledger_audit.verify_database`);
* ``frostgate verify --url https://fg.example --key fgk_...`` (or the key in
  ``FG_VERIFY_KEY``, kept out of shell history): verify the key's tenant's streams
  through the API, through the egress client
  (:func:`frostgate.decisions.remote_verify.verify_remote`); ``--vkey`` pins the log's
  verifier key instead of trusting the one the server serves.

Exit status 0 when everything verifies, 1 on any failure (with a one-line reason on
stderr), 2 on a usage error. ``--json`` prints the machine-readable report on stdout
and nothing else there. A Rich progress bar (on stderr) follows packets of more than
:data:`PROGRESS_THRESHOLD` entries, except in ``--json`` mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from frostgate.decisions.remote_verify import RemoteReport, verify_remote
from frostgate.ledger.note import NoteError, Verifier
from frostgate.ledger.packet import DEFAULT_LIMITS, PacketReport, verify_packet
from frostgate.store.files import NotARegularFile, TooLarge, read_regular_file

__all__ = ["PROGRESS_THRESHOLD", "verify"]

#: Packets with more checkpoints + entries than this get a progress bar.
PROGRESS_THRESHOLD = 50_000
_MAX_VKEY_FILE = 64 * 1024
#: Response cap of the remote verifier's egress client: a page of 1,000 entries is
#: about 1 MB; audit entries with large details can be several times that.
REMOTE_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class _Failure(Exception):
    """A failure before verification could start (unreadable file, bad key)."""


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _fail_line(err: Console, message: str) -> None:
    """One line on stderr, whatever the message holds and however wide the terminal."""
    err.print(
        "verification failed: " + " ".join(message.split()),
        style="bold red",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _load_verifier(value: str) -> Verifier:
    """``value`` is a verifier key string or the path of a file holding one."""
    try:
        return Verifier.from_vkey(value.strip())
    except NoteError as exc:
        as_key_error = str(exc)
    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise _Failure(
            f"--vkey is neither a verifier key ({as_key_error}) nor a readable file"
        ) from None
    try:
        if path.stat().st_size > _MAX_VKEY_FILE:
            raise _Failure(f"--vkey file {value} is too large to hold a verifier key")
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _Failure(f"cannot read --vkey file {value}: {exc}") from None
    try:
        return Verifier.from_vkey(text)
    except NoteError as exc:
        raise _Failure(f"--vkey file {value} does not hold a verifier key: {exc}") from None


def _read_packet(path: Path) -> bytes:
    """The packet's bytes, never more than the cap, from a regular file only (a device
    or a pipe reports size 0 and then never ends, or never starts)."""
    cap = DEFAULT_LIMITS.max_total
    try:
        return read_regular_file(path, cap)
    except NotARegularFile:
        raise _Failure(f"packet file {path} is not a regular file") from None
    except TooLarge:
        raise _Failure(f"packet file is over the {cap}-byte cap") from None
    except OSError as exc:
        raise _Failure(f"cannot read packet file {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while verifying.

    Verification allocates and frees millions of small acyclic objects (parsed pages,
    hashes), which refcounting reclaims at once; the collector's passes over them find
    nothing and cost about a microsecond per entry, a quarter of the work. Cycles made
    meanwhile (if any) are collected when it is re-enabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _with_index(reason: str, index: int | None) -> str:
    """The reason, naming the first bad entry unless it already does."""
    if index is None or f"entry {index}" in reason:
        return reason
    return f"{reason} (entry {index})"


def _conclude(
    ok: bool,
    data: dict[str, Any],
    json_output: bool,
    summary: Callable[[], None],
    reason: Callable[[], str],
) -> None:
    """Print the report (JSON, or a summary / one failure line) and exit 1 unless ok."""
    if json_output:
        _print_json(data)
    elif ok:
        summary()
    else:
        _fail_line(Console(stderr=True), reason())
    if not ok:
        raise typer.Exit(code=1)


class _ProgressBar:
    """A ``progress(done, total)`` callback that shows a bar only for long runs."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self._console = console
        self._enabled = enabled
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        if self._progress is None:
            if total <= PROGRESS_THRESHOLD:
                self._enabled = False
                return
            self._progress = Progress(
                TextColumn("verifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("verify", total=total)
        assert self._task is not None
        # A remote run learns its total as it goes (each stream's newest checkpoint).
        self._progress.update(self._task, completed=done, total=max(total, done))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _packet_summary(out: Console, report: PacketReport, elapsed: float) -> None:
    rng = report.range or {}
    start, end = rng.get("start", 0), rng.get("end", 0)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("stream", f"{report.stream}  (origin {report.origin})")
    span = f"indexes {start}..{end - 1}" if end > start else "none"
    table.add_row(
        "entries",
        f"{report.checked_entries} ({span}): leaf hashes, hash chain and inclusion proofs",
    )
    table.add_row(
        "checkpoints",
        f"{report.checkpoints} signatures, {max(report.checkpoints - 1, 0)} consistency "
        f"proofs; newest tree size {report.tree_size}",
    )
    if rng.get("since") is not None or rng.get("until") is not None:
        table.add_row("time range", f"{rng.get('since') or '-'} .. {rng.get('until') or '-'}")
    if report.event_index is not None:
        table.add_row(f"entry {report.event_index}", "included")
    rate = f", {report.checked_entries / elapsed:,.0f} entries/s" if elapsed > 0 else ""
    table.add_row("time", f"{elapsed:.2f} s{rate}")
    out.print("[bold green]audit packet verified[/bold green]")
    out.print(table, markup=False, highlight=False)


def _verify_packet_file(
    packet: Path, vkey: str | None, event_index: int | None, json_output: bool
) -> None:
    out, err = Console(), Console(stderr=True)
    if vkey is None:
        raise typer.BadParameter("--packet needs --vkey (the log's verifier key)")
    try:
        verifier = _load_verifier(vkey)
        data = _read_packet(packet)
    except _Failure as exc:
        if json_output:
            report = PacketReport(
                ok=False,
                checked_entries=0,
                checkpoints=0,
                first_bad_index=None,
                reason=str(exc),
                event_index=event_index,
            )
            _print_json(report.as_dict())
        else:
            _fail_line(err, str(exc))
        raise typer.Exit(code=1) from None

    bar = _ProgressBar(err, enabled=not json_output)
    started = time.perf_counter()
    try:
        with _collector_paused():
            report = verify_packet(data, verifier, event_index=event_index, progress=bar)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    _conclude(
        report.ok,
        report.as_dict(),
        json_output,
        lambda: _packet_summary(out, report, elapsed),
        lambda: _with_index(report.reason or "unknown reason", report.first_bad_index),
    )


def _verify_database(checkpoints: Path | None, json_output: bool) -> None:
    from frostgate.config import get_settings
    from frostgate.decisions.ledger_audit import verify_database

    out, err = Console(), Console(stderr=True)
    try:
        settings = get_settings()
        held_outside = checkpoints
        configured = settings.anchor_export_dir
        if held_outside is None and configured is not None:
            if configured.is_dir():
                held_outside = configured
            else:  # nothing anchored yet on a fresh install: nothing exported to hold to
                err.print(
                    f"FG_ANCHOR_EXPORT_DIR {configured} does not exist: "
                    "no exported checkpoints checked",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        report = verify_database(settings, checkpoint_dir=held_outside)
        data = report.as_dict()
        ok = bool(report.ok)
    except Exception as exc:  # noqa: BLE001 - a one-line reason, never a traceback
        message = f"database verification could not run: {type(exc).__name__}: {exc}"
        if json_output:
            _print_json({"ok": False, "reason": message, "streams": []})
        else:
            _fail_line(err, message)
        raise typer.Exit(code=1) from None
    if json_output:
        _print_json(data)
    else:
        table = Table("stream", "ok", "checked", "first bad index", "reason")
        for stream in data.get("streams", []):
            table.add_row(
                str(stream.get("stream")),
                "yes" if stream.get("ok") else "NO",
                str(stream.get("checked", "")),
                "-" if stream.get("first_bad_index") is None else str(stream["first_bad_index"]),
                stream.get("reason") or "",
            )
        out.print(table, markup=False, highlight=False)
        if ok:
            out.print("[bold green]database ledger verified[/bold green]")
        else:
            bad = [s for s in data.get("streams", []) if not s.get("ok")]
            first = bad[0] if bad else {}
            _fail_line(err, f"{first.get('stream', 'ledger')}: {first.get('reason', 'failed')}")
    if not ok:
        raise typer.Exit(code=1)


def _remote_summary(out: Console, report: RemoteReport, elapsed: float) -> None:
    table = Table("stream", "ok", "entries", "checkpoints", "newest checkpoint", "reason")
    for stream in report.streams:
        table.add_row(
            stream.stream,
            "yes" if stream.ok else "NO",
            str(stream.entries),
            str(stream.checkpoints),
            str(stream.tree_size),
            stream.reason or "",
        )
    out.print(table, markup=False, highlight=False)
    if report.event is not None and report.event.get("included"):
        out.print(
            f"event {report.event['event_id']}: entry {report.event['index']} of "
            f"{report.event['stream']}, included in the checkpoint of size "
            f"{report.event['tree_size']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    rate = f", {report.checked_entries / elapsed:,.0f} entries/s" if elapsed > 0 else ""
    out.print(f"verifier key {report.vkey}; {elapsed:.2f} s{rate}", markup=False, soft_wrap=True)
    out.print("[bold green]remote ledger verified[/bold green]")


def _remote_reason(report: RemoteReport) -> str:
    if report.reason is not None:
        return report.reason
    for stream in report.streams:
        if not stream.ok:
            reason = _with_index(stream.reason or "unknown reason", stream.first_bad_index)
            return f"{stream.stream}: {reason}"
    if report.event is not None and not report.event.get("included"):
        return f"event {report.event['event_id']}: {report.event.get('reason')}"
    return "unknown reason"


def _verify_url(
    url: str, key: str | None, vkey: str | None, event_id: str | None, json_output: bool
) -> None:
    from frostgate.config import Settings
    from frostgate.egress import client_from_settings

    out, err = Console(), Console(stderr=True)
    started = time.perf_counter()
    bar = _ProgressBar(err, enabled=not json_output)
    try:
        try:
            settings = Settings()
            client = client_from_settings(settings, max_response_bytes=REMOTE_MAX_RESPONSE_BYTES)
        except ValueError as exc:
            raise _Failure(f"the configuration is invalid: {' '.join(str(exc).split())}") from None
        key = key or settings.verify_key
        if not key:
            raise _Failure("--url needs a ledger:read key: --key or FG_VERIFY_KEY")
        pinned = _load_verifier(vkey) if vkey is not None else None
        with _collector_paused():
            report = asyncio.run(
                verify_remote(client, url, key, pinned=pinned, event_id=event_id, progress=bar)
            )
    except _Failure as exc:
        report = RemoteReport(url=url, reason=str(exc))
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    _conclude(
        report.ok,
        report.as_dict(),
        json_output,
        lambda: _remote_summary(out, report, elapsed),
        lambda: _remote_reason(report),
    )


def verify(
    packet: Path | None = typer.Option(
        None, "--packet", help="An audit packet (.zip) to verify offline; needs --vkey."
    ),
    url: str | None = typer.Option(
        None, "--url", help="Verify a served ledger: the API's base URL (needs a key)."
    ),
    key: str | None = typer.Option(
        None,
        "--key",
        help="With --url: a ledger:read key (better: FG_VERIFY_KEY, kept out of history).",
    ),
    vkey: str | None = typer.Option(
        None,
        "--vkey",
        help="verifier key string or a file holding it (with --url: pin the served key)",
    ),
    event_index: int | None = typer.Option(
        None, "--event-index", help="Also require this ledger entry index to be in the packet."
    ),
    event_id: str | None = typer.Option(
        None, "--event-id", help="With --url: also prove this event's inclusion."
    ),
    checkpoints: Path | None = typer.Option(
        None,
        "--checkpoints",
        help="Database mode: checkpoints kept outside the database (the "
        "FG_ANCHOR_EXPORT_DIR layout; default that directory) each stream must hold.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print a machine-readable report."),
) -> None:
    """Verify the ledger: an audit packet with the log's public key, a served ledger
    through its API (--url), or, with neither, every stream of the configured database.
    Exit 0 if it verifies, 1 if not."""
    if packet is not None and url is not None:
        raise typer.BadParameter("give --packet or --url, not both")
    if url is None and (key is not None or event_id is not None):
        raise typer.BadParameter("--key and --event-id apply only with --url")
    if checkpoints is not None and (url is not None or packet is not None):
        raise typer.BadParameter("--checkpoints applies only to the database")
    if url is not None:
        if event_index is not None:
            raise typer.BadParameter("--event-index applies only with --packet")
        _verify_url(url, key, vkey, event_id, json_output)
        return
    if packet is None:
        if vkey is not None or event_index is not None:
            raise typer.BadParameter("--vkey and --event-index apply only with --packet or --url")
        _verify_database(checkpoints, json_output)
        return
    _verify_packet_file(packet, vkey, event_index, json_output)
