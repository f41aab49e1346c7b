"""The daemon's SQLite store (WAL): agents, MCP servers, executions and their events."""

from .db import KINDS, STATUSES, TERMINAL, Store, canonical, terminal_status

__all__ = ["KINDS", "STATUSES", "TERMINAL", "Store", "canonical", "terminal_status"]
