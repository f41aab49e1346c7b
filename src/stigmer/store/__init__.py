"""The daemon's store: agents, MCP servers, executions and their events, sessions, approvals, usage, tokens.

Two backends behind one interface: SQLite (one WAL file, local mode) and PostgreSQL (team mode,
several API replicas sharing one database). :func:`open_store` picks by the target it is given.
"""

from __future__ import annotations

from pathlib import Path

from .db import KINDS, STATUSES, TERMINAL, Store, canonical, terminal_status

__all__ = ["KINDS", "STATUSES", "TERMINAL", "Store", "canonical", "open_store", "terminal_status"]


def open_store(target: str | Path) -> Store:
    """Open (creating and migrating) the store at ``target``: a SQLite path, ``sqlite:///PATH``, or ``postgresql://...``."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from .pg import open_pg

        return open_pg(text)
    if text.startswith("sqlite:///"):  # sqlite:////abs/path or sqlite:///relative/path, as SQLAlchemy reads them
        text = text[len("sqlite:///"):]
    return Store.open(Path(text))
