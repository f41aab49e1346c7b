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
    # 4: sessions (conversations: one long-lived workflow each, its executions are its turns), approvals (a
    # person's decision on one tool call, or on going past a budget), and each execution's usage (from its
    # terminal event; NULL: none reported). A session's usage is the sum of its turns' (computed, not stored).
    (
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE,
            agent TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            workspace TEXT,
            model TEXT NOT NULL,
            model_name TEXT,
            model_source TEXT,
            status TEXT NOT NULL DEFAULT 'open',
            turns INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_turn_at REAL
        )""",
        "CREATE INDEX sessions_agent ON sessions(agent, created_at)",
        "ALTER TABLE executions ADD COLUMN session_id TEXT",
        "ALTER TABLE executions ADD COLUMN turn INTEGER",
        "ALTER TABLE executions ADD COLUMN input_tokens INTEGER",
        "ALTER TABLE executions ADD COLUMN output_tokens INTEGER",
        "ALTER TABLE executions ADD COLUMN cached_tokens INTEGER",
        "ALTER TABLE executions ADD COLUMN cost_usd REAL",
        "ALTER TABLE executions ADD COLUMN usage_estimated INTEGER",
        "CREATE INDEX executions_session ON executions(session_id, turn)",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
            session_id TEXT,
            kind TEXT NOT NULL,
            tool TEXT,
            args TEXT NOT NULL,
            args_hash TEXT NOT NULL,
            call_id TEXT,
            step INTEGER,
            question TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            reason TEXT,
            always INTEGER NOT NULL DEFAULT 0,
            decided_by TEXT,
            requested_at REAL NOT NULL,
            decided_at REAL
        )""",
        "CREATE INDEX approvals_execution ON approvals(execution_id)",
        "CREATE INDEX approvals_status ON approvals(status, requested_at)",
    ),
    (  # 5: named API tokens for people and machines (stored hashed; stigmer token create|list|revoke)
        """CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            last_used_at REAL
        )""",
    ),
    (  # 6: the web console's one-time login codes and the sessions they open (hashes only; store/console.py)
        """CREATE TABLE console_codes (
            hash TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            source TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
        """CREATE TABLE console_sessions (
            hash TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            source TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX console_sessions_expires ON console_sessions(expires_at)",
    ),
)

LATEST = len(MIGRATIONS)
