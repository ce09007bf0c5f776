"""Every declared route, against every kind of bad credential: the exact status, and no data of
another tenant in any answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from frostgate.security import PLATFORM_SCOPES, ROUTES, TENANT_SCOPES, RouteSpec, admin
from frostgate.security.peppers import load_peppers
from frostgate.store import keys as key_repo
from tests.conftest import Env

PRIVATE = [r for r in ROUTES if not r.public]
EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}


def _id(spec: RouteSpec) -> str:
    return f"{spec.method} {spec.path}"


def _body(env: Env, spec: RouteSpec) -> dict[str, Any]:
    """An event as the body where the route takes one; none where it takes none (the
    gate refuses a body there before anything else is checked)."""
    if (spec.method, spec.path) in env.client.app.bodyless:  # type: ignore[attr-defined]
        return {}
    return {"json": EVENT}


def _fill(spec: RouteSpec, ids: dict[str, str]) -> str:
    return (
        spec.path.replace("{event_id}", ids["event_id"])
        .replace("{key_id}", ids["key_id"])
        .replace("{tenant_id}", ids["tenant_id"])
    )


@pytest.fixture
def world(env: Env) -> dict[str, str]:
    """Credentials of every kind for tenant acme, and globex's records to aim at."""
    peppers = load_peppers(env.settings)
    tokens: dict[str, str] = {}

    def mint(name: str, **kwargs: object) -> admin.IssuedKey:
        issued = admin.mint_key(env.db, peppers, **kwargs)  # type: ignore[arg-type]
        tokens[name] = issued.token
        return issued

    mint("revoked", tenant_id="acme", scopes=TENANT_SCOPES)
    admin.revoke_key(env.db, tokens["revoked"].split("_")[1])
    expired = mint("expired", tenant_id="acme", scopes=TENANT_SCOPES)
    with env.db.write.begin() as conn:
        key_repo.set_expiry(conn, expired.key_id, datetime.now(UTC) - timedelta(seconds=5))
    mint("canary", tenant_id="acme", kind="canary", scopes=TENANT_SCOPES | PLATFORM_SCOPES)
    secret_event = dict(EVENT, event_id="globex-secret-event", source="globex-only-sensor")
    r = env.client.post("/v1/defend", json=secret_event, headers=env.headers("globex"))
    assert r.status_code == 200
    globex_key = env.client.post(
        "/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers("globex")
    ).json()
    tokens["globex_key_id"] = globex_key["key_id"]
    return tokens


@pytest.mark.parametrize("spec", PRIVATE, ids=_id)
@pytest.mark.parametrize(
    ("credential", "status", "code"),
    [
        (None, 401, "AUTH_REQUIRED"),
        ("forged", 401, "AUTH_REQUIRED"),
        ("revoked", 401, "AUTH_REQUIRED"),
        ("expired", 401, "AUTH_REQUIRED"),
        ("canary", 401, "AUTH_REQUIRED"),
        ("wrong_scope", 403, "SCOPE_DENIED"),
    ],
)
def test_bad_credentials(
    env: Env, world: dict[str, str], spec: RouteSpec, credential: str | None, status: int, code: str
) -> None:
    ids = {
        "event_id": "globex-secret-event",
        "key_id": world["globex_key_id"],
        "tenant_id": "globex",
    }
    headers: dict[str, str] = {}
    if credential == "forged":
        headers["Authorization"] = "Bearer fgk_" + "1" * 16 + "_" + "B" * 43
    elif credential == "wrong_scope":
        kind = "platform" if spec.kinds == frozenset({"platform"}) else "tenant"
        pool = PLATFORM_SCOPES if kind == "platform" else TENANT_SCOPES
        token = admin.mint_key(
            env.db,
            load_peppers(env.settings),
            tenant_id=None if kind == "platform" else "acme",
            kind=kind,
            scopes=pool - spec.scopes,
        ).token
        headers["Authorization"] = f"Bearer {token}"
    elif credential is not None:
        headers["Authorization"] = f"Bearer {world[credential]}"
    r = env.client.request(spec.method, _fill(spec, ids), headers=headers, **_body(env, spec))
    assert r.status_code == status
    assert r.json()["error_code"] == code
    assert "globex" not in r.text


# The SSE stream never ends for a valid key, and the in-process test client waits for
# the whole body: its tenant isolation is proven against a real server in tests/e2e.
ANSWERING = [r for r in PRIVATE if r.path != "/v1/feed/stream"]


@pytest.mark.parametrize("spec", ANSWERING, ids=_id)
def test_foreign_tenant_key_sees_nothing_of_globex(
    env: Env, world: dict[str, str], spec: RouteSpec
) -> None:
    """An acme key aimed at globex's records: 404 for a named record, 403 for a tenant
    route reached with a platform-only key kind, and never a byte of globex's data."""
    ids = {
        "event_id": "globex-secret-event",
        "key_id": world["globex_key_id"],
        "tenant_id": "globex",
    }
    who = "platform" if spec.kinds == frozenset({"platform"}) else "acme"
    r = env.client.request(
        spec.method, _fill(spec, ids), headers=env.headers(who), **_body(env, spec)
    )
    if "{event_id}" in spec.path or "{key_id}" in spec.path:
        assert r.status_code == 404, r.text
        assert r.json()["error_code"] == "NOT_FOUND"
    else:
        assert r.status_code < 500, r.text
    if who == "acme":
        assert "globex-secret-event" not in r.text
        assert "globex-only-sensor" not in r.text
        assert world["globex_key_id"] not in r.text


@pytest.mark.parametrize("spec", [r for r in PRIVATE if r.tenant_data], ids=_id)
def test_platform_key_never_reads_tenant_data(
    env: Env, world: dict[str, str], spec: RouteSpec
) -> None:
    ids = {
        "event_id": "globex-secret-event",
        "key_id": world["globex_key_id"],
        "tenant_id": "globex",
    }
    r = env.client.request(
        spec.method, _fill(spec, ids), headers=env.headers("platform"), **_body(env, spec)
    )
    assert r.status_code == 403
    assert r.json()["error_code"] == "SCOPE_DENIED"
