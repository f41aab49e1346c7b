"""``ChatAnthropic`` that keeps the usage of a stream's ``message_start``.

Anthropic reports a stream's usage twice: ``message_start`` carries the prompt's counts (``input_tokens``,
``cache_read_input_tokens``, ``cache_creation_input_tokens``), and the final ``message_delta`` the reply's
``output_tokens`` (today with the cumulative input counts too, but not from every server that speaks the
protocol, nor from the API's older streams). LangChain reads only ``message_delta``, so a stream whose
delta has no input counts would lose them. This class puts ``message_start``'s counts on its chunk's
``response_metadata`` under :data:`stigmer.providers.usage.START_USAGE`, where :func:`~.usage.measure`
takes them when the merged ``usage_metadata`` has no input tokens. Stateless per event, so one model
object may serve concurrent streams. Imported only where a model is built (langchain_anthropic is slow).
"""

from __future__ import annotations

from typing import Any

from langchain_anthropic import ChatAnthropic

from .usage import START_USAGE


class StigmerChatAnthropic(ChatAnthropic):
    """``ChatAnthropic`` plus the input counts of ``message_start`` (see the module docstring)."""

    def _make_message_chunk_from_anthropic_event(self, event: Any, **kwargs: Any) -> tuple[Any, Any]:
        chunk, block = super()._make_message_chunk_from_anthropic_event(event, **kwargs)
        usage = getattr(getattr(event, "message", None), "usage", None)
        if event.type == "message_start" and chunk is not None and usage is not None:
            chunk.response_metadata[START_USAGE] = start_usage(usage)
        return chunk, block


def start_usage(usage: Any) -> dict[str, int]:
    """``message_start``'s usage as stigmer counts it: ``input_tokens`` includes cache reads and writes."""
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    return {"input_tokens": (getattr(usage, "input_tokens", None) or 0) + read + written,
            "cache_read": read, "cache_creation": written}
