"""The web console's cookie as a credential: who a console request is, and the CSRF check on what it changes.

``stigmer console`` trades a token for a one-time login code (``POST /v1/console/login-links``); the browser trades
the code for a console session (``GET /console/login``), named by the cookie ``COOKIE``: HttpOnly (no script reads
it), SameSite=Strict (no other site's page sends it), Secure over TLS, set twice with the paths the console needs
(``/console`` for its pages, ``/v1`` for the API routes its JavaScript calls). The store holds the secret's hash only.

The API admits the cookie where it admits a bearer token of the session's role (a viewer's session reads only).
A request that changes something with the cookie must also carry the header ``X-Stigmer-Console`` (the console's
JavaScript sends it; a cross-site form cannot, and a cross-site script cannot without a CORS preflight the API never
grants) and, when the browser names an ``Origin``, come from this very origin. A request carrying an
``Authorization`` header is judged by that header alone: the cookie never adds to a token.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from fastapi import Request

from ._state import ApiError, api_state

if TYPE_CHECKING:
    from ._auth import Principal

COOKIE = "stigmer_console"
CSRF_HEADER = "x-stigmer-console"
COOKIE_PATHS = ("/console", "/v1")
READS = frozenset({"GET", "HEAD"})


def daemon_source(token: str) -> str:
    """What a console session made with one of the daemon's own tokens remembers of it: a fingerprint, never the
    token, so the session ends when the daemon's next start replaces the token."""
    return "daemon:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def session_live(request: Request, session: dict[str, Any]) -> bool:
    """Whether the token that made the console session still stands."""
    state = api_state(request)
    kind, _, ident = session["source"].partition(":")
    if kind == "token":
        return state.store.token_active(ident)
    tokens = (state.ctx.token, state.ctx.runner_token)
    return any(token and daemon_source(token) == session["source"] for token in tokens)


def console_principal(request: Request) -> Principal | None:
    """The principal behind the console cookie (None: no cookie, or no live session); 403 when a change comes
    without the console's CSRF header or from another origin."""
    from ._auth import Principal

    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    session = api_state(request).store.console_session(secret)
    if session is None or not session_live(request, session):
        return None
    if request.method not in READS:
        check_same_origin(request)
    return Principal(session["role"], via="console", source=session["source"])


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def check_same_origin(request: Request) -> None:
    """CSRF: a console request that changes something carries the console's header and comes from this origin."""
    origin = request.headers.get("origin")
    if request.headers.get(CSRF_HEADER) != "1" or (origin is not None and origin != own_origin(request)):
        raise ApiError(403, f"a console request to {request.method} {request.url.path} came without the console's "
                            "header or from another origin", "use the console's own pages (`stigmer console`), or "
                            "send a bearer token")
