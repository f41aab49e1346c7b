"""What the API needs from the daemon process, handed to :func:`stigmer.daemon.api.create_app`.

The daemon's main builds it (its supervisor fills ``components``), and so does ``stigmer server``
(``daemon/server.py``: no supervisor, no daemon tokens, a database URL); tests build it with a fake
``temporal_client``. The API never reaches into the supervisor or Temporal any other way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import temporalio.client

    from ..config import Config


def _no_components() -> list[dict[str, Any]]:
    return []


@dataclass
class DaemonContext:
    """The daemon as the API sees it.

    Attributes:
        config: the configuration resolved once by the daemon.
        token: the local daemon's admin bearer token (``run/token``): every route but ``/v1/health`` admits it.
            None for ``stigmer server``, which has no such file: there, every caller brings a named token from
            the database (``stigmer server init``, ``stigmer token create``). Required, so a caller states it.
        runner_token: the runners' bearer token (``run/runner-token``): admitted by ``POST /v1/events`` only.
        store_path: the SQLite file (``$STIGMER_HOME/data/stigmer.db``), used unless ``database_url`` is set.
        database_url: the store to open instead (``postgresql://...`` in team mode; see ``stigmer.store.open_store``).
        components: a snapshot of the supervised services, one dict each with ``name, state, pid,
            address, uptime_s, restarts, last_error``.
        temporal_client: connects (or returns the connected) Temporal client; called lazily, so the
            API answers even while Temporal is still starting.
        reconcile_interval_s: how often executions without a terminal event are checked against
            Temporal (a runner killed before it could post ``completed`` still ends right).
        retention_interval_s: how often ``retention.executions`` is applied (also once at start).
        verify_timeout_s: how long a runner's terminal event waits for its workflow to close before it is
            dropped unverified (reconciliation then records what Temporal says).
    """

    config: Config
    token: str | None
    store_path: Path
    temporal_client: Callable[[], Awaitable[temporalio.client.Client]]
    components: Callable[[], list[dict[str, Any]]] = field(default=_no_components)
    runner_token: str | None = None
    database_url: str | None = None
    reconcile_interval_s: float = 5.0
    retention_interval_s: float = 3600.0
    verify_timeout_s: float = 30.0
