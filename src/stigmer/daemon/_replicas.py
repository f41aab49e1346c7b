"""Events other API replicas stored, to this replica's live streams (team mode: one PostgreSQL store, N replicas).

A runner posts an execution's events to whichever replica its load balancer picks; a client may stream
that execution from another. The store announces every stored batch (``PgStore.follow_events``: PostgreSQL
LISTEN/NOTIFY, delivered on commit); here a replica with readers of that execution reads the batch back
from the store and hands it to its hub, like the events it stored itself. Announcements are only a wake-up:
the store stays the truth, and a stream that sees a gap in the seqs replays from it (``_sse``), so a missed
or late announcement delays an event but never loses or repeats one. When the listening connection was
re-established (announcements may have been missed meanwhile), every reader replays from the store.
"""

from __future__ import annotations

import logging

from ._state import ApiState

log = logging.getLogger("stigmer.daemon.replicas")


async def follow_replicas(state: ApiState) -> None:
    """Until cancelled: events stored by other replicas reach this replica's subscribers."""
    store, hub = state.store, state.hub

    def on_events(execution_id: str, first: int, last: int) -> None:
        if not execution_id:
            hub.wake_all()
            return
        if not hub.subscriber_count(execution_id):
            return
        try:
            hub.publish(store.events_after(execution_id, first - 1, last - first + 1))
        except Exception as exc:  # the store unreachable: readers replay once it answers (their idle checks)
            log.warning("could not read events %d-%d of %s: %s", first, last, execution_id, exc)

    await store.follow_events(on_events)
