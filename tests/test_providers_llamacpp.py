"""The embedded provider and the OpenAI-compatible path against llama.cpp's real server and the real GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from stigmer.config import resolve
from stigmer.providers import embedded, registry
from stigmer.providers.errors import ProviderError
from stigmer.providers.names import infer_provider
from tests.support.llamacpp import model_cache
from tests.support.ports import free_port

pytestmark = pytest.mark.slow


def _cfg(home: Path, provider: str, base_url: str) -> Any:
    flags = {"llm.provider": (provider, "--llm-provider"), "llm.base_url": (base_url, "--llm-base-url")}
    return resolve(flags, env={"STIGMER_HOME": str(home)}, infer_provider=infer_provider)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def test_embedded_provider_streams_and_honours_max_tokens(llamacpp_server: str, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, "llamacpp", llamacpp_server)
    spec = registry.resolve_model(cfg, params={"max_tokens": "8", "temperature": "0"})
    assert (spec.provider, spec.model, spec.base_url) == ("llamacpp", "smollm2-135m", llamacpp_server)
    chunks = [c for c in registry.get_chat_model(spec, cfg).stream("The capital of France is")]
    tokens = [c for c in chunks if c.content]
    assert 1 < len(tokens) <= 8
    finish = [c.response_metadata.get("finish_reason") for c in chunks if c.response_metadata.get("finish_reason")]
    assert finish == ["length"]


def test_a_reply_cut_at_max_tokens_is_marked_truncated(llamacpp_server: str, stigmer_home: Path) -> None:
    """The real server's stream, merged as the runner merges it: the stop reason survives and marks the reply.

    Synchronous on purpose: LangChain caches its async HTTP client per base URL, and a client made in this
    test's event loop would be closed for the next test that calls the same server from another loop.
    """
    from stigmer.worker._messages import from_langchain

    cfg = _cfg(stigmer_home, "llamacpp", llamacpp_server)
    spec = registry.resolve_model(cfg, params={"max_tokens": "5", "temperature": "0"})
    merged: Any = None
    for chunk in registry.get_chat_model(spec, cfg).stream("Tell me a long story about the sea"):
        merged = chunk if merged is None else merged + chunk
    assert from_langchain(merged, 1)["truncated"] is True


def test_embedded_provider_makes_a_forced_tool_call(llamacpp_server: str, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, "llamacpp", llamacpp_server)
    spec = registry.resolve_model(cfg, params={"max_tokens": "40", "temperature": "0"})
    model = registry.get_chat_model(spec, cfg).bind_tools([get_weather], tool_choice="get_weather")
    reply = model.invoke([SystemMessage("You answer weather questions with tools."),
                          HumanMessage("What is the weather in Paris?")])
    assert [c["name"] for c in reply.tool_calls] == ["get_weather"]
    assert isinstance(reply.tool_calls[0]["args"]["city"], str)


def test_a_conversation_after_a_tool_call_gets_an_answer(llamacpp_server: str, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, "llamacpp", llamacpp_server)
    model = registry.get_chat_model(registry.resolve_model(cfg, params={"max_tokens": "8"}), cfg)
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}
    reply = model.invoke([SystemMessage("Be brief."), HumanMessage("Weather in Paris?"),
                          AIMessage("", tool_calls=[call]),
                          ToolMessage("sunny", tool_call_id="call_1", name="get_weather")])
    assert reply.response_metadata.get("finish_reason") in ("stop", "length")


def test_openai_provider_works_against_any_compatible_server(llamacpp_server: str, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, "openai", llamacpp_server)
    spec = registry.resolve_model(cfg, "openai:smollm2-135m", {"max_tokens": "6"})
    assert spec.base_url == llamacpp_server
    text = "".join(str(c.content) for c in registry.get_chat_model(spec, cfg).stream("Hello"))
    assert text
    longer = registry.resolve_model(cfg, "openai:smollm2-135m", {"max_tokens": "40", "temperature": "0"})
    reply = registry.get_chat_model(longer, cfg).bind_tools([get_weather], tool_choice="get_weather").invoke("Rome?")
    assert reply.tool_calls[0]["name"] == "get_weather"


def test_preflight_reports_forced_tools_only_for_the_bundled_model(llamacpp_server: str, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, "llamacpp", llamacpp_server)
    caps = registry.preflight(registry.resolve_model(cfg), cfg, needs_tools=True)
    assert caps.tools and caps.forced_tools_only


def test_preflight_refuses_a_model_the_server_does_not_serve(llamacpp_server: str, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, "llamacpp", llamacpp_server)
    with pytest.raises(ProviderError, match="stigmer local start --llm-model"):
        registry.preflight(registry.resolve_model(cfg, "/models/other.gguf"), cfg, needs_tools=False)


def test_embedded_server_down_says_to_start_the_stack(stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, "llamacpp", f"http://127.0.0.1:{free_port()}/v1")
    spec = registry.resolve_model(cfg)
    with pytest.raises(ProviderError, match="stigmer local start") as info:
        registry.preflight(spec, cfg, needs_tools=False)
    assert info.value.retryable is True
    with pytest.raises(Exception) as raw:
        registry.get_chat_model(spec, cfg).invoke("hi")
    assert registry.classify_error(raw.value, spec).kind == "unreachable"


def test_server_command_is_safe_and_complete(tmp_path: Path) -> None:
    argv = embedded.server_command(tmp_path / "gemma-3-270m-q4_k_m.gguf", "127.0.0.1", 18434)
    joined = " ".join(argv)
    assert "--logits_all False" in joined
    assert "-m stigmer.providers.llamacpp_server --model" in joined  # llama_cpp.server + the stigmer-gemma format
    assert "--chat_format stigmer-gemma" in joined
    assert "--model_alias gemma3-270m" in joined
    assert "--host 127.0.0.1 --port 18434" in joined
    smol = " ".join(embedded.server_command(embedded.smollm2_file(), "127.0.0.1", 18434))
    assert "--model_alias smollm2-135m" in smol and "--chat_format" not in smol  # ChatML from the GGUF's template
    other = embedded.server_command(tmp_path / "mine.gguf", "127.0.0.1", 1, n_ctx=2048)
    assert "--chat_format" not in other and "--n_ctx 2048" in " ".join(other)
    assert not any("key" in part.lower() for part in argv)


def test_ensure_model_assembles_once_atomically_with_progress(stigmer_home: Path) -> None:
    cfg = resolve({}, env={"STIGMER_HOME": str(stigmer_home)}, infer_provider=infer_provider)
    seen: list[tuple[int, int]] = []
    path = embedded.ensure_model(cfg, lambda done, total: seen.append((done, total)))
    assert path.parent == stigmer_home / "models"
    assert path.stat().st_size == seen[-1][1] == seen[-1][0]
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    mtime = path.stat().st_mtime_ns
    again: list[tuple[int, int]] = []
    assert embedded.ensure_model(cfg, lambda d, t: again.append((d, t))) == path
    assert again == [] and path.stat().st_mtime_ns == mtime


def test_model_file_accepts_a_gguf_path_and_refuses_a_missing_one(stigmer_home: Path) -> None:
    cfg = resolve({}, env={"STIGMER_HOME": str(stigmer_home)}, infer_provider=infer_provider)
    cached = embedded.assemble_to(model_cache())
    assert embedded.model_file(str(cached), cfg) == cached
    assert embedded.model_file("smollm2-135m", cfg) == embedded.smollm2_file()
    assert embedded.smollm2_file().stat().st_size > 90_000_000
    with pytest.raises(Exception, match="GGUF model file not found"):
        embedded.model_file(str(stigmer_home / "missing.gguf"), cfg)


def test_the_chat_format_keeps_instructions_tool_calls_and_results() -> None:
    from stigmer.providers.llamacpp_server import gemma_prompt

    prompt = gemma_prompt([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "name": "get_weather", "content": "sunny"},
    ])
    assert prompt == ("<start_of_turn>user\nBe brief.\n\nWeather in Paris?<end_of_turn>\n"
                      "<start_of_turn>model\nCalled get_weather({\"city\": \"Paris\"})<end_of_turn>\n"
                      "<start_of_turn>user\nResult of get_weather: sunny<end_of_turn>\n"
                      "<start_of_turn>model\n")
