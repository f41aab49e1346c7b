"""Parse YAML documents into resources; every error names the document and the field path.

``load_documents`` is what ``stigmer apply`` and the daemon's ``/v1/apply`` use. A bad document
is refused with where it is and what to change:
``agents.yaml, document 2 (Agent 'hello'): spec.mcpServers[0]: unknown server 'tiem', did you mean 'time'?``
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from ..config._suggest import did_you_mean
from ..errors import UserError
from .models import API_VERSION, KINDS, Agent, McpServer, Resource


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _allowed_fields(model: type[Any], loc: Sequence[int | str]) -> list[str]:
    """The YAML field names valid at ``loc`` (for a did-you-mean on an unknown field)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part) or next(
            (f for f in getattr(current, "model_fields", {}).values() if f.alias == part), None)
        annotation = getattr(field, "annotation", None)
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")]
        if not candidates:
            return []
        current = candidates[0]
    return [f.alias or n for n, f in getattr(current, "model_fields", {}).items()]


def _explain(exc: ValidationError, model: type[Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        where = _path(loc) or "(document)"
        if err["type"] == "extra_forbidden":
            word = str(loc[-1])
            lines.append(f"{where}: unknown field{did_you_mean(word, _allowed_fields(model, loc))}")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
    return "; ".join(lines)


def _label(source: str, index: int, data: Mapping[str, Any]) -> str:
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    kind = data.get("kind")
    what = f" ({kind} {name!r})" if kind and name else (f" ({kind})" if kind else "")
    return f"{source}, document {index}{what}"


def parse_document(data: Any, source: str = "<input>", index: int = 1) -> Resource:
    """Validate one already-parsed document (a mapping) into an :class:`Agent` or :class:`McpServer`."""
    if not isinstance(data, Mapping):
        raise UserError(f"{source}, document {index}: expected a mapping with apiVersion, kind, metadata and spec",
                        hint="see examples/agents/ for the shape")
    label = _label(source, index, data)
    if data.get("apiVersion") != API_VERSION:
        raise UserError(f"{label}: apiVersion: expected {API_VERSION!r}, got {data.get('apiVersion')!r}",
                        hint=f"set `apiVersion: {API_VERSION}`")
    kind = str(data.get("kind") or "")
    if kind not in KINDS:
        raise UserError(f"{label}: kind: unknown kind {kind!r}{did_you_mean(kind, KINDS)}",
                        hint=f"use one of {', '.join(KINDS)}")
    model = KINDS[kind]
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise UserError(f"{label}: {_explain(exc, model)}", hint="fix the document and apply it again") from None


def check_references(resources: Iterable[Resource], known_servers: Iterable[str] = (), source: str = "<input>") -> None:
    """Refuse agents naming MCP servers that are neither in ``resources`` nor in ``known_servers``."""
    items = list(resources)
    servers = {r.name for r in items if isinstance(r, McpServer)} | set(known_servers)
    for index, res in enumerate(items, start=1):
        if not isinstance(res, Agent):
            continue
        for i, name in enumerate(res.spec.mcp_servers):
            if name not in servers:
                raise UserError(
                    f"{source}, document {index} (Agent {res.name!r}): spec.mcpServers[{i}]: unknown server "
                    f"{name!r}{did_you_mean(name, servers)}",
                    hint="apply an McpServer with that name first, or fix the name")


def load_documents(text: str, source: str = "<input>", known_servers: Iterable[str] | None = None) -> list[Resource]:
    """Parse a YAML stream (``---``-separated documents) into resources.

    Args:
        text: the YAML text.
        source: where it came from (a file name), used in every error.
        known_servers: names of MCP servers that already exist. When given, every agent's
            ``mcpServers`` must name one of these or an McpServer in ``text``; when None, references
            are checked only if ``text`` itself defines McpServers.
    """
    try:
        raw = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{source}:{where}: not valid YAML: {problem}", hint="fix the YAML syntax") from None
    if not raw:
        raise UserError(f"{source}: no documents found", hint="see examples/agents/ for the shape")
    resources = [parse_document(doc, source, i) for i, doc in enumerate(raw, start=1)]
    names: dict[tuple[str, str], int] = {}
    for i, res in enumerate(resources, start=1):
        key = (res.kind, res.name)
        if key in names:
            raise UserError(f"{source}, document {i}: {res.kind} {res.name!r} is also defined in document {names[key]}",
                            hint="give each resource a unique metadata.name")
        names[key] = i
    if known_servers is not None or any(isinstance(r, McpServer) for r in resources):
        check_references(resources, known_servers or (), source)
    return resources
