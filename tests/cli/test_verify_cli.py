"""``frostgate verify --packet``: exit codes, the human summary, the ``--json`` report."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from frostgate.cli import verify as verify_module
from frostgate.cli.verify import verify
from frostgate.ledger import (
    GENESIS,
    MemoryTree,
    Signer,
    encode,
    format_checkpoint,
    generate_signing_key,
    leaf_hash,
    sign_note,
)
from frostgate.ledger.packet import PacketEntry, build_packet

ORIGIN = "frostgate.test/decisions/acme"
REPORT_KEYS = {
    "ok",
    "reason",
    "version",
    "stream",
    "origin",
    "tree_size",
    "range",
    "checked_entries",
    "checkpoints",
    "first_bad_index",
    "event_index",
    "event_included",
}


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app: 'verify' registered the way frostgate.cli registers it."""

    app.command("verify")(verify)
    return app


APP = make_app()


def run(*args: str) -> Result:
    return CliRunner().invoke(APP, ["verify", *args])


def build(n: int, sizes: tuple[int, ...], start: int, end: int) -> tuple[bytes, str]:
    skey, vkey = generate_signing_key("log.test")
    signer = Signer.from_skey(skey)
    tree = MemoryTree()
    entries: list[PacketEntry] = []
    prev = GENESIS
    for i in range(n):
        entry = {"v": 1, "index": i, "event_id": f"ev-{i}", "score": i % 100}
        leaf = leaf_hash(encode(entry))
        chain = hashlib.sha256(prev + leaf).digest()
        entries.append(PacketEntry(i, entry, prev, chain))
        tree.append(leaf)
        prev = chain
    notes = {s: sign_note(format_checkpoint(ORIGIN, s, tree.root(s)), signer) for s in sizes}
    chosen = [s for s in sizes if s <= start][-1:] + [s for s in sizes if s > start]
    newest = chosen[-1]
    data = build_packet(
        stream="decisions/acme",
        origin=ORIGIN,
        entries=entries[start:end],
        checkpoints=[(s, notes[s]) for s in chosen],
        consistency=[(a, b, tree.consistency_proof(a, b)) for a, b in itertools.pairwise(chosen)],
        inclusion=[(i, newest, tree.inclusion_proof(i, newest)) for i in range(start, end)],
        range_meta={"start": start, "end": end, "since": "2025-01-01T00:00:00Z", "until": None},
        signer=signer,
    )
    return data, vkey


@pytest.fixture(scope="module")
def packet_and_key() -> tuple[bytes, str]:
    return build(100, (10, 50, 90), 20, 80)


@pytest.fixture
def packet_file(tmp_path: Path, packet_and_key: tuple[bytes, str]) -> Path:
    path = tmp_path / "audit.zip"
    path.write_bytes(packet_and_key[0])
    return path


@pytest.fixture
def vkey(packet_and_key: tuple[bytes, str]) -> str:
    return packet_and_key[1]


@pytest.fixture
def tampered_file(tmp_path: Path, packet_and_key: tuple[bytes, str]) -> Path:
    with zipfile.ZipFile(io.BytesIO(packet_and_key[0])) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members["entries.jsonl"] = members["entries.jsonl"].replace(b'"score":21', b'"score":99', 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    path = tmp_path / "tampered.zip"
    path.write_bytes(buffer.getvalue())
    return path


def one_line(text: str) -> str:
    assert text.endswith("\n")
    assert text.count("\n") == 1, text
    return text


def test_valid_packet(packet_file: Path, vkey: str) -> None:
    result = run("--packet", str(packet_file), "--vkey", vkey)
    assert result.exit_code == 0, result.output
    assert "audit packet verified" in result.stdout
    assert "decisions/acme" in result.stdout
    assert "60 (indexes 20..79)" in result.stdout
    assert "3 signatures, 2 consistency proofs" in result.stdout
    assert result.stderr == ""


def test_valid_packet_json(packet_file: Path, vkey: str) -> None:
    result = run("--packet", str(packet_file), "--vkey", vkey, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == REPORT_KEYS
    assert report["ok"] is True
    assert report["reason"] is None
    assert report["checked_entries"] == 60
    assert report["checkpoints"] == 3
    assert report["tree_size"] == 90
    assert report["range"] == {
        "start": 20,
        "end": 80,
        "since": "2025-01-01T00:00:00Z",
        "until": None,
    }
    assert result.stderr == ""


def test_vkey_from_a_file(tmp_path: Path, packet_file: Path, vkey: str) -> None:
    key_file = tmp_path / "log.vkey"
    key_file.write_text(vkey + "\n")
    result = run("--packet", str(packet_file), "--vkey", str(key_file))
    assert result.exit_code == 0, result.output


def test_tampered_packet(tampered_file: Path, vkey: str) -> None:
    result = run("--packet", str(tampered_file), "--vkey", vkey)
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith("verification failed: entries.jsonl does not match its SHA-256")
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_tampered_packet_json(tampered_file: Path, vkey: str) -> None:
    result = run("--packet", str(tampered_file), "--vkey", vkey, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == REPORT_KEYS
    assert report["ok"] is False
    assert "entries.jsonl does not match" in report["reason"]
    assert result.stderr == ""


def test_wrong_key(packet_file: Path) -> None:
    other = generate_signing_key("log.test")[1]
    result = run("--packet", str(packet_file), "--vkey", other)
    assert result.exit_code == 1
    assert "manifest signature key ID" in one_line(result.stderr)


@pytest.mark.parametrize("content", [b"", b"garbage", bytes(range(256)) * 40, b"PK\x05\x06"])
def test_malformed_packets_fail_cleanly(tmp_path: Path, vkey: str, content: bytes) -> None:
    path = tmp_path / "bad.zip"
    path.write_bytes(content)
    result = run("--packet", str(path), "--vkey", vkey)
    assert result.exit_code == 1
    one_line(result.stderr)
    assert isinstance(result.exception, SystemExit)


def test_truncated_packet(tmp_path: Path, packet_and_key: tuple[bytes, str], vkey: str) -> None:
    path = tmp_path / "cut.zip"
    path.write_bytes(packet_and_key[0][:-100])
    result = run("--packet", str(path), "--vkey", vkey, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False


def test_missing_packet_file(tmp_path: Path, vkey: str) -> None:
    missing = tmp_path / "nope.zip"
    result = run("--packet", str(missing), "--vkey", vkey)
    assert result.exit_code == 1
    assert "cannot read packet file" in one_line(result.stderr)
    result = run("--packet", str(missing), "--vkey", vkey, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == REPORT_KEYS
    assert report["ok"] is False
    assert "cannot read packet file" in report["reason"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_packet_that_is_not_a_regular_file_is_refused_unread(
    tmp_path: Path, vkey: str, special: str
) -> None:
    """The size cap read ``stat().st_size``, which is 0 for devices and pipes, and then
    read without bound: /dev/zero grew to gigabytes, and a pipe blocked forever."""
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "packet.zip"
        os.mkfifo(path)
    result = run("--packet", str(path), "--vkey", vkey)
    assert result.exit_code == 1
    assert "not a regular file" in one_line(result.stderr)


def test_bad_vkey(tmp_path: Path, packet_file: Path) -> None:
    result = run("--packet", str(packet_file), "--vkey", "not-a-key")
    assert result.exit_code == 1
    assert "--vkey is neither a verifier key" in one_line(result.stderr)
    key_file = tmp_path / "bad.vkey"
    key_file.write_text("hello+world\n")
    result = run("--packet", str(packet_file), "--vkey", str(key_file))
    assert result.exit_code == 1
    assert "does not hold a verifier key" in one_line(result.stderr)
    result = run("--packet", str(packet_file), "--vkey", "x" * 5000, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False


def test_usage_errors(packet_file: Path, vkey: str) -> None:
    result = run("--packet", str(packet_file))
    assert result.exit_code == 2
    assert "--vkey" in result.output
    # --vkey / --event-index without --packet: a usage error, not a database run.
    result = run("--vkey", vkey)
    assert result.exit_code == 2
    result = run("--event-index", "3")
    assert result.exit_code == 2


def test_event_index(packet_file: Path, vkey: str) -> None:
    result = run("--packet", str(packet_file), "--vkey", vkey, "--event-index", "42")
    assert result.exit_code == 0, result.output
    assert "entry 42" in result.stdout
    result = run("--packet", str(packet_file), "--vkey", vkey, "--event-index", "85", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["event_index"] == 85
    assert report["event_included"] is False
    assert "entry 85 is not in this packet" in report["reason"]


def test_progress_bar_on_long_runs(
    monkeypatch: pytest.MonkeyPatch, packet_file: Path, vkey: str
) -> None:
    monkeypatch.setattr(verify_module, "PROGRESS_THRESHOLD", 10)
    result = run("--packet", str(packet_file), "--vkey", vkey)
    assert result.exit_code == 0, result.output
    assert "audit packet verified" in result.stdout
    # --json never draws the bar: stdout is exactly one JSON document.
    result = run("--packet", str(packet_file), "--vkey", vkey, "--json")
    assert result.exit_code == 0
    json.loads(result.stdout)
    assert result.stderr == ""


def test_long_reason_stays_on_one_line(tmp_path: Path, packet_file: Path) -> None:
    # A long failure reason is not wrapped at the terminal width.
    other = generate_signing_key("a-rather-long-key-name.example.org/with/a/path/inside")[1]
    result = run("--packet", str(packet_file), "--vkey", other)
    assert result.exit_code == 1
    assert len(one_line(result.stderr)) > 100
