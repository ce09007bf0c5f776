"""Serving the hot routes straight from ASGI.

``POST /v1/defend`` and ``POST /v1/ingest`` are most of the traffic, and enforcement
points poll ``/v1/mitigations/stream``, ``/crowdsec/v1/decisions/stream`` and
``/crowdsec/v1/decisions`` every few seconds. Their handlers take the request and
nothing else (they read and bound the body, or read the query, themselves) and return a
finished response, so FastAPI's per-request work for them (its middleware stack,
routing through the included routers, dependency solving, the exit stack) does nothing
but cost: about a third of the event loop's time per ``/v1/defend``, and most of a
delta pull's (docs/benchmarks.md). :class:`DirectRoutes` sits between the gate and
FastAPI and calls those handlers itself; every other route goes to FastAPI as before,
and FastAPI still declares these (OpenAPI, the route-table check at startup).

Nothing the gate does is skipped: it runs before this layer for every request. A route
is taken only if its handler really needs no FastAPI machinery (:func:`direct_handlers`
refuses one with parameters, dependencies, a path template or a response model), so a
later change to such a handler fails at startup instead of being served without what
it declared.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from frostgate.errors import FrostGateError

__all__ = ["DirectRoutes", "direct_handlers"]

Handler = Callable[[Request], Awaitable[Response]]
ErrorRenderer = Callable[[Request, FrostGateError], Response]


def direct_handlers(
    router: APIRouter, wanted: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Handler]:
    """The handlers of ``wanted`` (method, exact path) routes of ``router``, which the app
    includes without a prefix (were it prefixed, the route table check at startup would
    find these paths unmounted); RuntimeError if one is missing or takes anything but
    the request."""
    found: dict[tuple[str, str], Handler] = {}
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    for method, path in wanted:
        route = next((r for r in routes if r.path == path and method in (r.methods or ())), None)
        if route is None:
            raise RuntimeError(f"direct route {method} {path} is not in its router")
        d = route.dependant
        takes_more = (
            d.path_params
            or d.query_params
            or d.header_params
            or d.cookie_params
            or d.body_params
            or d.dependencies
            or route.dependencies
            or d.request_param_name is None
        )
        if takes_more or route.response_model is not None or "{" in path:
            raise RuntimeError(f"direct route {method} {path} needs FastAPI's machinery")
        found[(method, path)] = route.endpoint
    return found


class DirectRoutes:
    """Calls the direct handlers; passes everything else to FastAPI. A
    :class:`FrostGateError` is rendered by ``render_error``, exactly as FastAPI's
    exception handler renders it; any other exception reaches the gate, which answers
    ``INTERNAL`` without its text."""

    def __init__(
        self, app: FastAPI, handlers: dict[tuple[str, str], Handler], render_error: ErrorRenderer
    ) -> None:
        self.app = app
        self.handlers = handlers
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.handlers.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Request.app (and so the services) reads
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except FrostGateError as exc:
            response = self.render_error(request, exc)
        await response(scope, receive, send)
