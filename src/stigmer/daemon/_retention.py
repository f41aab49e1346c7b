"""Finished executions do not pile up for ever: prune by age, on request and by ``retention.executions``.

Only executions that ended (completed, failed, cancelled) are deleted, with their events (the
schema cascades); a live one is never touched, whatever its age. Age counts from when it ended.
The daemon applies ``retention.executions`` (default ``30d``; ``0`` keeps everything) once when its
API starts and then every ``retention_interval_s`` (an hour), and logs what it removed. The delete
runs in a worker thread, in batches, so the API keeps answering during a large one.

A session's turns are not pruned one by one (its conversation holds them): retention deletes a whole
session once it has been idle (no live turn, none sent) for the retention period, closing its workflow
first as ``DELETE /v1/sessions/{id}`` does. A session whose workflow cannot be closed now (Temporal down)
is kept for the next round.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..config.durations import parse_duration
from ._state import ApiState

log = logging.getLogger("stigmer.daemon.retention")


async def prune(state: ApiState, older_than_s: float, *, dry_run: bool = False) -> int:
    """Delete (or with ``dry_run`` count) the executions that ended more than ``older_than_s`` ago."""
    cutoff = time.time() - older_than_s
    if dry_run:
        return state.store.count_finished_before(cutoff)
    return await asyncio.to_thread(state.store.prune, cutoff)


async def apply_retention(state: ApiState) -> int:
    """Apply ``retention.executions`` once; return how many executions were deleted."""
    setting = str(state.ctx.config.value("retention.executions"))
    seconds = parse_duration(setting)
    if seconds == 0:
        return 0
    deleted = await prune(state, seconds)
    if deleted:
        log.info("retention: deleted %d execution(s) that ended more than %s ago, with their events "
                 "(retention.executions)", deleted, setting)
    sessions = await prune_sessions(state, seconds)
    if sessions:
        log.info("retention: deleted %d session(s) idle for more than %s, with their turns (retention.executions)",
                 sessions, setting)
    return deleted


async def prune_sessions(state: ApiState, idle_s: float) -> int:
    """Close and delete the sessions idle for more than ``idle_s``; return how many."""
    from . import _sessions
    from ._state import ApiError

    count = 0
    for session in state.store.idle_sessions_before(time.time() - idle_s):
        try:
            await _sessions.close(state, session)
        except ApiError as exc:
            log.warning("retention: kept session %s for now: %s", session["id"], exc.message)
            continue
        state.store.delete_session(session["id"])
        count += 1
    return count


async def retention_loop(state: ApiState) -> None:
    """Apply the retention now, then every ``retention_interval_s`` (runs for the API's lifetime)."""
    while True:
        try:
            await apply_retention(state)
        except Exception:
            log.exception("applying retention.executions failed")
        await asyncio.sleep(state.ctx.retention_interval_s)
