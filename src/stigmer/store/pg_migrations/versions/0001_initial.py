"""The store as of SQLite schema version 5: resources, executions, events, sessions, approvals, usage, tokens.

PostgreSQL's own types where SQLite's would lose something: timestamps are ``double precision`` (``REAL``
is 4 bytes here), counts ``bigint``. Revisions are numbered (``0002`` next): ``schema_version`` reads them.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None

STATEMENTS = (
    """CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE mcpservers (
        name TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
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
        steps BIGINT,
        last_seq BIGINT NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        idempotency_key TEXT,
        truncated INTEGER NOT NULL DEFAULT 0,
        model_source TEXT,
        session_id TEXT,
        turn BIGINT,
        input_tokens BIGINT,
        output_tokens BIGINT,
        cached_tokens BIGINT,
        cost_usd DOUBLE PRECISION,
        usage_estimated INTEGER
    )""",
    "CREATE INDEX executions_status ON executions(status)",
    "CREATE INDEX executions_created ON executions(created_at)",
    "CREATE INDEX executions_finished ON executions(finished_at)",
    "CREATE INDEX executions_session ON executions(session_id, turn)",
    "CREATE INDEX executions_agent ON executions(agent, created_at)",
    "CREATE UNIQUE INDEX executions_idempotency_key ON executions(idempotency_key) WHERE idempotency_key IS NOT NULL",
    """CREATE TABLE events (
        execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        event_id TEXT,
        PRIMARY KEY (execution_id, seq)
    )""",
    "CREATE UNIQUE INDEX events_event_id ON events(execution_id, event_id) WHERE event_id IS NOT NULL",
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
        turns BIGINT NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        last_turn_at DOUBLE PRECISION
    )""",
    "CREATE INDEX sessions_agent ON sessions(agent, created_at)",
    """CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
        session_id TEXT,
        kind TEXT NOT NULL,
        tool TEXT,
        args TEXT NOT NULL,
        args_hash TEXT NOT NULL,
        call_id TEXT,
        step BIGINT,
        question TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        reason TEXT,
        always INTEGER NOT NULL DEFAULT 0,
        decided_by TEXT,
        requested_at DOUBLE PRECISION NOT NULL,
        decided_at DOUBLE PRECISION
    )""",
    "CREATE INDEX approvals_execution ON approvals(execution_id)",
    "CREATE INDEX approvals_status ON approvals(status, requested_at)",
    """CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION,
        last_used_at DOUBLE PRECISION
    )""",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the store is never downgraded")
