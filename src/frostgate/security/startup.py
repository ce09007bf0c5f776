"""Startup invariants that need the network (F7): run by ``frostgate serve`` in ``prod``
and by ``frostgate config check``. Each check reports a problem instead of raising, so
the operator sees every problem at once; none of them is ever skipped or softened."""

from __future__ import annotations

import sqlalchemy as sa
from redis import Redis
from redis.exceptions import RedisError

from frostgate.config import Profile, Settings, startup_problems
from frostgate.security.peppers import load_peppers
from frostgate.store import is_migrated, open_database

__all__ = ["all_problems"]


def _database_problems(settings: Settings) -> list[str]:
    db = open_database(settings.database_url)
    try:
        with db.read.connect() as conn:
            if not is_migrated(db.read):
                return ["schema not current: run 'frostgate migrate' (or 'frostgate db init')"]
            if db.dialect != "postgresql":
                return []
            row = conn.execute(
                sa.text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            ).one()
            owns: int = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
                )
            ).scalar_one()
    except sa.exc.SQLAlchemyError as exc:
        return [f"the database is unreachable: {type(exc).__name__}"]
    finally:
        db.dispose()
    problems = []
    if row.rolsuper or row.rolbypassrls:
        problems.append("the application connects as a role that bypasses row-level security")
    if owns:
        problems.append("the application role owns tables; connect as the DML-only app role")
    return problems


def _redis_problems(settings: Settings) -> list[str]:
    if settings.rate_limit_backend != "redis" or not settings.redis_url:
        return []
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except RedisError as exc:
        return [f"the rate limiter's Redis is unreachable: {type(exc).__name__}"]
    finally:
        client.close()
    return []


def all_problems(settings: Settings) -> list[str]:
    """Settings problems, then (for prod) what the database and Redis report."""
    problems = startup_problems(settings)
    if settings.key_peppers or settings.profile is not Profile.PROD:
        try:
            load_peppers(settings)
        except ValueError as exc:
            problems.append(f"key peppers: {exc}")
    if settings.profile is Profile.PROD:
        if not settings.is_sqlite:
            problems += _database_problems(settings)
        problems += _redis_problems(settings)
    return problems
