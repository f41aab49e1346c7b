"""Named API tokens (``stigmer token create|list|revoke``): a role each, stored as a hash, shown once.

A token reads ``stg_<id>_<secret>``: ``id`` (12 hex characters) finds its row, ``secret`` (32 random bytes,
URL-safe base64) is what proves it. Only the SHA-256 of the secret is stored, so the database never holds a
usable token; the secret's entropy makes a slow hash unnecessary. A revoked or expired token stays listed (who
had access, until when) and is refused; revoking is for good.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from typing import Any

from ._base import StoreBase

PREFIX = "stg_"
_SHAPE = re.compile(r"stg_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_state(row: dict[str, Any], now: float | None = None) -> str:
    """``active``, ``revoked`` or ``expired``."""
    if row.get("revoked_at"):
        return "revoked"
    expires = row.get("expires_at")
    return "expired" if expires is not None and expires <= (now or time.time()) else "active"


class TokensMixin(StoreBase):
    """The ``tokens`` table."""

    def create_token(self, name: str, role: str, expires_at: float | None) -> tuple[dict[str, Any], str]:
        """A new token: its record (no secret) and the token itself, which is never available again.
        ``ValueError`` when ``name`` is taken (revoked tokens keep their names)."""
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = time.time()
        try:
            with self._tx() as conn:
                conn.execute("INSERT INTO tokens (id, name, role, hash, created_at, expires_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (token_id, name, role, _digest(secret), now, expires_at))
        except self.integrity_errors:
            raise ValueError(f"a token named {name!r} exists already") from None
        record = self.get_token(name)
        assert record is not None
        return record, f"{PREFIX}{token_id}_{secret}"

    def get_token(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM tokens WHERE name = ?", (name,))
        return _record(rows[0]) if rows else None

    def list_tokens(self) -> list[dict[str, Any]]:
        return [_record(row) for row in self._read("SELECT * FROM tokens ORDER BY created_at, name")]

    def revoke_token(self, name: str) -> dict[str, Any] | None:
        """Revoke ``name`` (at once: its next request is refused); None when there is no such token."""
        with self._tx() as conn:
            conn.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (time.time(), name))
        return self.get_token(name)

    def token_role(self, offered: str) -> tuple[str | None, str]:
        """The role of ``offered`` and ``active``; or None and why not (``unknown``, ``revoked``, ``expired``).
        The secret is compared in constant time; a successful use is remembered (``last_used_at``)."""
        shape = _SHAPE.fullmatch(offered)
        if shape is None:
            return None, "unknown"
        rows = self._read("SELECT * FROM tokens WHERE id = ?", (shape.group(1),))
        if not rows or not hmac.compare_digest(_digest(shape.group(2)), str(rows[0]["hash"])):
            return None, "unknown"
        record = _record(rows[0])
        state = token_state(record)
        if state != "active":
            return None, state
        now = time.time()
        if not record["last_used_at"] or now - record["last_used_at"] > 60:  # at most one write a minute per token
            with self._tx() as conn:
                conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, record["id"]))
        return str(record["role"]), state


def _record(row: sqlite3.Row) -> dict[str, Any]:
    record = {key: row[key] for key in ("id", "name", "role", "created_at", "expires_at", "revoked_at",
                                        "last_used_at")}
    record["state"] = token_state(record)
    return record
