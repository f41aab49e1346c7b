"""``build_prompt``: the messages one model call is sent when the conversation goes by reference. Activity side.

Reads the transcript the previous call stored, adds what came after it (``ModelCallInput.messages``), fits the
whole into the model's context window (``_context``: drop the oldest tool outputs, then summarise the oldest
turns with the same model), stores the new transcript and loads the stored tool outputs that are still sent.
The transcript is stored once the model replied, and only when the next call needs it (``_transcript.TAIL_CHARS``:
never after a plain run's final answer, which no call follows, nor while the messages since the last transcript are
few), under a key derived from its content, so a retried attempt stores nothing new and returns the same reference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..blobs.codec import SHARED
from ..providers.usage import measure
from . import _context
from ._messages import reply_budget
from .events import EventBuffer
from .params import ModelCallInput


def _tools_chars(inp: ModelCallInput) -> int:
    return sum(len(t.name) + len(t.description) + len(json.dumps(t.parameters)) for t in inp.tools)


def _too_large(chars: int, window: int, what: str, strategy: str) -> ApplicationError:
    return ApplicationError(
        f"{what} is about {int(chars / _context.CHARS_PER_TOKEN)} tokens, more than the model's context window "
        f"({window} tokens) leaves for it, and llm.context_strategy is {strategy!r}; set it to 'summarize', use a "
        "model with a larger window (llm.num_ctx for local models) or give the agent a smaller task",
        type="ContextWindow", non_retryable=True)


@dataclass
class Prompt:
    """What one model call is sent, and how to store its transcript once the model replied."""

    messages: list[dict[str, Any]]
    store: Callable[[], Awaitable[str]]
    """Store the transcript (the conversation up to this call, as fitted) and return its key; a key derived from
    the content, so a retried attempt stores nothing new. Not called after a plain run's final answer."""
    extra: dict[str, Any] | None = None
    """The usage of a summary written for this call (its tokens count too)."""
    must_store: bool = False
    """The fit dropped outputs or a summary replaced turns: the next call must start from this transcript."""


async def build_prompt(acts: Any, inp: ModelCallInput, events: EventBuffer) -> Prompt:
    transcripts = acts.transcripts
    namespace = (activity.info().workflow_id or SHARED)
    earlier, dropped, depth = await transcripts.read(namespace, inp.conversation)
    cfg = acts.cfg
    window = _context.window_tokens(inp.model.provider, inp.model.params,
                                    inp.context_tokens or cfg.value("llm.context_tokens"), cfg.llm.num_ctx)
    budget = _context.budget_chars(window, reply_budget(inp.model.params), _tools_chars(inp))
    strategy = cfg.value("llm.context_strategy")
    whole = earlier + inp.messages
    fitted = _context.fit(whole, dropped, budget if strategy != "fail" else 1 << 62, transcripts.memo)
    if strategy == "fail" and fitted.total > budget:
        raise _too_large(fitted.total, window, "the conversation", strategy)
    extra: dict[str, Any] | None = None
    if fitted.fits:
        store = partial(transcripts.write, namespace, inp.conversation, depth, earlier, inp.messages, fitted.dropped)
    elif strategy == "drop":
        raise _too_large(fitted.total, window, "the conversation, its old tool outputs dropped,", strategy)
    else:
        whole, extra = await _summarise(acts, inp, namespace, whole, budget, window, events)
        fitted = _context.fit(whole, 0, budget, transcripts.memo)
        if not fitted.fits:
            raise ApplicationError(
                f"the conversation's last step alone is about {int(fitted.total / _context.CHARS_PER_TOKEN)} tokens, "
                f"more than the model's context window ({window} tokens) leaves for it; use a model with a larger "
                "window (llm.num_ctx for local models) or keep tool outputs smaller (limits.tool_output_chars)",
                type="ContextWindow", non_retryable=True)
        store = partial(transcripts.write, namespace, None, 0, [], whole, fitted.dropped)
    if fitted.dropped > dropped:
        events.emit("context_trimmed", {"step": inp.step, "dropped_outputs": fitted.dropped - dropped,
                                        "dropped_total": fitted.dropped, "chars_dropped": fitted.chars_dropped,
                                        "window_tokens": window})
    return Prompt(await transcripts.contents(namespace, fitted.messages), store, extra,
                  must_store=extra is not None or fitted.dropped > dropped)


async def _summarise(acts: Any, inp: ModelCallInput, namespace: str, whole: list[dict[str, Any]], budget: int,
                     window: int, events: EventBuffer) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Replace the oldest turns by a summary the same model writes; returns the new conversation and its usage."""
    from langchain_core.messages import HumanMessage, SystemMessage

    cut = _context.summary_cut(whole, budget)
    if cut is None:
        raise ApplicationError(
            f"the conversation does not fit the model's context window ({window} tokens) and has no earlier turns "
            "to summarise; use a model with a larger window (llm.num_ctx for local models) or keep tool outputs "
            "smaller (limits.tool_output_chars)", type="ContextWindow", non_retryable=True)
    older = await acts.transcripts.contents(namespace, whole[1:cut])
    text = _context.transcript_text(older, max(2000, budget // 2))
    model = await acts._chat_model(inp)
    started = time.monotonic()
    answer = await model.ainvoke([SystemMessage(content=_context.SUMMARY_PROMPT), HumanMessage(content=text)])
    summary = answer.content if isinstance(answer.content, str) else str(answer.content)
    usage = measure(answer, inp.model, acts.cfg, duration_s=time.monotonic() - started, prompt_chars=len(text),
                    reply_chars=len(summary))
    new = _context.with_summary(whole[0], summary, whole[cut:])
    before, after = sum(_context.size(m) for m in whole), sum(_context.size(m) for m in new)
    events.emit("context_summarised", {"step": inp.step, "messages_summarised": cut - 1, "chars_before": before,
                                       "chars_after": after, "window_tokens": window})
    return new, usage
