"""The Anthropic provider: the real ChatAnthropic against the Anthropic Messages protocol double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool

from stigmer.config import resolve
from stigmer.providers import registry
from stigmer.providers.errors import ProviderError
from stigmer.providers.names import infer_provider
from tests.support.anthropic_double import AnthropicDouble, start_anthropic_double

KEY = "sk-ant-test-0000"


@pytest.fixture(scope="module")
def double() -> Iterator[AnthropicDouble]:
    server = start_anthropic_double(KEY)
    yield server
    server.stop()


def _cfg(home: Path, base_url: str, key: str | None = KEY) -> Any:
    env = {"STIGMER_HOME": str(home), **({"ANTHROPIC_API_KEY": key} if key else {})}
    flags = {"llm.provider": ("anthropic", "--llm-provider"), "llm.base_url": (base_url, "--llm-base-url")}
    return resolve(flags, env=env, infer_provider=infer_provider)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def _call(double: AnthropicDouble, home: Path, key: str | None = KEY) -> ProviderError:
    cfg = _cfg(home, double.url, key)
    spec = registry.resolve_model(cfg, "haiku")
    with pytest.raises(Exception) as info:
        registry.get_chat_model(spec, cfg).invoke("hi")
    return registry.classify_error(info.value, spec)


def test_streams_text_with_the_full_model_id(double: AnthropicDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    spec = registry.resolve_model(cfg, "sonnet", {"max_tokens": "99", "stop": "END"})
    chunks = [str(c.content) for c in registry.get_chat_model(spec, cfg).stream("hi")]
    assert "".join(chunks) == "Hello from the Anthropic double."
    assert len([c for c in chunks if c]) > 1
    body = double.requests[-1].body
    assert body["model"] == "claude-sonnet-5-5"
    assert body["max_tokens"] == 99
    assert body["stop_sequences"] == ["END"]


def test_streamed_tool_use_becomes_a_tool_call(double: AnthropicDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    double.tool_call = {"name": "get_weather", "input": {"city": "Paris"}}
    try:
        model = registry.get_chat_model(registry.resolve_model(cfg, "haiku"), cfg).bind_tools([get_weather])
        chunks = list(model.stream("weather in Paris?"))
    finally:
        double.tool_call = None
    merged: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_a_missing_key_names_the_variable_before_any_call(double: AnthropicDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url, key=None)
    spec = registry.resolve_model(cfg, "sonnet")
    for attempt in (lambda: registry.get_chat_model(spec, cfg), lambda: registry.preflight(spec, cfg, True)):
        with pytest.raises(ProviderError) as info:
            attempt()
        assert "ANTHROPIC_API_KEY" in str(info.value)
        assert info.value.retryable is False
    assert len([r for r in double.requests if r.body is None]) == 0


def test_a_rejected_key_is_not_retryable_and_names_the_variable(double: AnthropicDouble, stigmer_home: Path) -> None:
    error = _call(double, stigmer_home, key="sk-ant-wrong-1234")
    assert (error.kind, error.retryable) == ("auth", False)
    assert "ANTHROPIC_API_KEY" in str(error)
    assert "sk-ant-wrong-1234" not in str(error)


def test_429_is_retryable_and_honours_retry_after(double: AnthropicDouble, stigmer_home: Path) -> None:
    double.fail_next(429, retry_after=7)
    error = _call(double, stigmer_home)
    assert (error.kind, error.retryable, error.retry_after) == ("rate_limited", True, 7.0)


def test_529_overloaded_is_retryable(double: AnthropicDouble, stigmer_home: Path) -> None:
    double.fail_next(529, retry_after=2)
    error = _call(double, stigmer_home)
    assert (error.kind, error.retryable, error.retry_after) == ("overloaded", True, 2.0)
    assert "overloaded" in str(error)


def test_500_is_retryable(double: AnthropicDouble, stigmer_home: Path) -> None:
    double.fail_next(500, message="Internal server error")
    error = _call(double, stigmer_home)
    assert (error.kind, error.retryable) == ("server_error", True)


def test_a_connection_reset_is_retryable(double: AnthropicDouble, stigmer_home: Path) -> None:
    double.reset_next()
    error = _call(double, stigmer_home)
    assert (error.kind, error.retryable) == ("connection", True)


def test_a_prompt_too_long_is_a_context_overflow(double: AnthropicDouble, stigmer_home: Path) -> None:
    double.fail_next(400, message="prompt is too long: 210000 tokens > 200000 maximum")
    error = _call(double, stigmer_home)
    assert (error.kind, error.retryable) == ("context_overflow", False)
    assert "context window" in str(error)


def test_preflight_uses_the_table(double: AnthropicDouble, stigmer_home: Path) -> None:
    cfg = _cfg(stigmer_home, double.url)
    caps = registry.preflight(registry.resolve_model(cfg, "opus"), cfg, needs_tools=True)
    assert (caps.tools, caps.context_length) == (True, 200_000)
    with pytest.raises(ProviderError, match="claude-sonnet-5-5"):
        registry.preflight(registry.resolve_model(cfg, "claude-2.1"), cfg, needs_tools=True)
