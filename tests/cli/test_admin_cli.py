"""``frostgate tenants list`` and ``frostgate keys list/mint`` as an operator runs them
(the real command, in its own process): complete lists, instants with their zone, and a
refusal that says what was wrong."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from frostgate.config import Settings
from frostgate.security import TENANT_SCOPES
from frostgate.store import Database
from tests.e2e.served import FG, served_env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FG, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _mint_full_key(env: dict[str, str]) -> str:
    assert _cli(env, "tenants", "create", "acme").returncode == 0
    minted = _cli(
        env, "keys", "mint", "--tenant", "acme", "--scopes", ",".join(TENANT_SCOPES), "--ttl", "30d"
    )
    assert minted.returncode == 0, minted.stderr
    return minted.stdout.strip().splitlines()[-1]


def test_lists_as_json_hold_every_field_and_zoned_instants(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = served_env(settings, tmp_path)
    key = _mint_full_key(env)
    listed = _cli(env, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert key.split("_", 2)[2] not in listed.stdout
    [record] = [k for k in json.loads(listed.stdout) if k["key_id"] == key.split("_")[1]]
    assert record["scopes"] == sorted(TENANT_SCOPES)
    assert record["active"] is True
    expires = datetime.fromisoformat(record["expires_at"])
    assert expires.utcoffset() == timedelta(0)
    assert timedelta(days=29) < expires - datetime.fromisoformat(record["created_at"])
    [tenant] = json.loads(_cli(env, "tenants", "list", "--json").stdout)
    assert tenant["tenant_id"] == "acme"
    assert datetime.fromisoformat(tenant["created_at"]).utcoffset() == timedelta(0)


def test_the_key_table_shows_every_scope(settings: Settings, db: Database, tmp_path: Path) -> None:
    """The scopes column was cut off (even at 250 columns): an operator could not see
    what a key may do."""
    env = served_env(settings, tmp_path, COLUMNS="120")
    _mint_full_key(env)
    table = _cli(env, "keys", "list").stdout
    shown = set(re.findall(r"[a-z]+:[a-z]+", table))
    assert shown >= TENANT_SCOPES
    # Instants to the second, marked UTC (they printed without any zone).
    instant = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
    assert re.search(instant, table)
    assert re.search(instant, _cli(env, "tenants", "list").stdout)


def test_a_platform_scope_on_a_tenant_key_is_named_as_such(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = served_env(settings, tmp_path, COLUMNS="200")
    assert _cli(env, "tenants", "create", "acme").returncode == 0
    refused = _cli(env, "keys", "mint", "--tenant", "acme", "--scopes", "feed:read,tenants:admin")
    assert refused.returncode == 1
    assert "platform scopes only: tenants:admin" in refused.stderr
    typo = _cli(env, "keys", "mint", "--tenant", "acme", "--scopes", "feed:raed")
    assert "unknown scopes: feed:raed" in typo.stderr


def test_a_bad_setting_is_named_as_set_not_a_traceback(tmp_path: Path) -> None:
    """``FG_PORT=abc frostgate config check`` (and every other command) crashed with a
    traceback naming the internal field ``port``."""
    env = {**served_env(Settings(), tmp_path), "FG_PORT": "abc", "FG_KEY_PEPPERS": "secret-x"}
    for args in (("config", "check"), ("keys", "list")):
        r = _cli(env, *args)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert "FG_PORT: Input should be a valid integer" in r.stderr


def test_a_key_lifetime_out_of_range_is_refused_plainly(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = served_env(settings, tmp_path)
    assert _cli(env, "tenants", "create", "acme").returncode == 0
    for ttl, reason in (("99999999d", "at most 3650 days"), ("0d", "longer than zero")):
        r = _cli(env, "keys", "mint", "--tenant", "acme", "--scopes", "feed:read", "--ttl", ttl)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr
        assert reason in r.stderr
