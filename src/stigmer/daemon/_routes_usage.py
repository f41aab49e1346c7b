"""``GET /v1/usage``: the tokens and cost of the executions that ended, summed and optionally grouped.

``since`` is seconds back from now (the CLI turns ``--since 7d`` into seconds); ``by`` groups by agent,
model (``provider:model``) or session. Sums are the store's (:mod:`stigmer.store.usage`): ``unpriced``
marks a sum missing some unknown cost, ``estimated`` one holding estimated tokens.
"""

from __future__ import annotations

import time
from typing import Any, Literal, get_args

from fastapi import APIRouter, Query

from ..store.usage import USAGE_GROUPS
from ._state import StateDep

router = APIRouter()

UsageGroup = Literal["agent", "model", "session"]
assert set(get_args(UsageGroup)) == set(USAGE_GROUPS)


@router.get("/usage")
async def usage(state: StateDep, since: float | None = Query(default=None, ge=0, allow_inf_nan=False),
                by: UsageGroup | None = None) -> dict[str, Any]:
    """Sums over executions that ended in the last ``since`` seconds (all without), grouped ``by`` (none without)."""
    cutoff = None if since is None else time.time() - since
    return {"since": since, "by": by, **state.store.usage(since=cutoff, by=by)}
