"""The daemon's HTTP API: the CLI's only way in (route table in docs/ARCHITECTURE.md).

Loopback only, every route but ``/v1/health`` behind a bearer token: the admin token in
``run/token`` opens every route, the runners' token only ``POST /v1/events`` (see ``_auth``);
the codec server (``/v1/codec/decode``) also answers the managed Temporal web UI's origin (see ``_routes_codec``).
Errors answer ``{"detail": message, "hint": what to do}``; a bad payload answers 422 with
the path of each bad field (``body.agent: Field required``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._aio import cancel_and_wait
from .._telemetry import instrument_app
from ..store import open_store
from ..worker.events import SPOOL_DIR
from . import _verify
from ._auth import ADMIN, reader, require
from ._limits import BodyLimit
from ._metrics import Metrics, RequestMetrics
from ._reconcile import reconcile_loop
from ._replicas import follow_replicas
from ._retention import retention_loop
from ._routes_approvals import router as approvals_router
from ._routes_codec import router as codec_router
from ._routes_console import api_router as console_router
from ._routes_console import pages as console_pages
from ._routes_executions import events_router
from ._routes_executions import router as executions_router
from ._routes_resources import router as resources_router
from ._routes_sessions import router as sessions_router
from ._routes_tokens import router as tokens_router
from ._routes_usage import router as usage_router
from ._state import ApiError, ApiState, StateDep
from ._storage_errors import database_unreachable, storage_error
from .context import DaemonContext
from .events import EventHub, ingest_spool

log = logging.getLogger("stigmer.daemon.api")


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


class _Json(JSONResponse):
    """JSON with non-ASCII escaped: an error echoing a lone surrogate from a request must not become a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def _install_handlers(app: FastAPI, state: ApiState) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _Json({"detail": str(exc.detail), "hint": "check the method, the path and that the body is JSON "
                      "(routes: docs/ARCHITECTURE.md)"}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _Json(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(sqlite3.Error)
    @app.exception_handler(OSError)
    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        answer = storage_error(exc)
        if answer is None:
            raise exc
        log.error("storage failure on %s %s: %s", request.method, request.url.path, exc)
        return _Json(answer[1], status_code=answer[0])

    if state.store.shared:  # PostgreSQL: a connection lost or refused is a 503 to retry (the next call reconnects)
        import psycopg

        @app.exception_handler(psycopg.OperationalError)
        async def _database(request: Request, exc: Exception) -> JSONResponse:
            status, body = database_unreachable(exc, state.store.describe())
            log.error("database failure on %s %s: %s", request.method, request.url.path, body["detail"])
            return _Json(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": _field_path(e.get("loc", ())), "msg": e.get("msg", "invalid")} for e in exc.errors()]
        message = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        return _Json({"detail": f"invalid request: {message}", "hint": "fix the named fields and retry",
                      "errors": errors}, status_code=422)


def _public_routes(app: FastAPI) -> None:
    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}


def _info_routes(app: FastAPI, deps: list[Any]) -> None:
    @app.get("/v1/status", dependencies=deps)
    async def status(state: StateDep) -> dict[str, Any]:
        cfg = state.ctx.config
        shown = cfg.shown()
        llm = {key.split(".", 1)[1]: shown[key] for key in ("llm.provider", "llm.model", "llm.base_url")}
        ui_url = f"http://127.0.0.1:{cfg.temporal.ui_port}" if cfg.temporal.managed else None
        return {"components": state.ctx.components(), "llm": llm,
                "temporal": {"address": cfg.temporal.address, "namespace": cfg.temporal.namespace,
                             "managed": cfg.temporal.managed, "ui_url": ui_url},
                "task_queue": cfg.value("runner.task_queue"), "store": state.store.describe()}

    @app.get("/v1/config", dependencies=deps)
    async def config(state: StateDep) -> dict[str, Any]:
        return state.ctx.config.shown()


def create_app(ctx: DaemonContext) -> FastAPI:
    """Build the API over ``ctx``: opens the store now; while served, reconciles executions and applies retention."""
    store = open_store(ctx.database_url or ctx.store_path)
    held = ingest_spool(store, ctx.config.path("data") / SPOOL_DIR)  # a dead daemon's runners' last events
    state = ApiState(ctx=ctx, store=store, hub=EventHub(int(ctx.config.value("limits.subscriber_queue"))),
                     metrics=Metrics(store))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for event in held:  # spooled terminal events come from runners too: Temporal confirms them first
            _verify.submit(state, event)
        # Idempotent, so every replica of `stigmer server` runs them too: a terminal event is recorded once per
        # execution whoever records it first, and deleting what retention already deleted deletes nothing.
        tasks = [asyncio.create_task(reconcile_loop(state)), asyncio.create_task(retention_loop(state))]
        if store.shared:  # other replicas store events too: hear of them (team mode)
            tasks.append(asyncio.create_task(follow_replicas(state)))
        try:
            yield
        finally:
            for task in tasks:
                await cancel_and_wait(task)
            await _verify.stop_all(state)
            store.close()

    app = FastAPI(title="stigmer", version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.api = state
    app.add_middleware(BodyLimit, limit=ctx.config.value("limits.request_bytes"))  # 413 before any parsing
    app.add_middleware(RequestMetrics, metrics=state.metrics)  # outermost: counts the 413s too
    instrument_app(app)  # a span per request when OTEL_* asks for traces (stigmer._telemetry); else nothing
    admin, readers = [require(ADMIN)], [reader()]  # readers: the admin, and viewers on GET routes
    _install_handlers(app, state)
    _public_routes(app)
    _info_routes(app, readers)

    @app.get("/metrics", dependencies=readers)
    async def metrics() -> Response:
        """Prometheus' text format (``_metrics``); scrape with an admin or viewer token."""
        body, media_type = state.metrics.render()
        return Response(body, media_type=media_type)

    app.include_router(resources_router, prefix="/v1", dependencies=readers)
    app.include_router(executions_router, prefix="/v1", dependencies=readers)
    app.include_router(sessions_router, prefix="/v1", dependencies=readers)
    app.include_router(approvals_router, prefix="/v1", dependencies=readers)
    app.include_router(usage_router, prefix="/v1", dependencies=readers)
    app.include_router(tokens_router, prefix="/v1", dependencies=admin)
    app.include_router(events_router, prefix="/v1")  # its route admits the admin and runner tokens
    app.include_router(codec_router, prefix="/v1")  # the admin token, or the managed web UI's origin (decode only)
    app.include_router(console_router, prefix="/v1")  # login links (admin or viewer token), who am I (readers)
    app.include_router(console_pages)  # the web console's pages: a live console session, else "run stigmer console"
    return app
