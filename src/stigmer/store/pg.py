"""The store on PostgreSQL (team mode): the same :class:`~stigmer.store.Store`, for API replicas sharing one database.

The SQL is the SQLite store's (``?`` marks, ``INSERT OR IGNORE``), translated once per statement by
:func:`translate`; the schema is PostgreSQL's own, migrated by Alembic (``pg_migrations/``, under an
advisory lock, so replicas starting together migrate once). psycopg 3 drives it; its synchronous API,
because the store's interface is synchronous (its calls take a loopback round trip or two, made inline
by the API as with SQLite).

Writes are serialised across every replica by one transaction-scoped advisory lock: the store's write
transactions read and then write (an event's ``seq`` is the execution's ``last_seq`` + 1, a turn's number
the session's ``turns`` + 1), which SQLite's single writer made safe and which must stay safe when two
replicas store events of one execution at once. They are short (milliseconds), so one writer at a time
is not what limits a deployment; reads never wait for it.

New events are announced on the ``stigmer_events`` channel inside the transaction that stored them
(PostgreSQL delivers a NOTIFY only on commit, so a listener never hears of an event it cannot read):
:meth:`PgStore.follow_events` is how an API replica hears of events another replica stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from ..config.masking import mask_url, scrub
from ..errors import ConfigError, RuntimeFailure
from .db import Store

log = logging.getLogger("stigmer.store")

CHANNEL = "stigmer_events"
_WRITE_LOCK = 0x5717_3E20  # pg_advisory_xact_lock key of the store's writers
_MIGRATE_LOCK = 0x5717_3E21  # pg_advisory_lock key held while migrating
_MIGRATIONS = Path(__file__).parent / "pg_migrations"

_translated: dict[str, str] = {}
T = TypeVar("T")


def translate(sql: str) -> str:
    """The store's SQLite-dialect statement in PostgreSQL's: ``%s`` marks, ``ON CONFLICT DO NOTHING``."""
    done = _translated.get(sql)
    if done is None:
        # a ? inside a string literal ('?' in the usage's model key) stays; % is psycopg's escape everywhere
        parts = sql.replace("%", "%%").split("'")
        done = "'".join(part.replace("?", "%s") if i % 2 == 0 else part for i, part in enumerate(parts))
        if done.lstrip().upper().startswith("INSERT OR IGNORE INTO"):
            done = re.sub(r"(?i)^\s*INSERT OR IGNORE INTO", "INSERT INTO", done) + " ON CONFLICT DO NOTHING"
        _translated[sql] = done
    return done


def redact(url: str) -> str:
    """``url`` without its password (what logs, errors and ``/v1/status`` show)."""
    return str(mask_url(url))


def _clean(value: Any) -> Any:
    # PostgreSQL's text cannot hold NUL (SQLite's can): a NUL in a message or an output becomes U+FFFD.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


class Row:
    """A result row read by name or by position, like ``sqlite3.Row`` (and ``dict(row)`` works)."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: str | int) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(index, values)

    return make


class _Cursor:
    """What the store's code uses of a cursor: ``fetchone``, ``fetchall``, ``rowcount``."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Row]:
        return list(self._cursor.fetchall()) if self._cursor.description else []


class _Connection:
    """A psycopg connection speaking the store's dialect (``conn.execute(sql, args)``)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Cursor:
        return _Cursor(self._conn.execute(translate(sql), [_clean(a) for a in args]))


def _connect(url: str) -> Any:
    import psycopg
    from psycopg.adapt import Loader

    class NumericLoader(Loader):  # SUM() of integers is numeric: give ints and floats, never Decimal
        def load(self, data: Any) -> Any:
            value = Decimal(bytes(data).decode())
            return int(value) if value == value.to_integral_value() else float(value)

    conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory, connect_timeout=10,
                           application_name="stigmer")
    conn.adapters.register_loader("numeric", NumericLoader)
    return conn


class PgStore(Store):
    """:class:`Store` over one psycopg connection (reconnected when it breaks), behind a lock like SQLite's."""

    shared = True

    def __init__(self, conn: Any, url: str) -> None:
        import psycopg

        super().__init__(conn, Path("."))
        # Reads on a connection of their own: they never wait behind a write transaction (as SQLite's WAL readers).
        self._reader: Any = _connect(url)
        self._read_lock = threading.Lock()
        self.url = url
        self.replica = uuid.uuid4().hex[:12]  # who stored an event: a replica skips its own announcements
        self.integrity_errors = (psycopg.IntegrityError,)

    def describe(self) -> str:
        return redact(self.url)

    @staticmethod
    def json_field(column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()
        with self._read_lock, contextlib.suppress(Exception):
            self._reader.close()

    def _connection(self) -> Any:
        conn: Any = self._conn
        if conn.closed or conn.broken:
            log.warning("store: reconnecting to %s", redact(self.url))
            conn = self._conn = _connect(self.url)
        return conn

    async def off_loop(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                yield _Connection(conn)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            if self._reader.closed or self._reader.broken:
                self._reader = _connect(self.url)
            cursor = self._reader.execute(translate(sql), [_clean(a) for a in args])
            return list(cursor.fetchall()) if cursor.description else []

    def _stored(self, conn: Any, events: list[dict[str, Any]]) -> None:
        spans: dict[str, list[int]] = {}
        for event in events:
            span = spans.setdefault(event["execution_id"], [event["seq"], event["seq"]])
            span[1] = event["seq"]
        for execution_id, (first, last) in spans.items():
            conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, f"{self.replica} {first} {last} {execution_id}"))

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self._read("SELECT to_regclass('alembic_version') IS NOT NULL AS present")
        if not rows[0]["present"]:
            return 0
        rows = self._read("SELECT version_num FROM alembic_version")
        return int(rows[0]["version_num"]) if rows else 0

    def _migrate(self) -> None:
        """Alembic's ``upgrade head``, one replica at a time (the others wait, then find nothing to do)."""
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        current = self.schema_version()
        if head is not None and current > int(head):
            raise RuntimeFailure(f"the database {redact(self.url)} has schema version {current}, newer than this "
                                 f"stigmer ({head})", hint="upgrade stigmer on this machine to the replicas' version")
        engine = create_engine(_sqlalchemy_url(self.url), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATE_LOCK})")
                try:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                finally:
                    connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATE_LOCK})")
                    connection.commit()
        finally:
            engine.dispose()

    # -- other replicas' events -----------------------------------------------------------------

    async def follow_events(self, on_events: Callable[[str, int, int], None], *, retry_s: float = 1.0) -> None:
        """Call ``on_events(execution_id, first_seq, last_seq)`` for every batch of events another replica stores,
        until cancelled. Reconnects when the connection drops; ``on_events("", 0, 0)`` then says some
        announcements may have been missed (the caller re-reads what its readers wait for)."""
        import psycopg

        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, application_name="stigmer")
            except psycopg.OperationalError as exc:
                log.warning("store: cannot listen for events on %s: %s", redact(self.url), exc)
                await asyncio.sleep(retry_s)
                continue
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                on_events("", 0, 0)
                async for notify in conn.notifies():
                    replica, first, last, execution_id = notify.payload.split(" ", 3)
                    if replica != self.replica:
                        on_events(execution_id, int(first), int(last))
            except psycopg.OperationalError as exc:
                log.warning("store: lost the event channel of %s (%s); listening again", redact(self.url), exc)
                await asyncio.sleep(retry_s)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()


def _sqlalchemy_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


def open_pg(url: str) -> PgStore:
    """Connect to (and migrate) the database at ``url`` (``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB?...``)."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError("a postgresql:// database needs the PostgreSQL driver, which is not installed",
                          hint="pip install 'stigmer[team]'") from None
    try:
        store = PgStore(_connect(url), url)
    except psycopg.Error as exc:
        reason = scrub(str(exc).strip(), url)
        raise RuntimeFailure(f"cannot open the database {redact(url)}: {reason}",
                             hint="check --database-url (STIGMER_DATABASE_URL): host, port, user, password, "
                                  "database name, and that the server is running") from None
    try:
        store._migrate()
    except BaseException:
        store.close()
        raise
    return store
