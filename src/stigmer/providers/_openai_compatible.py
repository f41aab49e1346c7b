"""``ChatOpenAI`` for any OpenAI-compatible server: the transport both ``openai`` and ``llamacpp`` use.

The wire format is the same; what differs is where it goes, whether a key is needed, and two
quirks of servers other than OpenAI's (``compatible_server=True``): ``ChatOpenAI(max_tokens=N)``
sends ``max_completion_tokens``, which OpenAI expects and llama.cpp's server ignores (a reply
would run to the context limit), so the older ``max_tokens`` goes in the body instead; and a
tool-calling assistant turn's ``"content": null`` is sent as ``""`` (see :func:`_compatible_class`).

Streams ask for usage (``stream_usage=True``: the request carries ``stream_options: {"include_usage": true}``
and the server appends a last chunk with ``usage``, which LangChain turns into ``usage_metadata``).
LangChain turns it on by itself only for OpenAI's own URL; llama.cpp's C++ server, vLLM and LM Studio
answer it too. llama-cpp-python's server ignores it and sends no usage in a stream: those calls'
tokens are estimated (and marked so) by :mod:`.usage`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .spec import ModelSpec

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

# A slow local model may think for minutes. A plain float (not an httpx.Timeout) lets LangChain reuse
# its cached HTTP clients: building a fresh pair per model costs ~50 ms of SSL setup on every call.
READ_TIMEOUT_S = 300.0

# Local OpenAI-compatible servers do not check keys, but the SDK insists on one. Not a secret.
NO_KEY = "no-key-needed"


@functools.cache
def _compatible_class() -> type[BaseChatModel]:
    """``ChatOpenAI`` that sends ``""`` for a tool-calling assistant turn's null content.

    OpenAI accepts ``"content": null`` next to ``tool_calls``; llama-cpp-python's server rejects it
    with a 500 (its request schema wants a string), which would break every agent loop after
    its first tool call. Defined on first use: importing ``langchain_openai`` costs ~0.9 s.
    """
    from langchain_openai import ChatOpenAI

    class CompatibleChatOpenAI(ChatOpenAI):
        def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
            payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
            for message in payload.get("messages") or []:
                if isinstance(message, dict) and message.get("content") is None:
                    message["content"] = ""
            return payload

    return CompatibleChatOpenAI


def build_chat_openai(spec: ModelSpec, api_key: str | None, *, compatible_server: bool) -> BaseChatModel:
    """Build ``ChatOpenAI`` for ``spec`` with SDK retries off (Temporal owns retries)."""
    from langchain_openai import ChatOpenAI

    cls = _compatible_class() if compatible_server else ChatOpenAI
    params = dict(spec.params)
    kwargs: dict[str, Any] = {
        "model": spec.model,
        "api_key": api_key or NO_KEY,
        "max_retries": 0,
        "timeout": READ_TIMEOUT_S,
        "stream_usage": True,
    }
    if spec.base_url:
        kwargs["base_url"] = spec.base_url
    max_tokens = params.pop("max_tokens", None)
    if max_tokens is not None:
        if compatible_server:
            kwargs["extra_body"] = {"max_tokens": max_tokens}
        else:
            kwargs["max_tokens"] = max_tokens
    if "stop" in params:
        kwargs["stop_sequences"] = params.pop("stop")
    kwargs.update(params)
    return cls(**kwargs)
