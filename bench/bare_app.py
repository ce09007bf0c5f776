"""The bare FastAPI baseline the benchmark compares FrostGate against.

One async endpoint per FrostGate hot route, each reading the body, parsing it with
``orjson.loads`` into the same event (or batch) and answering a small JSON object: no
auth, no evaluation, no storage. Served by uvicorn in one process with the settings
``frostgate serve`` uses, so the ratio FrostGate / bare isolates FrostGate's own cost.

Run: ``python bench/bare_app.py --port 8099``.
"""

from __future__ import annotations

import argparse

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


def _json(data: object, status_code: int = 200) -> Response:
    return Response(
        content=orjson.dumps(data), status_code=status_code, media_type="application/json"
    )


@app.get("/health/ready")
async def ready() -> Response:
    return _json({"status": "ready"})


@app.post("/v1/defend")
async def defend(request: Request) -> Response:
    event = orjson.loads(await request.body())
    if not isinstance(event, dict):
        return _json({"error_code": "EVENT_INVALID"}, 422)
    return _json(
        {"event_id": event.get("event_id"), "event_type": event.get("event_type"), "ok": True}
    )


@app.post("/v1/ingest")
async def ingest(request: Request) -> Response:
    batch = orjson.loads(await request.body())
    events = batch.get("events") if isinstance(batch, dict) else None
    if not isinstance(events, list):
        return _json({"error_code": "VALIDATION_FAILED"}, 422)
    return _json({"counts": {"created": len(events), "replayed": 0, "conflict": 0}})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same uvicorn settings as `frostgate serve` (src/frostgate/cli).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
