"""How a model calls tools: ``native`` (the provider's tool-calling API), ``emulated`` or ``none``, and why.

Many local models cannot call tools natively: small GGUFs on llama-cpp-python's server (which turns a reply into a
tool call only when the call is forced), Ollama models without the ``tools`` capability. Where the server can
constrain a reply to a JSON schema (llama.cpp's grammar, Ollama's ``format``), stigmer emulates tool calling: each
step the model must write either one tool call whose arguments match that tool's schema or a final answer
(``worker/_toolemu.py``). The decision, first that applies:

1. the agent's ``spec.toolCalls`` when not ``auto``;
2. the runner's ``llm.tool_calls`` (``--llm-tool-calls``, ``STIGMER_LLM_TOOL_CALLS``) when not ``auto``;
3. ``auto``: native when the provider says the model calls tools, else emulated when the server can constrain
   output, else none (and an agent with tools is refused before it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from .base import Capabilities

MODES = ("auto", "native", "emulated", "none")


@dataclass(frozen=True)
class ToolMode:
    """The decided mode and why (shown by ``stigmer llm resolve``, ``llm status``, ``doctor``, ``model_resolved``)."""

    mode: str
    why: str
    forced: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"mode": self.mode, "why": self.why}


def check(mode: str, where: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a UserError naming ``where`` it was set."""
    if mode not in MODES:
        raise UserError(f"{where}: unknown tool-call mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    return mode


def decide(caps: Capabilities, *, agent: str = "auto", configured: str = "auto", configured_origin: str = "",
           can_constrain: bool | None = None) -> ToolMode:
    """The mode for a model with capabilities ``caps``; ``agent``/``configured`` force one unless ``auto``."""
    constrained = caps.constrained if can_constrain is None else can_constrain
    if agent != "auto":
        return _forced(agent, "the agent's spec.toolCalls", constrained)
    if configured != "auto":
        return _forced(configured, f"llm.tool_calls ({configured_origin or 'configured'})", constrained)
    source = caps.source or "the provider"
    if caps.tools and not caps.forced_tools_only:
        return ToolMode("native", f"{source}: the model calls tools")
    if constrained:
        lacks = "turns replies into tool calls only when forced" if caps.forced_tools_only else "has no native tools"
        return ToolMode("emulated", f"{source}: {lacks}; emulated with schema-constrained JSON (one tool call "
                                    "or the answer per step)")
    return ToolMode("none", f"{source}: the model has no native tool calling and the server cannot constrain output")


def _forced(mode: str, by: str, constrained: bool) -> ToolMode:
    if mode == "emulated" and not constrained:
        raise UserError(f"{by} asks for emulated tool calls, but this provider cannot constrain a reply to a "
                        "JSON schema", hint="emulation works on llama.cpp's server and Ollama; use native or none here")
    return ToolMode(mode, f"set by {by}", forced=True)
