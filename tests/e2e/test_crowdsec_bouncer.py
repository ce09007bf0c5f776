"""A real, unmodified CrowdSec bouncer enforcing FrostGate's decisions.

``crowdsec-custom-bouncer`` (Debian's package, CrowdSec's own Go bouncer code) polls the
LAPI stream and runs a script for every decision it must apply (``add``) or undo
(``del``). Pointed at FrostGate's ``/crowdsec/`` mount with a FrostGate key, it must
receive the block raised by a burst of single failed SSH logins (the sensor counts
nothing) and undo it when an analyst lifts it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.served import Server

BOUNCER = shutil.which("crowdsec-custom-bouncer")
ATTACKER = "198.51.100.23"

pytestmark = pytest.mark.skipif(
    BOUNCER is None, reason="crowdsec-custom-bouncer is not installed (.ci/run installs it)"
)


def _bouncer_config(tmp: Path, server: Server, script: Path) -> Path:
    config = tmp / "bouncer.yaml"
    config.write_text(
        f"""\
bin_path: {script}
feed_via_stdin: false
total_retries: 0
scenarios_containing: []
scenarios_not_containing: []
origins: []
piddir: {tmp}/
update_frequency: 1s
cache_retention_duration: 1s
daemonize: false
log_mode: file
log_dir: {tmp}/
log_level: info
api_url: {server.url}/crowdsec/
api_key: {server.key}
prometheus:
  enabled: false
"""
    )
    return config


def _wait_for(what: str, check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_an_unmodified_crowdsec_bouncer_applies_and_undoes_a_frostgate_block(
    server: Server,
    tmp_path: Path,
) -> None:
    applied = tmp_path / "applied.log"
    script = tmp_path / "enforce.sh"
    script.write_text(f'#!/bin/sh\necho "$1 $2 $3" >> {applied}\n')
    script.chmod(0o755)
    assert BOUNCER is not None
    bouncer = subprocess.Popen(
        [BOUNCER, "-c", str(_bouncer_config(tmp_path, server, script))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for n in range(10):
            event = {
                "event_id": f"ssh-fail-{n}",
                "source": "sshd",
                "event_type": "ssh_login_failed",
                "payload": {"src_ip": ATTACKER, "user": "root"},
            }
            r = httpx.post(
                f"{server.url}/v1/defend", json=event, headers=server.headers(), timeout=10
            )
            assert r.status_code == 200, r.text

        def lines() -> list[str]:
            return applied.read_text().splitlines() if applied.exists() else []

        _wait_for("the bouncer to apply the block", lambda: any(ATTACKER in x for x in lines()))
        [added] = [x for x in lines() if ATTACKER in x]
        action, value, seconds = added.split()
        assert (action, value) == ("add", ATTACKER)
        assert 0 < int(seconds) <= 3600

        listed = httpx.get(
            f"{server.url}/v1/mitigations?ip={ATTACKER}", headers=server.headers(), timeout=10
        ).json()["items"]
        assert [m["action"] for m in listed] == ["block_ip"]  # one block for the burst
        lifted = httpx.delete(
            f"{server.url}/v1/mitigations/{listed[0]['mitigation_id']}",
            headers=server.headers(),
            timeout=10,
        )
        assert lifted.status_code == 200, lifted.text
        _wait_for("the bouncer to undo it", lambda: f"del {ATTACKER}" in "\n".join(lines()))
        assert [x.split()[0] for x in lines()] == ["add", "del"]
    finally:
        bouncer.terminate()
        bouncer.wait(timeout=10)
