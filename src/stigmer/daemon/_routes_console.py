"""The web console: its login, its pages and the two API routes only it needs (see ``_console_auth``).

``stigmer console`` asks ``POST /v1/console/login-links`` (an admin or viewer token) for a one-time code that lives
60 s; the link ``/console/login?code=...`` trades it for a console session cookie and redirects to the console, so
the code is spent before the address stays anywhere (history, logs), and no token is ever in a URL. Every page is a
client of the API like the CLI: the JavaScript under ``console/static/`` calls the same ``/v1`` routes, with the
cookie instead of a bearer token. The console's HTML is served only to a live session; without one, a page that
says to run ``stigmer console``.
"""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ._auth import ADMIN, VIEWER, Principal, reader, require
from ._console_auth import COOKIE, COOKIE_PATHS, check_same_origin, console_principal
from ._state import ApiError, StateDep

STATIC = Path(__file__).parent / "console" / "static"
api_router = APIRouter()
pages = APIRouter(include_in_schema=False)

# Scripts and styles from this origin only, no inline script, no framing, no form posting elsewhere: what a model
# writes is shown as text (the pages never use innerHTML), and this is the second line of defence.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every file the console ships, read once: only these names are served (no path from a request reaches the
    file system)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            kind = "text/javascript" if path.suffix == ".js" else mimetypes.guess_type(path.name)[0]
            files[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), kind or "application/octet-stream")
    return files


_FILES = _load_static()


@api_router.post("/console/login-links", status_code=201)
async def login_link(request: Request, state: StateDep,
                     principal: Annotated[Principal, require(ADMIN, VIEWER)]) -> dict[str, Any]:
    """A one-time login code for the web console (60 s), for the role of the token that asks: a viewer's console
    reads only. ``path`` is the link to open on this API's address."""
    if principal.via == "console":
        raise ApiError(403, "a console session may not make login links", "run `stigmer console` with a token")
    code, expires_at = state.store.create_console_code(principal.role, principal.source)
    return {"path": f"/console/login?code={code}", "role": principal.role, "expires_at": expires_at}


@api_router.get("/console/session")
async def whoami(principal: Annotated[Principal, reader()]) -> dict[str, Any]:
    """Who the caller is: role, and whether by a token or a console session (the console hides what its role may
    not do)."""
    return {"role": principal.role, "via": principal.via}


def _page(body: str, status: int) -> HTMLResponse:
    html = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>stigmer console</title>"
            "<link rel=stylesheet href=/console/static/style.css></head><body class=plain><main class=notice>"
            f"{body}</main></body></html>")
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _login_needed(why: str, status: int = 401) -> HTMLResponse:
    return _page(f"<h1>stigmer console</h1><p>{why}</p><p>Run <code>stigmer console</code> in a terminal: it opens "
                 "the console with a new login link (each link works once, for 60 seconds).</p>", status)


@pages.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@pages.get("/console")
async def console_bare() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@pages.get("/console/")
async def console_index(request: Request) -> Response:
    if console_principal(request) is None:
        return RedirectResponse("/console/login", status_code=303)
    body, kind = _FILES["index.html"]
    return Response(body, media_type=kind, headers=PAGE_HEADERS)


@pages.get("/console/login")
async def console_login(request: Request, state: StateDep, code: str | None = None) -> Response:
    """Trade a one-time code for a console session: set the cookie, send the browser to the console."""
    if not code:
        return _login_needed("You are not logged in to this stigmer's console.")
    redeemed = state.store.redeem_console_code(code) if len(code) <= 100 else None
    if redeemed is None:
        return _login_needed("This login link has been used already or has expired.")
    secret, session = redeemed
    response = RedirectResponse("/console/", status_code=303)
    response.headers.update({k: v for k, v in PAGE_HEADERS.items() if k != "Content-Security-Policy"})
    max_age = int(session["expires_at"] - time.time())
    for path in COOKIE_PATHS:
        response.set_cookie(COOKIE, secret, max_age=max_age, path=path, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
    return response


@pages.post("/console/logout")
async def console_logout(request: Request, state: StateDep) -> Response:
    check_same_origin(request)
    secret = request.cookies.get(COOKIE)
    if secret:
        state.store.end_console_session(secret)
    response = _login_needed("You have logged out.", 200)
    for path in COOKIE_PATHS:
        response.delete_cookie(COOKIE, path=path, httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
    return response


@pages.get("/console/static/{name:path}")
async def console_static(name: str) -> Response:
    found = _FILES.get(name)
    if found is None or name == "index.html":
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(found[0], media_type=found[1], headers={"X-Content-Type-Options": "nosniff",
                                                            "Cache-Control": "no-cache"})
