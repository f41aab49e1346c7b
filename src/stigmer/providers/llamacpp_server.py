"""``python -m stigmer.providers.llamacpp_server``: llama.cpp's server (``llama_cpp.server``) plus one chat format.

The bundled Gemma 3 270M GGUF has no chat template, and llama-cpp-python's built-in ``gemma``
format drops system messages and tool results and leaves an assistant turn that only called a
tool unterminated, so an agent's instructions and its tools' answers would never reach the
model. This module registers ``stigmer-gemma``, which follows Gemma's own convention (the system
text opens the first user turn; turns alternate user/model), writes tool calls and tool results
as plain text turns, then runs ``llama_cpp.server`` unchanged with the same arguments.
"""

from __future__ import annotations

import runpy
from typing import Any

CHAT_FORMAT = "stigmer-gemma"
_START, _END = "<start_of_turn>", "<end_of_turn>\n"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _turn(message: dict[str, Any]) -> tuple[str, str]:
    role, text = message.get("role"), _text(message.get("content"))
    if role == "assistant":
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            text += f"\nCalled {function.get('name')}({function.get('arguments', '')})"
        return "model", text.strip()
    if role in ("tool", "function"):
        return "user", f"Result of {message.get('name') or 'the tool call'}: {text}"
    return "user", text


def gemma_prompt(messages: list[dict[str, Any]]) -> str:
    """The Gemma-style prompt for OpenAI-style ``messages``, ending with an open model turn."""
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system").strip()
    turns: list[tuple[str, str]] = []
    for message in messages:
        if message.get("role") == "system":
            continue
        role, text = _turn(message)
        if turns and turns[-1][0] == role:
            turns[-1] = (role, f"{turns[-1][1]}\n\n{text}")
        else:
            turns.append((role, text))
    if system:
        if turns and turns[0][0] == "user":
            turns[0] = ("user", f"{system}\n\n{turns[0][1]}")
        else:
            turns.insert(0, ("user", system))
    return "".join(f"{_START}{role}\n{text}{_END}" for role, text in turns) + f"{_START}model\n"


def register_format() -> None:
    """Make ``--chat_format stigmer-gemma`` known to llama-cpp-python in this process."""
    from llama_cpp import llama_chat_format as formats

    def format_stigmer_gemma(messages: list[dict[str, Any]], **_: Any) -> Any:
        return formats.ChatFormatterResponse(prompt=gemma_prompt(messages), stop=_END)

    formats.register_chat_format(CHAT_FORMAT)(format_stigmer_gemma)


def main() -> None:
    register_format()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
