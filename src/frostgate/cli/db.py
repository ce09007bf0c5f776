"""``frostgate db``: PostgreSQL roles, grants and row-level security (audit F9).

Thin layer over :func:`frostgate.store.roles.init_roles`; see docs/operations.md.
"""

from __future__ import annotations

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape

from frostgate.store.roles import DEFAULT_APP, DEFAULT_OWNER, RoleSetupError, init_roles

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True, help="PostgreSQL roles, grants and row-level security (F9)."
)
console = Console(stderr=True)
out = Console()


@app.callback()
def _db() -> None:
    """PostgreSQL roles, grants and row-level security (F9)."""


@app.command("init")
def init(
    admin_url: str = typer.Option(
        ...,
        "--admin-url",
        envvar="FG_DB_ADMIN_URL",
        help="Superuser URL on any database of the cluster,"
        " e.g. postgresql://postgres@127.0.0.1:5432/postgres",
        show_default=False,
    ),
    database: str | None = typer.Option(
        None, "--database", help="Database to set up (default: the admin URL's database)"
    ),
    owner: str = typer.Option(DEFAULT_OWNER, "--owner", help="Role that owns the schema"),
    app_role: str = typer.Option(DEFAULT_APP, "--app", help="Role the service logs in as"),
    app_password: str | None = typer.Option(
        None,
        "--app-password",
        envvar="FG_DB_APP_PASSWORD",
        help="Set the app role's password (prefer the env var)",
        show_default=False,
    ),
    owner_password: str | None = typer.Option(
        None,
        "--owner-password",
        envvar="FG_DB_OWNER_PASSWORD",
        help="Give the owner LOGIN with this password (default: NOLOGIN)",
        show_default=False,
    ),
    create_database: bool = typer.Option(
        False, "--create-database", help="Create the database (owned by the owner) if absent"
    ),
) -> None:
    """Create the roles, migrate as the owner, grant the app role its DML only.

    Idempotent: run it again after every upgrade (instead of `frostgate migrate`).
    """
    try:
        report = init_roles(
            admin_url,
            database,
            owner,
            app_role,
            app_password,
            owner_password=owner_password,
            create_database=create_database,
        )
    except (RoleSetupError, sa.exc.SQLAlchemyError) as exc:
        detail = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        console.print(f"[red]db init failed:[/red] {detail}")
        raise typer.Exit(code=1) from None
    out.print(f"[bold]db init[/bold] {report.database}")
    for action in report.actions:
        out.print(f"  [green]\u2713[/green] {escape(action)}", soft_wrap=True)
    url = sa.make_url(admin_url.replace("postgres://", "postgresql://", 1)).set(
        drivername="postgresql", username=report.app, password=None, database=report.database
    )
    out.print(
        f"[green]done.[/green] Point the service at the app role: "
        f"FG_DB_URL={url.render_as_string(hide_password=False)}"
        + ("" if app_password is None else " (plus its password)"),
        soft_wrap=True,
    )
