"""Context windows: what a model call is sent when the conversation outgrows the model's window. Activity side.

The strategy, in order (docs/LONG_RUNS.md):

1. Drop the oldest tool outputs: each becomes a one-line note saying how long it was. The outputs of the last
   step are never dropped (the model asked for them). Dropped outputs stay dropped (the transcript records how
   many), so the start of the prompt does not change from one call to the next.
2. If that is not enough, summarise: the oldest turns (everything before a point from which the rest fits in
   half the window) are replaced by a summary the same model writes, appended to the system message; the
   transcript is rewritten that way, so the summary is made once.
3. If even the last step alone does not fit, the call fails with a message naming the sizes and what to change.

Sizes are estimated at ``CHARS_PER_TOKEN`` characters per token (cautious for English and code), with a
reserve for the reply. The window is ``Tunables.context_tokens`` when set, else the model's ``num_ctx``, else
the provider's known window (``WINDOWS``), else 128,000 tokens.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 3.5
WINDOWS: dict[str, int] = {"anthropic": 200_000, "openai": 128_000, "ollama": 4096, "llamacpp": 8192}
DEFAULT_WINDOW = 128_000
OVERHEAD_CHARS = 16  # per message: role, separators
SUMMARY_PROMPT = ("You condense conversations. Summarise the conversation below for the assistant that continues "
                  "it: the person's requests, facts learned, decisions made, files touched, and what is still to do. "
                  "Be brief and concrete; write only the summary.")
SUMMARY_HEADER = "Summary of the earlier conversation (written to fit the context window):"


def window_tokens(provider: str, params: dict[str, Any], configured: int, num_ctx: int | None) -> int:
    if configured > 0:
        return configured
    asked = params.get("num_ctx")
    if isinstance(asked, int) and asked > 0:
        return asked
    if provider in ("ollama", "llamacpp") and num_ctx:
        return num_ctx
    return WINDOWS.get(provider, DEFAULT_WINDOW)


def budget_chars(window: int, max_tokens: int | None, tools_chars: int) -> int:
    """Characters the messages may take: the window less a reply reserve and the tool definitions."""
    reserve = min(max_tokens or window // 4, window // 4)
    return max(0, int((window - reserve) * CHARS_PER_TOKEN) - tools_chars)


def size(m: dict[str, Any]) -> int:
    text = int(m.get("chars") or 0) if m.get("content_ref") else len(str(m.get("content") or ""))
    calls = sum(len(json.dumps(c.get("args") or {})) + len(str(c.get("name", ""))) for c in m.get("tool_calls") or [])
    return text + calls + OVERHEAD_CHARS


def _last_step_start(messages: list[dict[str, Any]]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            return i
    return len(messages)


def _dropped_note(m: dict[str, Any]) -> dict[str, Any]:
    chars = int(m.get("chars") or 0) if m.get("content_ref") else len(str(m.get("content") or ""))
    return {"role": "tool", "tool_call_id": m.get("tool_call_id"), "name": m.get("name"),
            "is_error": bool(m.get("is_error")),
            "content": f"[this output ({chars} characters) was dropped to fit the model's context window]"}


class Memo:
    """What one runner already worked out about a message (its size, its dropped note, its LangChain form), by
    identity: a long conversation's messages are the same objects from one call to the next (the transcript
    cache shares them), so each step works out only what is new. Bounded (least recently used go first)."""

    def __init__(self, kept: int = 0) -> None:
        self.kept = kept
        self._by_id: OrderedDict[int, list[Any]] = OrderedDict()

    def _entry(self, m: dict[str, Any]) -> list[Any]:
        entry = self._by_id.get(id(m))
        if entry is None or entry[0] is not m:
            entry = [m, None, None, None]
            if self.kept:
                self._by_id[id(m)] = entry
                while len(self._by_id) > self.kept:
                    self._by_id.popitem(last=False)
        elif self.kept:
            self._by_id.move_to_end(id(m))
        return entry

    def size(self, m: dict[str, Any]) -> int:
        entry = self._entry(m)
        if entry[1] is None:
            entry[1] = size(m)
        return int(entry[1])

    def note(self, m: dict[str, Any]) -> dict[str, Any]:
        entry = self._entry(m)
        if entry[2] is None:
            entry[2] = _dropped_note(m)
        note: dict[str, Any] = entry[2]
        return note

    def converted(self, m: dict[str, Any], convert: Callable[[dict[str, Any]], Any]) -> Any:
        entry = self._entry(m)
        if entry[3] is None:
            entry[3] = convert(m)
        return entry[3]


@dataclass
class Fitted:
    messages: list[dict[str, Any]]
    dropped: int  # tool outputs dropped in all (the oldest ones)
    chars_dropped: int
    total: int  # characters of what is sent
    fits: bool


def fit(messages: list[dict[str, Any]], dropped: int, budget: int, memo: Memo | None = None) -> Fitted:
    """Drop the oldest tool outputs (at least ``dropped`` of them) until the messages fit ``budget``."""
    memo = memo or Memo()
    sizes = [memo.size(m) for m in messages]
    total = sum(sizes)
    protected = _last_step_start(messages)
    tools = [i for i, m in enumerate(messages) if m.get("role") == "tool" and i < protected]
    out = list(messages)
    count, freed = 0, 0
    for i in tools:
        if count >= dropped and total - freed <= budget:
            break
        note = memo.note(messages[i])
        freed += sizes[i] - memo.size(note)
        out[i] = note
        count += 1
    sent = total - freed
    return Fitted(out, count, freed, sent, sent <= budget)


def summary_cut(messages: list[dict[str, Any]], budget: int) -> int | None:
    """Where the kept part starts when older turns are summarised: the earliest person or assistant message
    after which everything fits in half the budget (tool results stay with their call). None: nothing to cut."""
    sizes = [size(m) for m in messages]
    kept = 0
    best: int | None = None
    for i in range(len(messages) - 1, 0, -1):
        kept += sizes[i]
        if kept > budget // 2:
            break
        if messages[i].get("role") in ("user", "assistant"):
            best = i
    if best is None or best <= 1:
        return None
    return best


def transcript_text(messages: list[dict[str, Any]], limit: int) -> str:
    """The turns to summarise as plain text (long tool outputs shortened), at most ``limit`` characters."""
    lines = []
    for m in messages:
        role, text = m.get("role"), str(m.get("content") or "")
        if role == "tool":
            text = text if len(text) <= 600 else text[:600] + f"… ({len(text)} characters)"
            lines.append(f"[tool {m.get('name')} result] {text}")
        else:
            calls = "; ".join(f"{c.get('name')}({json.dumps(c.get('args') or {})[:200]})"
                              for c in m.get("tool_calls") or [])
            lines.append(f"[{role}] {text}" + (f" [calls: {calls}]" if calls else ""))
    text = "\n".join(lines)
    return text if len(text) <= limit else text[-limit:]


def with_summary(system: dict[str, Any], summary: str, kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    content = f"{system.get('content') or ''}\n\n{SUMMARY_HEADER}\n{summary.strip()}"
    return [{"role": "system", "content": content}, *kept]
