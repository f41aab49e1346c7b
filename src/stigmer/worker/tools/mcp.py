"""MCP servers as tools, through the official ``mcp`` SDK (2.x): stdio children and streamable HTTP.

A worker keeps one live session per server spec (a pool), so a tool call costs a round trip,
not a process start. Each session is owned by its own task, because the SDK's context managers
(anyio cancel scopes) must be entered and left by the same task; calls from activity tasks
share it. A session that breaks (the child died) is dropped and reopened on the next call.

A stdio child gets only the environment its resource declares, plus ``PATH`` and the SDK's
harmless basics (HOME, USER, SHELL, TERM, LOGNAME): never the worker's API keys. A reference in
``env``/``headers`` (``${NAME}``, ``valueFrom: {secret: NAME}``) is filled in here, at connect time,
only when granted (``stigmer.config.grants``: the secret store, then ``mcp.allow_env``); an ungranted
one is an :class:`McpFailure` naming the server, the variable and how to grant it. Tool errors,
unknown tools and broken servers all come back as error results the model sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...config.grants import GrantError, Grants, server_references
from ...errors import UserError
from ..params import ToolSchema
from ._childenv import scrubbed_env
from .workspace import MAX_OUTPUT, truncate

log = logging.getLogger("stigmer.mcp")

CONNECT_TIMEOUT = 60.0


def filled(server: dict[str, Any], grants: Grants) -> dict[str, str]:
    """The server's ``env`` (stdio) or ``headers`` (http) with every reference filled in from ``grants``.

    Only the references are pinned in the workflow input and history; the values exist only here and
    in the child's environment or the request headers. Raises McpFailure for an ungranted reference.
    """
    name = str(server.get("name"))
    try:
        if server.get("stdio"):
            return grants.fill(name, "spec.stdio.env", server["stdio"].get("env"))
        return grants.fill(name, "spec.http.headers", (server.get("http") or {}).get("headers"))
    except GrantError as exc:
        raise McpFailure(f"{exc.message} → {exc.hint}") from None


def _command(command: str) -> str:
    """``python``/``python3`` mean the runner's own interpreter: the one that has the MCP SDK installed.

    A runner started as ``.venv/bin/stigmer`` without an activated venv would otherwise find the
    system Python on PATH, where ``mcp`` is usually missing.
    """
    return sys.executable if command in ("python", "python3") else command


class McpFailure(Exception):
    """The server could not be reached or broke mid-call (not a tool error: those are results)."""


def _key(server: dict[str, Any]) -> str:
    return json.dumps({k: server.get(k) for k in ("name", "stdio", "http")}, sort_keys=True)


class _Connection:
    """One live MCP session, owned by its own task, started with ``values`` (the filled-in env or headers)."""

    def __init__(self, server: dict[str, Any], values: dict[str, str], digest: str) -> None:
        self.server = server
        self.values = values
        self.digest = digest
        self.session: Any = None
        self.error: BaseException | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        from mcp import StdioServerParameters, stdio_client

        if self.server.get("stdio"):
            stdio = self.server["stdio"]
            env = scrubbed_env(**self.values)
            params = StdioServerParameters(command=_command(stdio["command"]), args=list(stdio.get("args") or []),
                                           env=env, cwd=stdio.get("cwd"))
            return await stack.enter_async_context(stdio_client(params))
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = self.server["http"]
        client = await stack.enter_async_context(create_mcp_http_client(headers=self.values))
        return await stack.enter_async_context(streamable_http_client(http["url"], http_client=client))

    async def _run(self) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await self._transport(stack)
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self.session = session
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self.error = exc
        finally:
            self.session = None
            self._ready.set()

    async def open(self, timeout: float = CONNECT_TIMEOUT) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mcp:{self.server.get('name')}")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            await self.close()
            raise McpFailure(f"MCP server {self.server.get('name')!r} did not answer within {timeout:g}s") from None
        if self.session is None:
            raise McpFailure(f"MCP server {self.server.get('name')!r} could not be started: {_describe(self.error)}")

    @property
    def alive(self) -> bool:
        return self.session is not None and self._task is not None and not self._task.done()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except (TimeoutError, Exception):
                self._task.cancel()


def _describe(exc: BaseException | None) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if exc is None:
        return "it exited"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _content_text(result: Any, limit: int) -> str:
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(block.text))
        else:
            parts.append(f"[{kind or 'non-text'} content not shown]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured))
    return truncate("\n".join(parts) if parts else "(no output)", limit)


_SAFE = re.compile(r"[^a-zA-Z0-9_-]")


def exposed_name(server: str, tool: str, taken: set[str]) -> str:
    """The name the model sees: the tool's own, or ``server_tool`` when that would clash (64 chars max)."""
    name = _SAFE.sub("_", tool)[:64]
    if name in taken:
        name = _SAFE.sub("_", f"{server}_{tool}")[:64]
    return name


def _read_only(tool: Any) -> bool:
    """True only when the server annotated the tool ``readOnlyHint: true`` (the protocol's own hint; no guessing)."""
    annotations = getattr(tool, "annotations", None)
    return getattr(annotations, "read_only_hint", None) is True


class McpPool:
    """Live MCP sessions of one worker, keyed by server spec.

    Args:
        home: the stigmer home whose secret store fills references (default: ``$STIGMER_HOME``).
        allow_env: the runner's variables servers may reference as ``${NAME}`` (``mcp.allow_env``).
    """

    def __init__(self, home: Path | None = None, allow_env: Iterable[str] = ()) -> None:
        from ...config.resolve import default_home

        self.home = Path(home) if home is not None else default_home(os.environ)
        self.allow_env = tuple(allow_env)
        self._conns: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _grants(self, server: dict[str, Any]) -> Grants:
        """What references may be filled from: the secret store is read only when the server has references."""
        from ...config.secret_store import SecretStore

        secrets: dict[str, str] = {}
        if server_references(server):
            try:
                secrets = SecretStore(self.home).values()
            except UserError as exc:
                raise McpFailure(f"MCP server {server.get('name')!r}: {exc.message} → {exc.hint}") from None
        return Grants(secrets, self.allow_env, os.environ)

    async def _session(self, server: dict[str, Any]) -> Any:
        key = _key(server)
        async with self._locks.setdefault(key, asyncio.Lock()):
            values = filled(server, self._grants(server))
            # A granted value changed (`stigmer secret set`) -> a new session; the digest keeps no value in clear.
            digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
            conn = self._conns.get(key)
            if conn is None or not conn.alive or conn.digest != digest:
                if conn is not None:
                    await conn.close()
                conn = _Connection(server, values, digest)
                await conn.open()
                self._conns[key] = conn
            return conn.session

    async def _drop(self, server: dict[str, Any]) -> None:
        conn = self._conns.pop(_key(server), None)
        if conn is not None:
            await conn.close()

    async def list_tools(self, server: dict[str, Any], taken: set[str]) -> list[ToolSchema]:
        """The server's tools (filtered by ``enabledTools``), named so they do not clash with ``taken``."""
        try:
            session = await self._session(server)
            listed = await session.list_tools()
        except McpFailure:
            raise
        except Exception as exc:
            await self._drop(server)
            raise McpFailure(f"MCP server {server.get('name')!r} failed to list its tools: {_describe(exc)}") from None
        enabled = server.get("enabledTools")
        out = []
        for tool in listed.tools:
            if enabled is not None and tool.name not in enabled:
                continue
            name = exposed_name(str(server.get("name")), tool.name, taken)
            taken.add(name)
            schema = getattr(tool, "input_schema", None) or {"type": "object", "properties": {}}
            out.append(ToolSchema(name=name, description=tool.description or "", parameters=dict(schema),
                                  server=str(server.get("name")), remote_name=tool.name, read_only=_read_only(tool)))
        return out

    async def call_tool(self, server: dict[str, Any], tool: str, args: dict[str, Any],
                        limit: int = MAX_OUTPUT) -> tuple[str, bool]:
        """Call ``tool``: ``(text, is_error)``. A tool error is a result; a broken server raises McpFailure."""
        enabled = server.get("enabledTools")
        if enabled is not None and tool not in enabled:
            return f"tool {tool!r} is not enabled on MCP server {server.get('name')!r}", True
        timeout = float(server.get("timeout") or 60.0)
        session = await self._session(server)
        try:
            result = await asyncio.wait_for(session.call_tool(tool, args), timeout)
        except TimeoutError:
            return f"tool {tool!r} on MCP server {server.get('name')!r} timed out after {timeout:g}s", True
        except Exception as exc:
            from mcp import MCPError

            if isinstance(exc, MCPError):  # a protocol-level refusal (unknown tool, bad params): the model can adapt
                return f"MCP server {server.get('name')!r} refused the call: {exc}", True
            await self._drop(server)
            raise McpFailure(f"MCP server {server.get('name')!r} broke during {tool!r}: {_describe(exc)}") from None
        return _content_text(result, limit), bool(getattr(result, "is_error", False))

    async def aclose(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
