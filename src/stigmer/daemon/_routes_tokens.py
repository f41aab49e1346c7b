"""``/v1/tokens``: named API tokens for people and machines (admin only; ``stigmer token``).

``POST /v1/tokens`` ``{"name", "role", "expires_in"?}`` answers the new token once, with its record; ``GET``
lists the records (never a secret); ``DELETE /v1/tokens/{name}`` revokes one at once. Roles are ``_auth.ROLES``.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ._state import ApiError, StateDep

router = APIRouter()
# A token's name: also checked by `stigmer server init`, which makes the first admin token without the API.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
NAME_MAX = 64


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)
    role: Literal["admin", "runner", "viewer"]
    expires_in: float | None = Field(default=None, gt=0, le=10 * 365 * 86400, allow_inf_nan=False)
    """Seconds from now (the CLI turns ``--expires 30d`` into seconds); none: until revoked."""


@router.post("/tokens", status_code=201)
async def create(body: NewToken, state: StateDep) -> dict[str, Any]:
    expires = None if body.expires_in is None else time.time() + body.expires_in
    try:
        record, token = state.store.create_token(body.name, body.role, expires)
    except ValueError as exc:
        raise ApiError(409, str(exc), "pick another name, or revoke and list to see the names in use") from None
    return {**record, "token": token}


@router.get("/tokens")
async def list_tokens(state: StateDep) -> dict[str, Any]:
    return {"items": state.store.list_tokens()}


@router.delete("/tokens/{name}")
async def revoke(name: str, state: StateDep) -> dict[str, Any]:
    record = state.store.revoke_token(name)
    if record is None:
        raise ApiError(404, f"no token named {name!r}", "see the names with `stigmer token list`")
    return record
