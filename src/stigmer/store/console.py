"""The web console's logins: one-time login codes and the sessions they open (``stigmer console``).

A login code is what a ``stigmer console`` link carries: made for a token's holder, it lives ``CODE_TTL_S`` seconds
and opens one console session, once. A console session is what the browser's cookie names. The store keeps the
SHA-256 of codes and cookie secrets only (both are 32 random bytes: no slow hash needed), so the database never holds
anything a browser could present. Both live in the store, not in a replica's memory, so a link made through one API
replica opens on another, and a cookie works on every replica.

Each row carries the role of the token that made the link (``admin`` or ``viewer``: a viewer gets a read-only console)
and ``source``, which names that token (``token:<id>`` for a named token, ``daemon:<fingerprint>`` for the daemon's
own): a console session ends when its token does (revoked, expired, or the daemon's token replaced at a restart).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from ._base import StoreBase

CODE_TTL_S = 60.0
SESSION_TTL_S = 12 * 3600.0


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ConsoleMixin(StoreBase):
    """The ``console_codes`` and ``console_sessions`` tables."""

    def create_console_code(self, role: str, source: str, ttl_s: float = CODE_TTL_S) -> tuple[str, float]:
        """A new login code for ``role`` (made by the token ``source`` names) and when it expires. Expired codes of
        earlier links are dropped on the way."""
        code, now = secrets.token_urlsafe(32), time.time()
        with self._tx() as conn:
            conn.execute("DELETE FROM console_codes WHERE expires_at <= ?", (now,))
            conn.execute("INSERT INTO console_codes (hash, role, source, created_at, expires_at) "
                         "VALUES (?, ?, ?, ?, ?)", (digest(code), role, source, now, now + ttl_s))
        return code, now + ttl_s

    def redeem_console_code(self, code: str, ttl_s: float = SESSION_TTL_S) -> tuple[str, dict[str, Any]] | None:
        """Trade a live code for a new console session: (the cookie's secret, the session's record). None when the
        code is unknown, used or expired. The code is deleted in the same transaction, so it works once even when two
        replicas are asked at the same moment."""
        now = time.time()
        secret = secrets.token_urlsafe(32)
        with self._tx() as conn:
            rows = list(conn.execute("SELECT * FROM console_codes WHERE hash = ?", (digest(code),)).fetchall())
            if not rows:
                return None
            row = rows[0]
            if conn.execute("DELETE FROM console_codes WHERE hash = ?", (digest(code),)).rowcount != 1:
                return None
            if float(row["expires_at"]) <= now:
                return None
            conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
            conn.execute("INSERT INTO console_sessions (hash, role, source, created_at, expires_at) "
                         "VALUES (?, ?, ?, ?, ?)", (digest(secret), row["role"], row["source"], now, now + ttl_s))
        return secret, {"role": str(row["role"]), "source": str(row["source"]), "expires_at": now + ttl_s}

    def console_session(self, secret: str) -> dict[str, Any] | None:
        """The live console session a cookie's secret names (role, source, expires_at), or None."""
        rows = self._read("SELECT role, source, expires_at FROM console_sessions WHERE hash = ?", (digest(secret),))
        if not rows or float(rows[0]["expires_at"]) <= time.time():
            return None
        return {"role": str(rows[0]["role"]), "source": str(rows[0]["source"]),
                "expires_at": float(rows[0]["expires_at"])}

    def end_console_session(self, secret: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute("DELETE FROM console_sessions WHERE hash = ?", (digest(secret),)).rowcount)

    def token_active(self, token_id: str) -> bool:
        """Whether the named token with this id exists and is neither revoked nor expired."""
        rows = self._read("SELECT revoked_at, expires_at FROM tokens WHERE id = ?", (token_id,))
        if not rows or rows[0]["revoked_at"]:
            return False
        expires = rows[0]["expires_at"]
        return expires is None or float(expires) > time.time()
