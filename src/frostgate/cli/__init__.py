"""The ``frostgate`` command (Typer + Rich)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime, timedelta

import orjson
import sqlalchemy as sa
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from frostgate.cli import release_gate as gate_module
from frostgate.cli import verify as verify_module
from frostgate.cli.chaos import chaos
from frostgate.cli.db import app as db_app
from frostgate.cli.rules import policy_problems, rules_app
from frostgate.cli.simulate import simulate
from frostgate.config import Profile, get_settings, invalid_settings
from frostgate.config.allocator import limit_malloc_arenas
from frostgate.egress import client_from_settings
from frostgate.jobs import Anchorer
from frostgate.jobs.witness import WitnessPublisher, parse_witness_urls, store_failures
from frostgate.security import PLATFORM_SCOPES, ROUTES, TENANT_SCOPES, admin, parse_scopes
from frostgate.security.ledger_key import load_ledger_signer
from frostgate.security.peppers import load_peppers
from frostgate.security.routes import route_inventory_json
from frostgate.security.startup import all_problems
from frostgate.store import Database, is_migrated, open_database, upgrade
from frostgate.store import keys as key_repo
from frostgate.store import tenants as tenant_repo

__all__ = ["app", "main"]

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="FrostGate security decision service."
)
tenants_app = typer.Typer(no_args_is_help=True, help="Manage tenants.")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.command("verify")(verify_module.verify)
app.command("simulate")(simulate)
app.command("chaos")(chaos)
app.add_typer(rules_app, name="rules")
app.command("release-gate")(gate_module.release_gate)
app.command("ci-checks")(gate_module.ci_checks_command)
config_app = typer.Typer(no_args_is_help=True, help="Check the configuration.")
app.add_typer(config_app, name="config")

console = Console(stderr=True)
out = Console()

_TTL_RE = re.compile(r"(\d+)([smhdw])")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_ttl(text: str) -> timedelta:
    match = _TTL_RE.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter("use a number and a unit: 30s, 15m, 12h, 30d, 2w")
    seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
    if seconds == 0:
        raise typer.BadParameter("a lifetime must be longer than zero")
    if seconds > admin.MAX_KEY_TTL.total_seconds():
        raise typer.BadParameter(f"a key lives at most {admin.MAX_KEY_TTL.days} days")
    return timedelta(seconds=seconds)


def _schema_problems() -> list[str]:
    """Why the database cannot be served from, if it cannot: unreachable, or behind."""
    try:
        current = is_migrated(_db().read)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc)
        return [f"database unreachable: {reason.strip().splitlines()[0]}"]
    if not current:
        return ["schema not current: run 'frostgate migrate' (or 'frostgate db init')"]
    return []


def _db() -> Database:
    return open_database(get_settings().database_url)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=1)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = _db()
    upgrade(db.write)
    console.print("schema is current")


@app.command()
def bootstrap() -> None:
    """First run: on an empty database create tenant 'demo' and a demo key with every
    tenant scope, print the key once and save it to <data_dir>/demo-key (mode 0600)."""
    settings = get_settings()
    db = _db()
    if admin.tenant_count(db) > 0:
        console.print("database already has tenants; nothing to bootstrap")
        return
    admin.create_tenant(db, "demo", "Demo tenant")
    issued = admin.mint_key(
        db,
        load_peppers(settings),
        tenant_id="demo",
        scopes=TENANT_SCOPES,
        label="demo key (bootstrap)",
    )
    path = settings.data_dir / "demo-key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(issued.token + "\n")
    os.chmod(path, 0o600)
    console.print(f"created tenant [bold]demo[/bold]; demo key saved to {path} (shown once):")
    out.print(issued.token, soft_wrap=True)


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default FG_HOST, 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (default FG_PORT, 8080)"),
    workers: int = typer.Option(1, min=1, help="Worker processes"),
) -> None:
    """Serve the API."""
    import uvicorn

    from frostgate.security.connections import GuardedHttpToolsProtocol

    settings = get_settings()
    problems = all_problems(settings) + policy_problems(settings)
    if not problems:
        problems = _schema_problems()
    if problems:
        for problem in problems:
            console.print(f"[red]refusing to start:[/red] {problem}")
        raise typer.Exit(code=2)
    limit_malloc_arenas(settings.malloc_arena_max)  # before the server starts its threads
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(
        f"serving on http://{bind_host}:{bind_port} ({workers} worker(s), profile "
        f"{settings.profile.value}); ready when GET /health/ready answers 200",
        soft_wrap=True,
    )
    uvicorn.run(
        "frostgate.api:build_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        http=GuardedHttpToolsProtocol,
        ws="none",  # no WebSocket routes; see security/connections.py
    )


@tenants_app.command("create")
def tenants_create(tenant_id: str, name: str = typer.Option(None, help="Display name")) -> None:
    """Create a tenant."""
    try:
        tenant = admin.create_tenant(_db(), tenant_id, name)
    except (ValueError, FileExistsError) as exc:
        _fail(str(exc))
        return
    out.print(f"created tenant {tenant.tenant_id}")


_JSON_OPTION = typer.Option(False, "--json", help="One JSON array on stdout, every field")


@tenants_app.command("list")
def tenants_list(as_json: bool = _JSON_OPTION) -> None:
    """List tenants."""
    with _db().read.connect() as conn:
        views = [admin.tenant_view(t) for t in tenant_repo.list_tenants(conn)]
    if as_json:
        _print_json(views)
        return
    table = Table("tenant", "name", "status", "quota", "created")
    for v in views:
        quota = v["daily_event_quota"]
        table.add_row(
            v["tenant_id"],
            v["name"],
            v["status"],
            "-" if quota is None else str(quota),
            _table_time(v["created_at"]),
        )
    out.print(table)


def _table_time(instant: str | None) -> str:
    """An instant from a view, to the second and in UTC (``--json`` has it in full)."""
    if instant is None:
        return "-"
    return datetime.fromisoformat(instant).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


@keys_app.command("mint")
def keys_mint(
    tenant: str = typer.Option(None, help="Tenant id (omit with --platform)"),
    scopes: str = typer.Option(..., help="Comma-separated scopes"),
    ttl: str = typer.Option(None, help="Lifetime, e.g. 30d"),
    label: str = typer.Option("", help="A note for operators"),
    platform: bool = typer.Option(False, "--platform", help="Mint a platform key"),
) -> None:
    """Mint a key; the key alone is printed on the last line of stdout."""
    if platform == (tenant is not None):
        _fail("give exactly one of --tenant or --platform")
    try:
        scope_set = parse_scopes(scopes, PLATFORM_SCOPES if platform else TENANT_SCOPES)
        issued = admin.mint_key(
            _db(),
            load_peppers(get_settings()),
            tenant_id=tenant,
            scopes=scope_set,
            kind="platform" if platform else "tenant",
            ttl=_parse_ttl(ttl) if ttl else None,
            label=label,
        )
    except (ValueError, LookupError) as exc:
        _fail(str(exc))
        return
    console.print(f"minted key {issued.key_id} for {tenant or 'the platform'}; it is shown once:")
    sys.stdout.write(issued.token + "\n")


@keys_app.command("list")
def keys_list(
    tenant: str = typer.Option(None, help="Only this tenant's keys"), as_json: bool = _JSON_OPTION
) -> None:
    """List keys (never secrets or hashes)."""
    with _db().read.connect() as conn:
        views = [admin.key_view(k) for k in key_repo.list_keys(conn, tenant)]
    if as_json:
        _print_json(views)
        return
    table = Table(
        Column("key_id", no_wrap=True, min_width=16),
        "tenant",
        "kind",
        # Spaces between scopes so a narrow terminal wraps the list instead of cutting it.
        Column("scopes", overflow="fold"),
        "expires",
        "revoked",
        "label",
    )
    for v in views:
        table.add_row(
            v["key_id"],
            v["tenant_id"] or "-",
            v["kind"],
            " ".join(v["scopes"]),
            _table_time(v["expires_at"]),
            _table_time(v["revoked_at"]),
            v["label"],
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke one key (effective in every process within a second)."""
    if not admin.revoke_key(_db(), key_id):
        _fail(f"no active key {key_id!r}")
    out.print(f"revoked {key_id}")


@app.command()
def anchor() -> None:
    """Sign a checkpoint for every ledger stream that grew (once), after checking it."""
    settings = get_settings()
    db = _db()
    anchorer = Anchorer(
        db,
        load_ledger_signer(settings),
        origin_prefix=settings.ledger_origin,
        lock_path=settings.data_dir / "anchor.lock" if settings.is_sqlite else None,
        export_dir=settings.anchor_export_dir,
    )
    outcomes = anchorer.run_once()
    table = Table("stream", "size", "status", "detail")
    for outcome in outcomes:
        table.add_row(outcome.stream, str(outcome.size), outcome.status, outcome.detail)
    out.print(table)
    urls = parse_witness_urls(settings.anchor_witness_urls)
    if urls:
        publisher = WitnessPublisher(
            client_from_settings(settings), urls, on_failure=store_failures(db)
        )
        for result in asyncio.run(publisher.publish(outcomes)):
            if not result.ok:
                console.print(
                    f"witness {result.witness} ({result.host}) did not take "
                    f"{result.stream}@{result.size}: {result.reason}",
                    markup=False,
                )
    if anchorer.problems:
        raise typer.Exit(code=1)


@app.command()
def routes(json_output: bool = typer.Option(False, "--json", help="Machine-readable")) -> None:
    """Print the declared route inventory: method, path, scopes, key kinds, tenancy."""
    if json_output:
        sys.stdout.write(route_inventory_json() + "\n")
        return
    table = Table("method", "path", "scopes", "key kinds", "tenant data", "public")
    for spec in ROUTES:
        table.add_row(
            spec.method,
            spec.path,
            ",".join(sorted(spec.scopes)) or "-",
            ",".join(sorted(spec.kinds)) or "-",
            "yes" if spec.tenant_data else "no",
            "yes" if spec.public else "no",
        )
    out.print(table)


@config_app.command("check")
def config_check(
    profile: Profile = typer.Option(None, help="Check as this profile (default FG_PROFILE)"),
) -> None:
    """Print every startup problem of the current configuration (exit 1 if any)."""
    settings = get_settings()
    if profile is not None:
        settings = settings.model_copy(update={"profile": profile})
    problems = all_problems(settings) + policy_problems(settings)
    for problem in problems:
        out.print(f"problem: {problem}", soft_wrap=True)
    if problems:
        raise typer.Exit(code=1)
    out.print(f"configuration ok for profile {settings.profile.value}")


def main() -> None:
    try:
        app()
    except ValidationError as exc:  # a bad FG_* value, met when a command read the settings
        if exc.title != "Settings":
            raise
        for line in invalid_settings(exc):
            console.print(f"[red]configuration:[/red] {line}", soft_wrap=True)
        raise SystemExit(2) from None
