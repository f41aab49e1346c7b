"""Routes for resources: ``POST /v1/apply`` and ``GET/DELETE /v1/agents|mcpservers[/{name}]``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ..errors import UserError
from ._state import ApiError, ApiState, StateDep, not_found

router = APIRouter()

# URL segment -> (kind, what a person calls it)
_COLLECTIONS = {"agents": ("Agent", "agent"), "mcpservers": ("McpServer", "MCP server")}


class ApplyRequest(BaseModel):
    """``{"documents": [...]}``: parsed YAML documents, applied all together or not at all."""

    documents: list[dict[str, Any]] = Field(min_length=1)
    source: str = "request"


def _validated(request: ApplyRequest, state: ApiState) -> tuple[list[dict[str, Any]], list[str]]:
    """Every document validated and references checked, as stored, and the warnings about literal secrets.

    A UserError names the first bad field (a reference to one of stigmer's own secrets is one).
    """
    from ..resources import check_references, parse_document
    from ..resources.secret_warnings import literal_secret_warnings

    resources = [parse_document(doc, request.source, i) for i, doc in enumerate(request.documents, start=1)]
    seen: dict[tuple[str, str], int] = {}
    for i, res in enumerate(resources, start=1):
        if (res.kind, res.name) in seen:
            raise UserError(f"{request.source}, document {i}: {res.kind} {res.name!r} is also defined in document "
                            f"{seen[(res.kind, res.name)]}", hint="give each resource a unique metadata.name")
        seen[(res.kind, res.name)] = i
    check_references(resources, state.store.resource_names("McpServer"), request.source)
    return [res.dump() for res in resources], literal_secret_warnings(resources, request.source)


@router.post("/apply")
async def apply(request: ApplyRequest, state: StateDep) -> dict[str, Any]:
    """Apply every document or none; ``warnings`` name literal values that look like keys (masked)."""
    try:
        documents, warnings = _validated(request, state)
    except UserError as exc:
        raise ApiError(422, exc.message, exc.hint) from None
    return {"results": state.store.apply(documents), "warnings": warnings}


def _add_collection(collection: str, kind: str, what: str) -> None:
    """GET list, GET one and DELETE one for ``/v1/<collection>``."""
    missing_hint = f"list them with `stigmer get {collection}`"

    @router.get(f"/{collection}", name=f"list_{collection}")
    async def list_all(state: StateDep) -> dict[str, Any]:
        return {"items": state.store.list_resources(kind)}

    @router.get(f"/{collection}/{{name}}", name=f"get_{collection}")
    async def get_one(name: str, state: StateDep) -> dict[str, Any]:
        found = state.store.get_resource(kind, name)
        if found is None:
            raise not_found(what, name, state.store.resource_names(kind), missing_hint)
        return found

    @router.delete(f"/{collection}/{{name}}", name=f"delete_{collection}")
    async def delete_one(name: str, state: StateDep) -> dict[str, Any]:
        if kind == "McpServer":
            _refuse_if_used(state, name)
        if not state.store.delete_resource(kind, name):
            raise not_found(what, name, state.store.resource_names(kind), missing_hint)
        return {"deleted": {"kind": kind, "name": name}}


def _refuse_if_used(state: ApiState, server: str) -> None:
    users = [a["name"] for a in state.store.list_resources("Agent")
             if server in a["document"].get("spec", {}).get("mcpServers", [])]
    if users:
        raise ApiError(409, f"MCP server {server!r} is used by agent(s) {', '.join(users)}",
                       "delete those agents first, or remove the server from their spec.mcpServers")


for _collection, (_kind, _what) in _COLLECTIONS.items():
    _add_collection(_collection, _kind, _what)
