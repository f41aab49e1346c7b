"""Which tool calls need a person, and the hash that binds a decision to the exact arguments. Pure functions.

Workflow code imports this module (inside Temporal's sandbox): it does no I/O and reads no clock. The
policy is the agent's ``spec.approvals`` (docs/SESSIONS.md, "Approvals inside a turn"); read-only is a
fact about the tool (``ToolSchema.read_only``: the built-in readers, MCP tools annotated ``readOnlyHint``),
never a guess from its name.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ..config.durations import parse_duration
from .params import ToolSchema

MODES = ("default", "never", "always")


@dataclass(frozen=True)
class Policy:
    """An agent's ``spec.approvals``: ``mode`` and the ``require``/``auto`` globs over tool names."""

    mode: str = "default"
    require: tuple[str, ...] = ()
    auto: tuple[str, ...] = ()


def policy_of(agent: dict[str, Any]) -> Policy:
    """The approval policy of an agent snapshot (absent: the default policy)."""
    raw = agent.get("approvals") or {}
    mode = str(raw.get("mode") or "default")
    return Policy(mode=mode if mode in MODES else "default", require=tuple(str(g) for g in raw.get("require") or ()),
                  auto=tuple(str(g) for g in raw.get("auto") or ()))


def args_hash(tool: str | None, args: Any) -> str:
    """SHA-256 hex of the canonical JSON of ``{"tool": tool, "args": args}`` (sorted keys, no spaces, UTF-8).

    The CLI and the API compute the same hash over the arguments they showed the person, so a decision can
    only ever approve those exact arguments.
    """
    text = json.dumps({"tool": tool, "args": args}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _match(name: str, globs: tuple[str, ...]) -> str | None:
    return next((glob for glob in globs if fnmatch.fnmatchcase(name, glob)), None)


def needs_approval(tool: ToolSchema, policy: Policy, always_allow: Collection[str] = ()) -> tuple[bool, str]:
    """Whether a call of ``tool`` must wait for a person, and why (the ``reason`` of ``approval_requested``).

    Order: the person's "always allow" for this session, then ``require``, then ``auto``, then ``mode``.
    """
    if tool.name in always_allow:
        return False, "always allowed in this session"
    glob = _match(tool.name, policy.require)
    if glob is not None:
        return True, f"{tool.name} matches spec.approvals.require {glob!r}"
    glob = _match(tool.name, policy.auto)
    if glob is not None:
        return False, f"{tool.name} matches spec.approvals.auto {glob!r}"
    if policy.mode == "never":
        return False, "spec.approvals.mode is never"
    if policy.mode == "always":
        return True, "spec.approvals.mode is always: every tool call asks"
    if tool.read_only:
        return False, f"{tool.name} only reads"
    what = "an MCP tool not annotated readOnlyHint" if tool.server else "a tool that can change things"
    return True, f"{tool.name} is {what} (the default policy asks; see spec.approvals)"


def approval_timeout(agent: dict[str, Any]) -> tuple[float | None, str]:
    """``spec.approvalTimeout`` as (seconds, the text the person wrote); (None, "") waits for ever."""
    raw = agent.get("approvalTimeout")
    if raw in (None, ""):
        return None, ""
    try:
        seconds = parse_duration(raw)
    except ValueError:  # refused at apply; a snapshot from elsewhere must not break the workflow
        return None, ""
    return (seconds, str(raw)) if seconds > 0 else (None, "")


def execution_of(approval_id: str) -> str:
    """The execution an approval id belongs to (``<execution id>.<step>.<index>``)."""
    return approval_id.rsplit(".", 2)[0] if approval_id.count(".") >= 2 else ""


def refusal(decision: str, reason: str) -> str:
    """The error result the model gets for a call that was not approved."""
    if decision == "timed_out":
        return f"this call was not run: {reason}"
    if decision == "cancelled":
        return "this call was not run: the execution was cancelled"
    return f"the person rejected this call: {reason or 'no reason given'}"
