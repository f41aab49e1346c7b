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

Blobs go with the executions that own them: the claim-check codec stores large payloads under the owning
workflow's id (``stigmer-exec-<id>`` for an execution, the session's workflow id for a session and all its
turns), so each delete here, ``DELETE /v1/executions/{id}`` and ``DELETE /v1/sessions/{id}`` then deletes that
namespace of the blob store. A blob store that cannot be reached then (an S3 endpoint down) does not undo the
delete: the failure is logged with the namespace, and its blobs stay as orphans.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..config.durations import parse_duration
from ._state import ApiState

log = logging.getLogger("stigmer.daemon.retention")


async def prune(state: ApiState, older_than_s: float, *, dry_run: bool = False) -> int:
    """Delete (or with ``dry_run`` count) the executions that ended more than ``older_than_s`` ago, and their blobs."""
    cutoff = time.time() - older_than_s
    if dry_run:
        return state.store.count_finished_before(cutoff)
    workflows = await asyncio.to_thread(state.store.prune_workflows, cutoff)
    await forget_blobs(state, workflows)
    return len(workflows)


async def forget_blobs(state: ApiState, workflow_ids: list[str]) -> int:
    """Delete the blob namespaces of ``workflow_ids`` (deleted executions or sessions); return how many blobs went."""
    store = state.blobs
    gone = 0
    for workflow_id in dict.fromkeys(workflow_ids):
        try:
            gone += await store.delete_namespace(workflow_id)
        except Exception as exc:  # the rows are gone already: report, keep going
            log.warning("could not delete the blobs of %s from %s: %s (they stay until deleted by hand)",
                        workflow_id, store.url, type(exc).__name__ if not str(exc) else str(exc)[:300])
    return gone


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
        await forget_blobs(state, [session["workflow_id"]])
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
