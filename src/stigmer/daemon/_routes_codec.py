"""Temporal's codec-server protocol, so its web UI and CLI show plain data instead of blob references.

``POST /v1/codec/decode`` and ``POST /v1/codec/encode`` take ``{"payloads": [{"metadata": {k: base64}, "data":
base64}]}`` (the JSON form of Temporal's ``Payloads``; Temporal sends the namespace as ``X-Namespace``) and answer
the same shape, through the same :class:`~stigmer.blobs.codec.BlobCodec` the runners use. Decode answers with the
payloads asked for, each reference replaced by what it stands for, and nothing else: no listing, no other blob.

Who may call:

- anyone with the admin token (``Authorization: Bearer <run/token>``): the ``temporal`` CLI with
  ``--codec-endpoint http://127.0.0.1:7780/v1/codec`` and ``TEMPORAL_CODEC_AUTH="Bearer $(cat
  $STIGMER_HOME/run/token)"`` in its environment (``--codec-auth`` would put the token on the command line);
- without a token, only ``decode``, and only from the managed web UI: a request whose ``Origin`` is exactly
  ``http://127.0.0.1:<temporal.ui_port>`` or ``http://localhost:<temporal.ui_port>`` while stigmer runs that UI
  (``temporal.managed``). Those two origins get CORS answers (preflight included); every other origin is refused
  a preflight and gets no CORS header, so a web page elsewhere cannot read an answer.

The decision and its risk: the browser UI cannot hold stigmer's token, so the UI's origin stands in for it. A
browser sets ``Origin`` itself (a page cannot forge it), but a local program can send any header; such a program
can then decode references without the token. It learns nothing it could not already read: a reference names a
blob by the SHA-256 of its content and the workflow that owns it, and is only found in that workflow's history,
which the managed dev server serves on loopback to any local program without authentication. Encode, which writes
to the blob store, always needs the token. With an external Temporal (``temporal.managed`` false) no origin is
trusted: configure the UI with a codec endpoint that passes a token, or use the CLI.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ._auth import ADMIN, forbidden, known_principal
from ._state import ApiError, ApiState, api_state

router = APIRouter()

ALLOWED_HEADERS = "authorization, content-type, x-namespace"


def ui_origins(state: ApiState) -> frozenset[str]:
    """The managed web UI's origins (empty when stigmer does not run the UI)."""
    cfg = state.ctx.config
    if not cfg.temporal.managed:
        return frozenset()
    port = cfg.temporal.ui_port
    return frozenset({f"http://127.0.0.1:{port}", f"http://localhost:{port}"})


def _cors(request: Request, state: ApiState) -> dict[str, str]:
    origin = request.headers.get("origin", "")
    if origin not in ui_origins(state):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _authorise(request: Request, state: ApiState, operation: str) -> None:
    """The admin token, or (decode only, no token at all) the managed UI's origin; else 401/403."""
    header = request.headers.get("authorization", "")
    if header:
        # the daemon's admin token, or a named admin token (stigmer token); a revoked or expired one says so
        principal = known_principal(request)
        if principal is None:
            raise ApiError(401, "the codec server needs the admin token, and this one is wrong or not a bearer token",
                           "send 'Authorization: Bearer <token>' with the token from $STIGMER_HOME/run/token "
                           "(temporal CLI: TEMPORAL_CODEC_AUTH=\"Bearer $(cat $STIGMER_HOME/run/token)\")")
        if principal.role != ADMIN:  # payloads hold whole conversations: the admin's alone
            raise forbidden(request, principal, "admin")
        return
    origin = request.headers.get("origin")
    if operation == "decode" and origin is not None and origin in ui_origins(state):
        return
    if origin is not None and origin not in ui_origins(state):
        raise ApiError(403, "this origin may not use the codec server without a token",
                       "only stigmer's managed Temporal web UI may decode without one; send the admin token from "
                       "$STIGMER_HOME/run/token as 'Authorization: Bearer <token>'")
    raise ApiError(401, f"codec {operation} needs the admin token",
                   "send 'Authorization: Bearer <token>' with the token from $STIGMER_HOME/run/token")


def _payloads(body: Any) -> list[Any]:
    from temporalio.api.common.v1 import Payload

    items = body.get("payloads") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ApiError(400, "the body must be {\"payloads\": [...]}", "send Temporal's Payloads as JSON")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("metadata", {}), dict):
            raise ApiError(400, f"payloads[{i}]: expected {{\"metadata\": {{...}}, \"data\": base64}}",
                           "send Temporal's Payloads as JSON")
        try:
            metadata = {str(k): base64.b64decode(str(v), validate=True) for k, v in item.get("metadata", {}).items()}
            data = base64.b64decode(str(item.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"payloads[{i}]: metadata values and data must be base64",
                           "send Temporal's Payloads as JSON") from None
        out.append(Payload(metadata=metadata, data=data))
    return out


def _json(payloads: list[Any]) -> dict[str, Any]:
    return {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                          "data": base64.b64encode(p.data).decode()} for p in payloads]}


async def _run(request: Request, operation: str) -> Response:
    from ..blobs.codec import BlobCodec, BlobReferenceMissing

    state = api_state(request)
    cors = _cors(request, state)
    try:
        _authorise(request, state, operation)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the body is not JSON", "send Temporal's Payloads as JSON") from None
        payloads = _payloads(body)
        codec = BlobCodec(state.blobs, int(state.ctx.config.blobs.threshold))
        try:
            done = await (codec.decode(payloads) if operation == "decode" else codec.encode(payloads))
        except BlobReferenceMissing as exc:
            raise ApiError(404, str(exc), "the execution that owned it was probably deleted") from None
    except ApiError as exc:
        headers = {**cors, **({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {})}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
    return JSONResponse(_json(done), headers=cors)


@router.post("/codec/decode")
async def decode(request: Request) -> Response:
    """Replace each blob reference among the payloads by the payload it stands for."""
    return await _run(request, "decode")


@router.post("/codec/encode")
async def encode(request: Request) -> Response:
    """Encode payloads as a runner would (large ones to the blob store); admin token only."""
    return await _run(request, "encode")


@router.options("/codec/{operation}")
async def preflight(operation: str, request: Request) -> Response:
    """CORS preflight: allowed for the managed web UI's origins only."""
    state = api_state(request)
    cors = _cors(request, state)
    if not cors or operation not in ("decode", "encode"):
        return JSONResponse({"detail": "this origin may not use the codec server from a browser",
                             "hint": "only stigmer's managed Temporal web UI may"}, status_code=403)
    return Response(status_code=204, headers={**cors, "Access-Control-Allow-Methods": "POST, OPTIONS",
                                              "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                                              "Access-Control-Max-Age": "600"})
