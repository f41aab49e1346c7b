"""Storage failures (a full disk, a read-only home) as an answer a person can act on, not a 500."""

from __future__ import annotations

import errno
import sqlite3
from typing import Any

# SQLite's own words for the two failures a person can fix.
_FULL = ("disk is full", "database or disk is full")
_READ_ONLY = ("readonly database", "read-only file system")


def storage_error(exc: BaseException) -> tuple[int, dict[str, Any]] | None:
    """(status, body) for a storage failure the person can fix, or None when ``exc`` is something else.

    SQLite rolls the transaction back, so nothing was half-written; the answer says so.
    """
    text = str(exc).lower()
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or any(w in text for w in _FULL)
    read_only = (isinstance(exc, OSError) and exc.errno == errno.EROFS) or any(w in text for w in _READ_ONLY)
    if not isinstance(exc, (OSError, sqlite3.Error)) or not (full or read_only):
        return None
    what = "the disk holding STIGMER_HOME is full" if full else "STIGMER_HOME is on a read-only file system"
    hint = ("free some disk space, then retry" if full else "make STIGMER_HOME writable (or point STIGMER_HOME "
            "elsewhere and `stigmer local restart`), then retry")
    return 507, {"detail": f"{what}: nothing was stored", "hint": hint}


def database_unreachable(exc: BaseException, where: str) -> tuple[int, dict[str, Any]]:
    """(503, body) for a PostgreSQL store that did not answer (team mode): the request changed nothing; retry."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return 503, {"detail": f"the database ({where}) did not answer: {first}; nothing was stored",
                 "hint": "retry; if it persists, check the database server and this replica's --database-url"}
