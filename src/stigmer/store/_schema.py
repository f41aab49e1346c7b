"""The store's schema and its migrations.

Each migration is a list of statements applied in one transaction together with the bump of
``schema_version``: a daemon killed mid-upgrade leaves the old schema, never half of the new one.
Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: resources, executions and their events.
    (
        """CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            document TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE mcpservers (
            name TEXT PRIMARY KEY,
            document TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            message TEXT NOT NULL,
            model TEXT NOT NULL,
            workspace TEXT,
            workflow_id TEXT NOT NULL,
            status TEXT NOT NULL,
            output TEXT,
            error TEXT,
            steps INTEGER,
            last_seq INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        )""",
        "CREATE INDEX executions_status ON executions(status)",
        "CREATE INDEX executions_created ON executions(created_at)",
        """CREATE TABLE events (
            execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            ts REAL NOT NULL,
            PRIMARY KEY (execution_id, seq)
        )""",
    ),
    # 2: an event's runner-made id, so an event a runner retried after a lost answer is stored once.
    # Events from older runners have none (NULL), and NULLs never collide in a unique index.
    (
        "ALTER TABLE events ADD COLUMN event_id TEXT",
        "CREATE UNIQUE INDEX events_event_id ON events(execution_id, event_id) WHERE event_id IS NOT NULL",
    ),
    # 3: idempotent starts (the client's Idempotency-Key, unique when given), a reply cut at max_tokens
    # (the ``truncated`` event), where the model came from (the ``model_resolved`` event), and an index
    # for pruning finished executions by age.
    (
        "ALTER TABLE executions ADD COLUMN idempotency_key TEXT",
        "CREATE UNIQUE INDEX executions_idempotency_key ON executions(idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
        "ALTER TABLE executions ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE executions ADD COLUMN model_source TEXT",
        "CREATE INDEX executions_finished ON executions(finished_at)",
    ),
)

LATEST = len(MIGRATIONS)
