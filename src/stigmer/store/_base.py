"""The store's connection: one SQLite connection behind a lock, one write transaction at a time.

Every part of :class:`~stigmer.store.Store` (executions and events, sessions, approvals, usage) is a
mixin over this base, so they share the connection, its lock and the transaction helper. The SQL is
written once, in SQLite's dialect with ``?`` marks; the PostgreSQL store (``pg``) overrides the few
things that differ: the connection and transactions, :attr:`integrity_errors`, :meth:`json_field`,
and :meth:`_stored` (which tells the other API replicas about new events).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class StoreBase:
    """The connection, its lock, and the two ways to use it: :meth:`_tx` (write) and :meth:`_read`."""

    # What a unique or foreign key violation raises (the PostgreSQL store names its driver's).
    integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
    # Whether other processes write this store too (API replicas on one PostgreSQL database): then events
    # stored elsewhere reach this process's streams through :meth:`follow_events`.
    shared = False

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path

    def describe(self) -> str:
        """Where the store is, as ``/v1/status`` shows it (never a password)."""
        return str(self.path)

    @staticmethod
    def json_field(column: str, key: str) -> str:
        """SQL for the text of ``key`` in the JSON object held (as text) in ``column``."""
        return f"json_extract({column}, '$.{key}')"

    async def off_loop(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` for an async caller: inline on SQLite (in-process, microseconds a statement), in a thread
        on a shared store, whose network round trips must not hold the API's event loop (its reads, on a
        connection of their own, go on meanwhile)."""
        return call(*args)

    def _stored(self, conn: Any, events: list[dict[str, Any]]) -> None:
        """Called inside the transaction that stored ``events`` (non-empty), before it commits."""

    async def follow_events(self, on_events: Callable[[str, int, int], None], *, retry_s: float = 1.0) -> None:
        """For a :attr:`shared` store: call ``on_events(execution_id, first_seq, last_seq)`` for each batch of
        events another process stored, until cancelled. Only one process writes a SQLite store: nothing to hear."""
        raise NotImplementedError("only a shared store announces events")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())


def storable(text: str | None) -> str | None:
    """``text`` as SQLite can store it: lone surrogates (valid JSON, invalid UTF-8) become "?"."""
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")
