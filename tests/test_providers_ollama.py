"""The Ollama provider: the real ChatOllama and stigmer's Ollama client against the Ollama protocol double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool

from stigmer.config import resolve
from stigmer.providers import ollama_api, registry
from stigmer.providers.errors import ProviderError
from stigmer.providers.names import infer_provider
from tests.support.ollama_double import OllamaDouble, start_ollama_double
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def double() -> Iterator[OllamaDouble]:
    server = start_ollama_double()
    server.add_model("qwen2.5-coder:7b", reply="Hello from qwen", context_length=32768,
                     tool_call={"name": "get_weather", "arguments": {"city": "Paris"}})
    server.add_model("gemma:2b", tools=False, family="gemma", context_length=8192)
    server.add_model("hermes3:8b", tools=True, family="llama")
    yield server
    server.stop()


def _cfg(home: Path, base_url: str, **extra: str) -> Any:
    env = {"STIGMER_HOME": str(home), "OLLAMA_HOST": base_url, **extra}
    return resolve({"llm.provider": ("ollama", "--llm-provider")}, env=env, infer_provider=infer_provider)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def test_streams_tokens_through_the_real_chat_model(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "qwen2.5-coder", {"max_tokens": "77"})
    assert spec.base_url == double.url
    chunks = [c.content for c in registry.get_chat_model(spec, cfg).stream("hi")]
    assert "".join(str(c) for c in chunks) == "Hello from qwen"
    assert len([c for c in chunks if c]) > 1
    sent = double.chat_requests()[-1]
    assert sent["options"]["num_ctx"] == 8192
    assert sent["options"]["num_predict"] == 77
    assert sent["keep_alive"] == "30m"


def test_a_tool_call_comes_back_as_a_langchain_tool_call(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "ollama:qwen2.5-coder:7b")
    reply = registry.get_chat_model(spec, cfg).bind_tools([get_weather]).invoke("weather in Paris?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_preflight_reads_capabilities_and_context_length(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    caps = registry.preflight(registry.resolve_model(cfg, "ollama:qwen2.5-coder:7b"), cfg, needs_tools=True)
    assert caps.tools is True
    assert caps.context_length == 32768


def test_a_model_without_tools_gets_emulated_tool_calls_not_a_refusal(double: OllamaDouble,
                                                                      stigmer_home: Path) -> None:
    """``/api/show`` without the ``tools`` capability: emulated with ``format``; tool models are still suggested."""
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "ollama:gemma:2b")
    caps = registry.preflight(spec, cfg, needs_tools=True)
    assert caps.tools is False and caps.constrained is True
    mode = registry.tool_mode(spec, cfg, caps)
    assert mode.mode == "emulated" and mode.why.startswith("Ollama /api/show: has no native tools")
    native = registry.resolve_model(cfg, "ollama:qwen2.5-coder:7b")
    assert registry.tool_mode(native, cfg, registry.preflight(native, cfg, needs_tools=True)).mode == "native"
    assert registry.get_provider("ollama").alternatives(spec, cfg)[:2] == ["qwen2.5-coder:7b", "hermes3:8b"]


def test_preflight_on_a_model_not_pulled_says_how_to_pull_it(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    with pytest.raises(ProviderError) as info:
        registry.preflight(registry.resolve_model(cfg, "llama3.2"), cfg, needs_tools=False)
    assert "stigmer llm pull llama3.2:3b" in str(info.value)
    assert info.value.retryable is False


def test_chat_on_a_model_not_pulled_is_classified(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "ollama:mistral:7b")
    with pytest.raises(Exception) as info:
        registry.get_chat_model(spec, cfg).invoke("hi")
    error = registry.classify_error(info.value, spec)
    assert (error.kind, error.retryable) == ("model_not_found", False)
    assert "stigmer llm pull mistral:7b" in str(error)


def test_chat_with_tools_on_a_model_without_them_is_classified(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "ollama:gemma:2b")
    with pytest.raises(Exception) as info:
        registry.get_chat_model(spec, cfg).bind_tools([get_weather]).invoke("weather?")
    error = registry.classify_error(info.value, spec)
    assert (error.kind, error.retryable) == ("no_tools", False)
    assert "gemma:2b" in str(error)


def test_ollama_not_running_is_never_a_bare_connection_refused(stigmer_home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    cfg = _cfg(stigmer_home, url)
    spec = registry.resolve_model(cfg, "llama3.2")
    with pytest.raises(Exception) as info:
        registry.get_chat_model(spec, cfg).invoke("hi")
    error = registry.classify_error(info.value, spec)
    assert f"Ollama is not running at {url}" in str(error)
    assert "ollama serve" in str(error)
    assert "refused" not in str(error).lower()
    assert error.retryable is True
    with pytest.raises(ProviderError, match="Ollama is not running"):
        registry.preflight(spec, cfg, needs_tools=False)


def test_server_errors_are_retryable(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "ollama:qwen2.5-coder:7b")
    double.fail_next(500, message="llama runner process has terminated")
    with pytest.raises(Exception) as info:
        registry.get_chat_model(spec, cfg).invoke("hi")
    error = registry.classify_error(info.value, spec)
    assert (error.kind, error.retryable) == ("server_error", True)
    assert "llama runner process has terminated" in str(error)


def test_a_reset_connection_is_retryable(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "ollama:qwen2.5-coder:7b")
    double.reset_next()
    with pytest.raises(Exception) as info:
        registry.get_chat_model(spec, cfg).invoke("hi")
    error = registry.classify_error(info.value, spec)
    assert (error.kind, error.retryable) == ("connection", True)


def test_context_overflow_is_not_retryable(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "ollama:qwen2.5-coder:7b")
    double.fail_next(400, message="the input length exceeds the context length")
    with pytest.raises(Exception) as info:
        registry.get_chat_model(spec, cfg).invoke("hi")
    error = registry.classify_error(info.value, spec)
    assert (error.kind, error.retryable) == ("context_overflow", False)
    assert "llm.num_ctx" in str(error)


def test_tags_and_pull_follow_the_api(double: OllamaDouble) -> None:
    from tests.support.ollama_double import FakeModel

    double.pullable["phi3:mini"] = FakeModel(name="phi3:mini", size=2_000_000_000)
    events = list(ollama_api.pull(double.url, "phi3:mini"))
    assert events[-1] == {"status": "success"}
    assert max(e.get("completed", 0) for e in events) == 2_000_000_000
    assert "phi3:mini" in [m.name for m in ollama_api.tags(double.url)]
    with pytest.raises(ProviderError, match="could not pull 'nope:1b'"):
        list(ollama_api.pull(double.url, "nope:1b"))


async def test_apreflight_works_from_async_code(double: OllamaDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    caps = await registry.apreflight(registry.resolve_model(cfg, "ollama:qwen2.5-coder:7b"), cfg, needs_tools=True)
    assert caps.tools is True
