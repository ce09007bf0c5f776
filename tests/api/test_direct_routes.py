"""The decision routes are called without FastAPI's machinery (api/direct.py); a handler
that needs that machinery is refused at startup, never served without it."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from frostgate.api import routers_decide
from frostgate.api.context import app_services
from frostgate.api.direct import direct_handlers
from tests.conftest import Env


class _Model(BaseModel):
    n: int


def _dependency() -> int:
    return 1


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/plain")
    async def plain(request: Request) -> Response:
        return Response(b"")

    @router.post("/query")
    async def query(request: Request, limit: int = 10) -> Response:
        return Response(b"")

    @router.post("/dependency")
    async def dependency(request: Request, n: int = Depends(_dependency)) -> Response:
        return Response(b"")

    @router.post("/item/{item_id}")
    async def item(request: Request, item_id: str) -> Response:
        return Response(b"")

    @router.post("/model", response_model=_Model)
    async def model(request: Request) -> Response:
        return Response(b"")

    @router.post("/body")
    async def body(payload: _Model) -> Response:
        return Response(b"")

    return router


def test_a_request_only_handler_is_taken() -> None:
    handlers = direct_handlers(_router(), [("POST", "/plain")])
    assert list(handlers) == [("POST", "/plain")]


@pytest.mark.parametrize("path", ["/query", "/dependency", "/item/{item_id}", "/model", "/body"])
def test_a_handler_that_needs_fastapi_is_refused(path: str) -> None:
    with pytest.raises(RuntimeError, match="needs FastAPI"):
        direct_handlers(_router(), [("POST", path)])


def test_an_unknown_route_or_method_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not in its router"):
        direct_handlers(_router(), [("POST", "/missing")])
    with pytest.raises(RuntimeError, match="not in its router"):
        direct_handlers(_router(), [("GET", "/plain")])


def test_the_decision_routes_qualify() -> None:
    wanted = [("POST", "/v1/defend"), ("POST", "/v1/ingest")]
    assert set(direct_handlers(routers_decide.router, wanted)) == set(wanted)


def test_errors_on_the_direct_path_keep_the_error_contract(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FrostGateError renders as on any FastAPI route; anything else is a bare
    INTERNAL with a request id and none of the exception's text."""
    wrong_type = env.client.post(
        "/v1/defend", content=b"{}", headers={**env.headers(), "content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert set(wrong_type.json()) == {"error_code", "detail", "request_id"}
    assert wrong_type.json()["request_id"] == wrong_type.headers["x-request-id"]

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("db password is hunter2")

    monkeypatch.setattr(app_services(env.client.app).decisions, "decide", broken)
    failed = env.client.post("/v1/defend", json={"source": "s"}, headers=env.headers())
    assert failed.status_code == 500
    assert failed.json()["error_code"] == "INTERNAL"
    assert "hunter2" not in failed.text
