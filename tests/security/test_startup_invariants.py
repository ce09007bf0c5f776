"""F7 and F8-style switches: ``prod`` refuses to start on any unsafe setting, listing
every problem; there is no switch that softens a control."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from frostgate.api import build_app
from frostgate.config import Profile, Settings, startup_problems
from frostgate.ledger.note import generate_signing_key
from frostgate.security.startup import all_problems
from tests.conftest import PgUrls

_LEDGER_KEY = generate_signing_key("frostgate.test")[0]
GOOD_PEPPER = "p1:" + "5f1c9a0be37d4e2681f0c3a97b6d52e4" * 2


def _prod(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "profile": Profile.PROD,
        "data_dir": tmp_path,
        "db_url": "postgresql://frostgate_app@127.0.0.1:5432/frostgate",
        "key_peppers": GOOD_PEPPER,
        "rate_limit_backend": "redis",
        "replay_cache_backend": "redis",
        "window_backend": "redis",
        "redis_url": "redis://127.0.0.1:6379/0",
        "cors_origins": "https://console.example",
        "ledger_signing_key": _LEDGER_KEY,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def test_a_safe_prod_configuration_has_no_settings_problem(tmp_path: Path) -> None:
    assert startup_problems(_prod(tmp_path)) == []


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"db_url": ""}, "PostgreSQL"),
        ({"key_peppers": ""}, "FG_KEY_PEPPERS"),
        ({"key_peppers": "p1:" + "ab" * 32}, "random"),
        ({"key_peppers": "p1:" + "1f" * 8}, "32 random bytes"),
        ({"rate_limit_backend": "memory"}, "Redis rate limiter"),
        ({"redis_url": ""}, "Redis rate limiter"),
        # One process's memory: with several, a replayed delivery was accepted once per
        # worker, and brute-force counts split across workers.
        ({"replay_cache_backend": "memory"}, "FG_REPLAY_CACHE_BACKEND=redis"),
        ({"window_backend": "memory"}, "FG_WINDOW_BACKEND=redis"),
        ({"cors_origins": "*"}, "CORS"),
        ({"cors_origins": "http://console.example"}, "https://"),
        ({"ledger_signing_key": ""}, "FG_LEDGER_SIGNING_KEY"),
        ({"egress_allow_hosts": "receiver.internal:8080"}, "FG_EGRESS_ALLOW_HOSTS"),
    ],
)
def test_each_unsafe_setting_is_refused_in_prod(
    tmp_path: Path, overrides: dict[str, object], needle: str
) -> None:
    problems = startup_problems(_prod(tmp_path, **overrides))
    assert any(needle in p for p in problems), problems
    dev = _prod(tmp_path, **overrides).model_copy(update={"profile": Profile.DEV})
    assert startup_problems(dev) == []


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    problems = startup_problems(
        _prod(tmp_path, db_url="", key_peppers="", rate_limit_backend="memory", cors_origins="*")
    )
    assert len(problems) >= 4


def test_prod_refuses_a_role_that_bypasses_rls(tmp_path: Path, pg_urls: PgUrls | None) -> None:
    if pg_urls is None:
        pytest.skip("needs PostgreSQL (FG_TEST_DB_URL)")
    problems = all_problems(_prod(tmp_path, db_url=pg_urls.admin))  # a superuser
    assert any("bypasses row-level security" in p for p in problems), problems
    problems = all_problems(_prod(tmp_path, db_url=pg_urls.app))  # `db init`'s app role
    assert not any("row-level security" in p for p in problems), problems


def test_prod_refuses_an_unreachable_redis(tmp_path: Path) -> None:
    problems = all_problems(_prod(tmp_path, redis_url="redis://127.0.0.1:1/0", db_url=""))
    assert any("Redis is unreachable" in p for p in problems), problems


def test_serve_exits_listing_every_problem(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
    env.update(FG_PROFILE="prod", FG_DATA_DIR=str(tmp_path), FG_CORS_ORIGINS="*")
    result = subprocess.run(
        [sys.executable, "-m", "frostgate.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    for needle in ("PostgreSQL", "FG_KEY_PEPPERS", "Redis rate limiter", "CORS"):
        assert needle in result.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        {"trusted_proxy_cidrs": "10.0.0.0/8,not-a-cidr"},
        {"key_peppers": "p1:nothex"},
        {"egress_allow_hosts": "receiver.test"},
    ],
)
def test_broken_security_settings_fail_loudly_not_softly(
    tmp_path: Path, overrides: dict[str, object]
) -> None:
    """F7: a security component that cannot be built stops the app; it is never skipped."""
    settings = Settings(profile=Profile.TEST, data_dir=tmp_path, **overrides)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"does not appear to be|hex|host:port"):
        build_app(settings)
