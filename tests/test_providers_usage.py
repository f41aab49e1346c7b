"""Usage and cost of a model call: each provider's own counts through the real chat model, the price tables,
``pricing:`` in config.yaml, and the sums the runner keeps (``providers/usage``, ``providers/pricing``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stigmer.cli.main import main
from stigmer.config import resolve
from stigmer.errors import ConfigError
from stigmer.providers import registry, usage
from stigmer.providers.names import infer_provider
from stigmer.providers.pricing import cost_usd, price_of
from stigmer.providers.spec import ModelSpec
from tests.support.anthropic_double import AnthropicDouble, start_anthropic_double
from tests.support.ollama_double import OllamaDouble, start_ollama_double
from tests.support.openai_double import OpenAIDouble, start_openai_double
from tests.support.scripted_provider import PLUGIN, write_script
from tests.test_config_precedence import NOTHING

ANTHROPIC_KEY = "sk-ant-test-0000"
OPENAI_KEY = "sk-test-0000"
PROMPT = "What is the weather in Paris today?"


@pytest.fixture(scope="module")
def anthropic() -> Iterator[AnthropicDouble]:
    server = start_anthropic_double(ANTHROPIC_KEY)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaDouble]:
    server = start_ollama_double()
    server.add_model("qwen2.5-coder:7b", reply="Sunny in Paris", prompt_eval_count=31, eval_count=42)
    server.add_model("llama3.2:3b", reply="Sunny in Paris", prompt_eval_count=None, eval_count=5)
    yield server
    server.stop()


@pytest.fixture()
def openai() -> Iterator[OpenAIDouble]:
    server = start_openai_double(OPENAI_KEY)
    server.usage = {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30,
                    "prompt_tokens_details": {"cached_tokens": 4}}
    yield server
    server.stop()


def _cfg(home: Path, provider: str, base_url: str | None = None, **env: str) -> Any:
    flags = {"llm.provider": (provider, "--llm-provider")}
    if base_url:
        flags["llm.base_url"] = (base_url, "--llm-base-url")
    return resolve(flags, env={"STIGMER_HOME": str(home), **env}, detector=NOTHING, infer_provider=infer_provider)


def _call(cfg: Any, name: str | None = None) -> dict[str, Any]:
    """Stream one call as the runner does (chunks summed into one message) and measure it."""
    spec = registry.resolve_model(cfg, name)
    merged: Any = None
    for chunk in registry.get_chat_model(spec, cfg).stream(PROMPT):
        merged = chunk if merged is None else merged + chunk
    return usage.measure(merged, spec, cfg, duration_s=0.25, prompt_chars=len(PROMPT),
                         reply_chars=len(str(merged.content)))


def _usd(*terms: tuple[int, float]) -> float:
    return round(sum(tokens * price for tokens, price in terms) / 1_000_000, 8)


# --- each provider's own usage, through the real chat model against its protocol double ---

def test_anthropic_usage_is_the_apis_with_cache_reads_and_writes(anthropic: AnthropicDouble,
                                                                  stigmer_home: Path) -> None:
    anthropic.usage = {"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 50,
                       "cache_creation_input_tokens": 30}
    cfg = _cfg(stigmer_home, "anthropic", anthropic.url, ANTHROPIC_API_KEY=ANTHROPIC_KEY)
    got = _call(cfg, "sonnet")
    # Anthropic's input_tokens leaves out the cached prompt: stigmer's counts the whole prompt.
    assert got == {"input_tokens": 92, "output_tokens": 7, "cached_tokens": 50, "estimated": False,
                   "duration_ms": 250,
                   # claude-sonnet-5-5: 2.00 input, 0.10 cache read, 2.50 cache write, 10.00 output
                   "cost_usd": _usd((12, 2.0), (50, 0.10), (30, 2.50), (7, 10.0))}


def test_anthropic_input_counts_come_from_message_start_when_the_delta_has_none(
        anthropic: AnthropicDouble, stigmer_home: Path) -> None:
    anthropic.usage = {"input_tokens": 40, "output_tokens": 9, "cache_read_input_tokens": 8,
                       "cache_creation_input_tokens": 0}
    anthropic.delta_input_usage = False
    try:
        got = _call(_cfg(stigmer_home, "anthropic", anthropic.url, ANTHROPIC_API_KEY=ANTHROPIC_KEY), "sonnet")
    finally:
        anthropic.delta_input_usage = True
    assert (got["input_tokens"], got["output_tokens"], got["cached_tokens"], got["estimated"]) == (48, 9, 8, False)


def test_ollama_usage_is_prompt_eval_count_and_eval_count_and_costs_nothing(ollama: OllamaDouble,
                                                                            stigmer_home: Path) -> None:
    got = _call(_cfg(stigmer_home, "ollama", OLLAMA_HOST=ollama.url), "qwen2.5-coder:7b")
    assert got == {"input_tokens": 31, "output_tokens": 42, "cached_tokens": 0, "estimated": False,
                   "duration_ms": 250, "cost_usd": 0.0}


def test_ollama_without_a_prompt_count_estimates_it_and_says_so(ollama: OllamaDouble, stigmer_home: Path) -> None:
    got = _call(_cfg(stigmer_home, "ollama", OLLAMA_HOST=ollama.url), "llama3.2:3b")
    assert got["estimated"] is True
    assert got["input_tokens"] == (len(PROMPT) + 3) // 4
    assert got["output_tokens"] == 5  # the count Ollama did give is kept


def test_openai_stream_asks_for_usage_and_prices_cached_input(openai: OpenAIDouble, stigmer_home: Path) -> None:
    got = _call(_cfg(stigmer_home, "openai", openai.url + "/v1", OPENAI_API_KEY=OPENAI_KEY), "gpt-5-mini")
    assert openai.requests[-1].body["stream_options"] == {"include_usage": True}
    # gpt-5-mini: 0.25 input, 0.025 cached input, 2.00 output
    assert got == {"input_tokens": 21, "output_tokens": 9, "cached_tokens": 4, "estimated": False,
                   "duration_ms": 250, "cost_usd": _usd((17, 0.25), (4, 0.025), (9, 2.0))}


def test_llamacpp_path_reads_the_compatible_usage_chunk_and_costs_nothing(openai: OpenAIDouble,
                                                                          stigmer_home: Path) -> None:
    openai.api_key = None  # a local server checks no key
    got = _call(_cfg(stigmer_home, "llamacpp", openai.url + "/v1"))
    assert openai.requests[-1].body["stream_options"] == {"include_usage": True}
    assert (got["input_tokens"], got["output_tokens"], got["cached_tokens"]) == (21, 9, 4)
    assert (got["estimated"], got["cost_usd"]) == (False, 0.0)


def test_a_server_that_sends_no_stream_usage_is_estimated_and_marked(openai: OpenAIDouble,
                                                                     stigmer_home: Path) -> None:
    openai.api_key, openai.stream_usage = None, False  # as llama-cpp-python's server: include_usage is ignored
    got = _call(_cfg(stigmer_home, "llamacpp", openai.url + "/v1"))
    assert got["estimated"] is True
    assert got["input_tokens"] == (len(PROMPT) + 3) // 4
    assert got["output_tokens"] == (len(openai.reply) + 3) // 4
    assert got["cached_tokens"] == 0


@pytest.mark.slow
def test_the_real_embedded_server_sends_no_stream_usage_so_the_call_is_estimated(llamacpp_server: str,
                                                                                 stigmer_home: Path) -> None:
    """llama-cpp-python's server ignores ``stream_options.include_usage``: its calls are estimated, and free.

    If a later server sends usage, this fails on purpose: then its counts are reported, and this test should
    check they are used as they are.
    """
    cfg = _cfg(stigmer_home, "llamacpp", llamacpp_server)
    spec = registry.resolve_model(cfg, params={"max_tokens": "6", "temperature": "0"})
    prompt = "The capital of France is"
    merged: Any = None
    for chunk in registry.get_chat_model(spec, cfg).stream(prompt):
        merged = chunk if merged is None else merged + chunk
    reply = str(merged.content)
    got = usage.measure(merged, spec, cfg, duration_s=0.1, prompt_chars=len(prompt), reply_chars=len(reply))
    assert merged.usage_metadata is None
    assert got == {"input_tokens": (len(prompt) + 3) // 4, "output_tokens": (len(reply) + 3) // 4,
                   "cached_tokens": 0, "estimated": True, "duration_ms": 100, "cost_usd": 0.0}


# --- prices: the tables, local models, unknown models ---

@pytest.mark.parametrize(("provider", "model", "base_url", "expected"), [
    ("anthropic", "claude-sonnet-5-5", None, (2.0, 10.0, 0.10)),
    ("anthropic", "claude-sonnet-4-5-20250929", None, (3.0, 15.0, 0.30)),  # a dated id takes its family's price
    ("openai", "gpt-5.5", None, (5.0, 30.0, 0.50)),
    ("openai", "gpt-5.5-pro", None, (30.0, 180.0, None)),  # not gpt-5.5's price: a prefix is not a match
    ("openai", "gpt-4o-2024-08-06", None, (2.50, 10.0, 1.25)),
    ("openai", "gpt-5-mini", "http://127.0.0.1:4000/v1", (0.25, 2.0, 0.025)),  # OpenAI's model behind a proxy
    ("openai", "qwen2.5-7b-instruct", "http://localhost:8000/v1", (0.0, 0.0, 0.0)),  # a local server
    ("ollama", "qwen2.5-coder:7b", None, (0.0, 0.0, 0.0)),
    ("llamacpp", "gemma3-270m", None, (0.0, 0.0, 0.0)),
    ("llamacpp", "smollm2-135m", None, (0.0, 0.0, 0.0)),
])
def test_prices_from_the_tables_and_local_models(provider: str, model: str, base_url: str | None,
                                                 expected: tuple[float, float, float | None]) -> None:
    price = price_of(ModelSpec(provider, model, base_url), None)
    assert price is not None
    assert (price.input, price.output, price.cached) == expected


@pytest.mark.parametrize(("provider", "model", "base_url"), [
    ("anthropic", "claude-haiku-5-5", None),  # no published price yet
    ("openai", "gpt-6", None),
    ("openai", "mistral-large", "https://llm.example.com/v1"),  # someone else's server, someone else's price
])
def test_an_unknown_cloud_price_is_none_not_zero(provider: str, model: str, base_url: str | None) -> None:
    spec = ModelSpec(provider, model, base_url)
    assert price_of(spec, None) is None
    assert cost_usd(spec, {"input_tokens": 1000, "output_tokens": 10}, None) is None


def test_a_long_prompt_is_billed_at_the_long_context_price() -> None:
    spec = ModelSpec("openai", "gpt-5.5")
    assert cost_usd(spec, {"input_tokens": 272_000, "output_tokens": 1000}, None) == _usd((272_000, 5.0),
                                                                                            (1000, 30.0))
    assert cost_usd(spec, {"input_tokens": 272_001, "output_tokens": 1000}, None) == _usd((272_001, 10.0),
                                                                                            (1000, 45.0))


# --- pricing: in config.yaml ---

def _with_pricing(home: Path, text: str) -> Any:
    (home / "config.yaml").write_text("llm:\n  provider: ollama\npricing:\n" + text)
    return resolve({}, {"STIGMER_HOME": str(home)}, detector=NOTHING, infer_provider=infer_provider)


def test_config_pricing_overrides_the_table_and_prices_unknown_models(stigmer_home: Path) -> None:
    cfg = _with_pricing(stigmer_home, '  "anthropic:claude-sonnet-5-5": {input: 1.5, output: 7.5}\n'
                                      "  gpt-6: {input: 4, output: 16, cached: 0.4}\n"
                                      "  qwen2.5-coder:7b: {input: 0.1, output: 0.2}\n")
    counts = {"input_tokens": 1000, "output_tokens": 100, "cached_tokens": 400}
    # no cached price given: a cached token costs what an input token does
    assert cost_usd(ModelSpec("anthropic", "claude-sonnet-5-5-20260101"), counts, cfg) == _usd((1000, 1.5),
                                                                                                 (100, 7.5))
    assert cost_usd(ModelSpec("openai", "gpt-6"), counts, cfg) == _usd((600, 4.0), (400, 0.4), (100, 16.0))
    # a local model priced on purpose (a rented GPU): config.yaml wins over "local is free"
    assert cost_usd(ModelSpec("ollama", "qwen2.5-coder:7b"), counts, cfg) == _usd((1000, 0.1), (100, 0.2))
    # a provider-qualified key prices only that provider's model
    assert price_of(ModelSpec("openai", "claude-sonnet-5-5"), cfg) is None
    price = price_of(ModelSpec("anthropic", "claude-sonnet-5-5"), cfg)
    assert price is not None and (price.source, price.match) == ("config.yaml", "anthropic:claude-sonnet-5-5")


@pytest.mark.parametrize(("text", "field", "problem"), [
    ("  - gpt-6\n", "pricing", "must map model ids to prices"),
    ("  gpt-6: 3\n", "pricing.gpt-6", "must be a mapping"),
    ("  gpt-6: {input: 3}\n", "pricing.gpt-6", "output is missing"),
    ("  gpt-6: {input: 3, output: 9, cahced: 1}\n", "pricing.gpt-6.cahced", "did you mean 'cached'"),
    ("  gpt-6: {input: -1, output: 9}\n", "pricing.gpt-6.input", "must be 0 or more"),
    ("  gpt-6: {input: cheap, output: 9}\n", "pricing.gpt-6.input", "must be a number"),
    ("  gpt-6: {input: .nan, output: 9}\n", "pricing.gpt-6.input", "must be 0 or more"),
    ("  gpt-6: {input: true, output: 9}\n", "pricing.gpt-6.input", "must be a number"),
])
def test_a_bad_pricing_entry_names_the_file_the_field_and_the_fix(stigmer_home: Path, text: str, field: str,
                                                                   problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        _with_pricing(stigmer_home, text)
    message = str(info.value)
    assert f"{stigmer_home / 'config.yaml'}:" in message
    assert f"{field}:" in message and problem in message
    assert "USD per million tokens" in (info.value.hint or "")


# --- the CLI shows the price ---

def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_llm_resolve_shows_the_price_and_where_it_comes_from(stigmer_home: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["llm", "resolve", "anthropic:claude-sonnet-5-5"], capsys)
    assert code == 0
    assert "price     $2.00 input / $10.00 output / $0.10 cached input per million tokens" in out
    assert "stigmer's price table" in out
    code, out, _ = _run(["llm", "resolve", "ollama:qwen2.5-coder:7b"], capsys)
    assert "price     0 (a local model" in out
    code, out, _ = _run(["llm", "resolve", "openai:gpt-6", "--json"], capsys)
    price = json.loads(out)["price"]
    assert price["source"] == "unknown" and "pricing:" in price["hint"]


def test_config_pricing_shows_in_resolve_and_config_show(stigmer_home: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (stigmer_home / "config.yaml").write_text("pricing:\n  gpt-6: {input: 4, output: 16, cached: 0.4}\n")
    code, out, _ = _run(["llm", "resolve", "openai:gpt-6", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["price"] == {"source": "config.yaml", "match": "gpt-6", "input": 4.0, "output": 16.0,
                                        "cached": 0.4, "cache_write": 4.0}
    code, out, _ = _run(["config", "show"], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("pricing.gpt-6 "))
    assert "input=4 output=16 cached=0.4" in row and str(stigmer_home / "config.yaml") in row
    code, out, _ = _run(["config", "show", "--json"], capsys)
    assert json.loads(out)["pricing.gpt-6"]["value"] == {"input": 4.0, "output": 16.0, "cached": 0.4}
    (stigmer_home / "config.yaml").write_text("pricing:\n  gpt-6: {input: 4}\n")
    code, out, err = _run(["llm", "resolve", "openai:gpt-6"], capsys)
    assert code != 0 and "pricing.gpt-6: output is missing" in err and "Traceback" not in err


# --- the scripted model (worker tests) and the sums ---

def test_scripted_model_reports_its_scripted_usage_and_price(tmp_path: Path, stigmer_home: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    script = write_script(tmp_path / "s.json", [
        {"content": "first", "usage": {"input_tokens": 120, "output_tokens": 30, "cached_tokens": 100}},
        {"content": "second reply", "usage": None},
    ], price={"input": 3.0, "output": 15.0, "cached": 0.3})
    spec = ModelSpec("scripted", script)
    cfg = _cfg(stigmer_home, "ollama")
    model = registry.get_chat_model(spec, cfg)
    from langchain_core.messages import AIMessage, HumanMessage

    calls = []
    for history in ([HumanMessage("hi")], [HumanMessage("hi"), AIMessage("first"), HumanMessage("more")]):
        merged: Any = None
        for chunk in model.stream(history):
            merged = chunk if merged is None else merged + chunk
        calls.append(usage.measure(merged, spec, cfg, duration_s=0.01, prompt_chars=8, reply_chars=12))
    assert calls[0] == {"input_tokens": 120, "output_tokens": 30, "cached_tokens": 100, "estimated": False,
                        "duration_ms": 10, "cost_usd": _usd((20, 3.0), (100, 0.3), (30, 15.0))}
    assert (calls[1]["input_tokens"], calls[1]["output_tokens"], calls[1]["estimated"]) == (2, 3, True)
    total = usage.add(usage.add(usage.empty(), calls[0]), calls[1])
    assert total["input_tokens"] == 122 and total["output_tokens"] == 33 and total["model_calls"] == 2
    assert total["estimated"] is True and total["duration_ms"] == 20
    assert total["cost_usd"] == round(calls[0]["cost_usd"] + calls[1]["cost_usd"], 8)
    assert usage.total_tokens(total) == 155


def test_a_sum_with_an_unknown_price_has_no_cost() -> None:
    known = {"input_tokens": 10, "output_tokens": 5, "cached_tokens": 0, "estimated": False, "duration_ms": 3,
             "cost_usd": 0.002}
    unknown = {**known, "cost_usd": None}
    assert usage.add(usage.add(usage.empty(), known), known)["cost_usd"] == 0.004
    assert usage.add(usage.add(usage.empty(), known), unknown)["cost_usd"] is None
    assert usage.add(usage.empty(), known)["estimated"] is False
