"""Who may call what: each bearer token has a role, and each route declares the roles it admits.

Roles (see docs/ARCHITECTURE.md, "Tokens and roles"):

- ``admin``: every route. The person's token, in ``run/token`` (0600), new at each daemon start.
- ``runner``: ``POST /v1/events`` only. The daemon makes a second random token at each start and
  hands it to its runner children as ``STIGMER_SERVER_TOKEN`` (and keeps it in ``run/runner-token``,
  0600, for a runner started by hand next to the daemon). A leaked runner token can add events to
  executions, and nothing else: no apply, delete, start, cancel, no config.
- ``viewer``: read-only: every ``GET`` route an admin may call (resources, executions and their
  events, sessions, approvals, usage, status), and nothing that changes anything.

Besides those two tokens of the daemon's own, named tokens of any role are made with ``stigmer token
create`` (``store/tokens.py``: stored hashed, shown once, revocable, optionally expiring); a revoked or
expired one answers 401 saying so.

A route states its roles with a dependency, ``dependencies=[require(ADMIN)]`` on a router or a
``Principal`` parameter declared with ``require(ADMIN, RUNNER)``: no route is special-cased here.
The web console's cookie stands for the token that opened its session (``_console_auth``, with a CSRF check on
changes). No token, or one that matches none, answers 401 (as before roles existed); a known token whose
role the route does not admit answers 403 naming the role and what it may do. Tokens are compared
in constant time, every known token every time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from ..store.tokens import PREFIX
from ._console_auth import console_principal, daemon_source
from ._state import ApiError, api_state

ADMIN, RUNNER, VIEWER = "admin", "runner", "viewer"
# role -> what a token of that role may do (said in every 403)
ROLES: dict[str, str] = {
    ADMIN: "may call every route",
    RUNNER: "may only post execution events (POST /v1/events)",
    VIEWER: "may only read (GET routes) and open a read-only console",
}
READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Principal:
    """Who made a request: the role of the token it carried (``via`` ``token``), or of the token that opened the web
    console session whose cookie it carried (``via`` ``console``). ``source`` names that token without holding it
    (``token:<id>`` or a fingerprint of the daemon's own: ``_console_auth.daemon_source``)."""

    role: str
    via: str = "token"
    source: str = ""

    @property
    def trusted(self) -> bool:
        """True for the admin: what it posts is taken as is (a runner's terminal events are verified)."""
        return self.role == ADMIN


def identify(request: Request) -> Principal:
    """The principal behind the request's bearer token; 401 when there is none or it matches no token."""
    principal = known_principal(request)
    if principal is None:
        raise ApiError(401, "missing or wrong bearer token",
                       f"send {_where(request)} as 'Authorization: Bearer <token>'")
    return principal


def _where(request: Request) -> str:
    """Where a caller's token comes from: the daemon's file, or (``stigmer server``, no file) a named token."""
    if api_state(request).ctx.token is None:
        return "a token from `stigmer server init` or `stigmer token create`"
    return "the token from $STIGMER_HOME/run/token"


def _admin_where(request: Request) -> str:
    if api_state(request).ctx.token is None:
        return "an admin token comes from `stigmer server init` or `stigmer token create --role admin`"
    return "the admin token is in $STIGMER_HOME/run/token"


def known_principal(request: Request) -> Principal | None:
    """The principal behind the request's bearer token, or None when there is none or it matches no token; 401 for
    a named token that was revoked or has expired (it says which). Without an ``Authorization`` header, the web
    console's cookie (``_console_auth``)."""
    state = api_state(request)
    header = request.headers.get("authorization")
    if header is None:
        return console_principal(request)
    scheme, _, given = header.partition(" ")
    offered = given.strip().encode()
    role: str | None = None
    source = ""
    for candidate, token in ((ADMIN, state.ctx.token), (RUNNER, state.ctx.runner_token)):
        # no early exit: the time taken does not depend on which token matched, or how much of one
        if token and hmac.compare_digest(offered, token.encode()) and role is None:
            role, source = candidate, daemon_source(token)
    if role is None and scheme.lower() == "bearer" and given.strip().startswith(PREFIX):
        role, why = state.store.token_role(given.strip())
        source = "token:" + given.strip()[len(PREFIX):].split("_", 1)[0]
        if why in ("revoked", "expired"):
            raise ApiError(401, f"this token was {why}" if why == "revoked" else "this token has expired",
                           "ask an admin for a new one (stigmer token create)")
    if scheme.lower() != "bearer" or role is None:
        return None
    return Principal(role, source=source)


def reader() -> Any:
    """A dependency admitting the admin on every method and a viewer on reads (``GET``) only."""

    async def check(request: Request) -> Principal:
        principal = identify(request)
        if principal.role == ADMIN or (principal.role == VIEWER and request.method in READS):
            return principal
        raise forbidden(request, principal, "admin" if principal.role == VIEWER else "admin or viewer")

    return Depends(check)


def forbidden(request: Request, principal: Principal, allowed: str) -> ApiError:
    return ApiError(403, f"the {principal.role} token may not call {request.method} {request.url.path}: "
                         f"a {principal.role} token {ROLES[principal.role]}",
                    f"this route needs the {allowed} token ({_admin_where(request)})")


def require(*roles: str) -> Any:
    """A dependency admitting tokens of ``roles`` only (401 unknown token, 403 another role)."""
    unknown = set(roles) - set(ROLES)
    assert not unknown, f"unknown roles {unknown}"

    async def check(request: Request) -> Principal:
        principal = identify(request)
        if principal.role not in roles:
            raise forbidden(request, principal, " or ".join(roles))
        return principal

    return Depends(check)
