"""``frostgate rules check|test`` and FG_RULE_PACKS at startup: the real CLI, the real
engine, the real service factory; a bad pack stops the service with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from frostgate.api import build_app
from frostgate.cli import app
from frostgate.config import Profile, Settings, get_settings
from frostgate.engine import RuleFileError, load_policy
from tests.rules.rule_files import line_of, write

RUNNER = CliRunner()

PACK = """
pack: ssh-extra
version: "3"
rules:
  - id: root_login
    points: 60
    when:
      all:
        - {field: user, op: eq, value: root}
        - {field: src_ip, op: exists}
  - id: scanner
    points: 30
    when: {field: payload.ua, op: regex, value: "(?i)nmap|masscan"}
  - id: three_strikes
    points: 70
    when:
      all:
        - {field: auth_failure, op: eq, value: true}
        - {field: src_ip, op: exists}
    window: {key: src_ip, count: 3, seconds: 60}
    mitigation:
      action: block_ip
      target_field: src_ip
      confidence: 0.9
      reason: "3 failures from {src_ip}"
"""

BAD_PACK = """
pack: broken
version: "1"
rules:
  - id: typo
    points: 10
    when: {field: user, op: equals, value: root}
"""

SIGMA = """
title: Nmap user agent
id: 9e0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b
level: medium
logsource: {category: webserver}
detection:
  sel:
    ua|contains: nmap
  condition: sel
"""

SIGMA_COUNT = """
title: Too many failures
level: high
logsource: {product: linux}
detection:
  sel: {event_type: ssh_login_failed}
  condition: sel | count() by src_ip > 10
"""


@pytest.fixture(autouse=True)
def no_configured_policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reads FG_POLICY_PATH for its default base; keep the packaged policy."""
    monkeypatch.delenv("FG_POLICY_PATH", raising=False)
    monkeypatch.delenv("FG_RULE_PACKS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return RUNNER.invoke(app, ["rules", *args])


def events_file(tmp_path: Path, *events: dict[str, object]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def test_check_accepts_valid_files_and_exits_zero(tmp_path: Path) -> None:
    pack = write(tmp_path, "pack.yaml", PACK)
    rule = write(tmp_path, "nmap.yml", SIGMA)
    result = run("check", str(pack), str(rule))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{pack}: ok (rulepack, 3 rules)",
        f"{rule}: ok (sigma, 1 rules)",
    ]


def test_check_reports_file_line_reason_and_exits_one(tmp_path: Path) -> None:
    good = write(tmp_path, "pack.yaml", PACK)
    bad = write(tmp_path, "bad.yaml", BAD_PACK)
    count = write(tmp_path, "count.yml", SIGMA_COUNT)
    result = run("check", str(good), str(bad), str(count))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{good}: ok (rulepack, 3 rules)"
    assert lines[1].startswith(f"{bad}:{line_of(bad, 'op: equals')}: rule 'typo'.when.op: ")
    assert lines[2] == (
        f"{count}:{line_of(count, 'condition:')}: Sigma aggregation 'count()' is not supported "
        "(use a FrostGate rule pack with a window clause for counting)"
    )


def test_check_finds_duplicates_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", PACK)
    second = write(tmp_path, "b.yaml", PACK.replace("ssh-extra", "copy"))
    result = run("check", str(first), str(second))
    assert result.exit_code == 1
    assert f"{second}:4: rule id 'root_login' is already defined in {first}" in result.output


def test_check_json(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD_PACK)
    result = run("check", "--json", str(bad), str(tmp_path / "absent.yaml"))
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert report["ok"] is False
    first, missing = report["files"]
    assert (first["kind"], first["problems"][0]["line"]) == ("rulepack", 6)
    assert missing["kind"] is None
    assert missing["problems"][0]["message"].startswith("cannot read")


def test_check_validates_a_policy_file_on_its_own(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(
        (Path(__file__).parents[2] / "src/frostgate/engine/policies/default.yaml").read_bytes()
    )
    result = run("check", str(policy))
    assert result.exit_code == 0
    assert f"{policy}: ok (policy, 7 rules)" in result.output


def test_rules_test_shows_what_fires_per_event(tmp_path: Path) -> None:
    pack = write(tmp_path, "pack.yaml", PACK)
    failure = {"event_type": "ssh_login_failed", "src_ip": "198.51.100.7"}
    events = events_file(
        tmp_path,
        {"event_id": "e1", "user": "root", "src_ip": "192.0.2.1", "event_type": "ssh_login"},
        {"event_id": "e2", "src_ip": "192.0.2.2", "payload": {"ua": "Nmap/7.9"}},
        {"event_id": "e3", **failure, "timestamp": "2026-01-01T00:00:00Z"},
        {"event_id": "e4", **failure, "timestamp": "2026-01-01T00:00:10Z"},
        {"event_id": "e5", **failure, "timestamp": "2026-01-01T00:00:20Z"},
        {"event_id": "e6", "event_type": "heartbeat"},
    )
    result = run("test", str(pack), "--events", str(events), "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    by_line = {e["line"]: e for e in report["events"]}
    assert by_line[1]["file_rules"] == ["root_login"]
    assert by_line[2]["file_rules"] == ["scanner"]
    assert by_line[3]["file_rules"] == []
    assert by_line[4]["file_rules"] == []
    assert by_line[5]["file_rules"] == ["three_strikes"]  # the window counted e3..e5
    assert by_line[5]["mitigations"][0]["target"] == "198.51.100.7"
    assert by_line[6]["rules_triggered"] == ["default_allow"]
    assert report["fired"] == {"root_login": 1, "scanner": 1, "three_strikes": 1}
    assert report["policy_hash"] == load_policy(None, [pack]).hash


def test_rules_test_table(tmp_path: Path) -> None:
    rule = write(tmp_path, "nmap.yml", SIGMA)
    events = events_file(
        tmp_path,
        {"event_type": "http", "payload": {"ua": "NMAP scripting engine"}},
        {"event_type": "http", "payload": {"ua": "curl"}},
        {"event_type": "http", "src_ip": "not-an-ip"},
    )
    result = RUNNER.invoke(
        app, ["rules", "test", str(rule), "--events", str(events)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 3
    assert "sigma:9e0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b" in rows[0]
    assert "default_allow" in rows[1]
    assert "refused: EVENT_INVALID" in rows[2]
    assert result.output.rstrip().endswith(
        f"3 events; rules from {rule} fired: sigma:9e0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b=1"
    )


def test_rules_test_refuses_bad_inputs(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD_PACK)
    events = events_file(tmp_path, {"event_type": "x"})
    result = run("test", str(bad), "--events", str(events))
    assert result.exit_code == 1
    assert result.output.startswith(f"{bad}:6: ")
    pack = write(tmp_path, "pack.yaml", PACK)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"event_type": "x"}\n{nope\n')
    result = run("test", str(pack), "--events", str(broken))
    assert result.exit_code == 2
    assert f"{broken}:2: not JSON" in result.output


# --------------------------------------------------------------------------- startup


def test_the_service_merges_configured_packs(tmp_path: Path) -> None:
    pack = write(tmp_path, "pack.yaml", PACK)
    settings = Settings(profile=Profile.TEST, data_dir=tmp_path, rule_packs=f" {pack} ,")
    assert settings.rule_pack_paths == (pack,)
    build_app(settings)  # builds with the merged policy


def test_the_service_is_not_built_with_a_bad_pack(tmp_path: Path) -> None:
    good = write(tmp_path, "pack.yaml", PACK)
    bad = write(tmp_path, "bad.yaml", BAD_PACK)
    settings = Settings(profile=Profile.TEST, data_dir=tmp_path, rule_packs=f"{good},{bad}")
    with pytest.raises(RuleFileError, match=rf"^{bad}:6: "):
        build_app(settings)


def test_serve_refuses_to_start_with_a_bad_pack(tmp_path: Path) -> None:
    bad = write(tmp_path, "count.yml", SIGMA_COUNT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
    env.update(FG_PROFILE="dev", FG_DATA_DIR=str(tmp_path), FG_RULE_PACKS=str(bad))
    result = subprocess.run(
        [sys.executable, "-m", "frostgate.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert f"{bad}:{line_of(bad, 'condition:')}: Sigma aggregation 'count()'" in " ".join(
        result.stderr.split()
    )


def test_config_check_names_a_bad_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = write(tmp_path, "bad.yaml", BAD_PACK)
    monkeypatch.setenv("FG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FG_RULE_PACKS", str(bad))
    get_settings.cache_clear()
    result = RUNNER.invoke(app, ["config", "check"])
    assert result.exit_code == 1
    assert f"problem: policy: {bad}:6: rule 'typo'.when.op:" in result.output
