"""``stigmer llm``: resolve, list, pull and status as a person sees them (Ollama via its protocol double)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from stigmer.cli.main import main
from tests.support.ollama_double import FakeModel, OllamaDouble, start_ollama_double
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def double() -> Iterator[OllamaDouble]:
    server = start_ollama_double()
    server.add_model("qwen2.5-coder:7b", size=4_700_000_000)
    server.add_model("gemma:2b", tools=False, size=1_700_000_000)
    yield server
    server.stop()


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_resolve_json_prints_the_model_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["llm", "resolve", "ollama:qwen2.5-coder:7b", "--param", "max_tokens=256", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["provider"] == "ollama"
    assert data["model"] == "qwen2.5-coder:7b"
    assert data["base_url"] == "http://127.0.0.1:11434"
    assert data["params"]["num_predict"] == 256


@pytest.mark.parametrize(("name", "expected"), [
    ("anthropic:claude-3-haiku-20240307", 4096),  # Claude 3 replies stop at 4096 tokens: the API refuses more
    ("anthropic:claude-3-5-haiku-latest", 8192),
    ("gpt-4o", 16_384),
    ("gpt-4o-2024-05-13", 4096),
    ("gpt-3.5-turbo", 4096),
    ("claude-sonnet-5-5", 20_000),  # the model takes more: the cloud default stands
    ("gpt-5-mini", 20_000),
    ("openai:some-unknown-model", 20_000),
    ("llama3.2", 8192),  # Ollama: no limit known without asking the server, which resolving does not do
])
def test_resolve_json_caps_the_default_reply_budget_at_the_models_limit(
        name: str, expected: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["llm", "resolve", name, "--json"], capsys)
    assert code == 0
    params = json.loads(out)["params"]
    assert params.get("max_tokens", params.get("num_predict")) == expected


def test_a_configured_max_tokens_is_capped_too_but_an_explicit_param_is_not(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_LLM_MAX_TOKENS", "500000")
    code, out, _ = run(["llm", "resolve", "claude-sonnet-5-5", "--json"], capsys)
    assert code == 0 and json.loads(out)["params"]["max_tokens"] == 128_000
    code, out, _ = run(["llm", "resolve", "gpt-4o", "--param", "max_tokens=30000", "--json"], capsys)
    assert code == 0 and json.loads(out)["params"]["max_tokens"] == 30_000


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_the_output_limit_tables_agree_with_the_model_data_langchain_ships(provider: str) -> None:
    """Every model with a published output limit (models.dev, as langchain-{provider} ships it) that the table
    covers gets that limit; a disagreement means a table entry is wrong or the data moved on."""
    import importlib

    from stigmer.providers.base import by_prefix

    table = importlib.import_module(f"stigmer.providers.{provider}").OUTPUT_LIMITS
    profiles = importlib.import_module(f"langchain_{provider}.data._profiles")._PROFILES
    known = {model: p["max_output_tokens"] for model, p in profiles.items() if p.get("max_output_tokens")}
    covered = {model: limit for model, limit in known.items() if by_prefix(table, model) is not None}
    assert len(covered) >= 10
    assert {m: by_prefix(table, m) for m in covered} == covered


def test_resolve_explains_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["llm", "resolve", "sonnet"], capsys)
    assert code == 0
    assert "anthropic:claude-sonnet-5-5" in out
    assert "built-in alias" in out


def test_resolve_unknown_name_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["llm", "resolve", "wizardlm-x"], capsys)
    assert code == 2
    assert "ollama:wizardlm-x" in err
    assert "Traceback" not in err + out


def test_resolve_bad_param_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["llm", "resolve", "llama3.2", "--param", "temperature"], capsys)
    assert code == 2
    assert "--param 'temperature' is not key=value" in err


def test_list_shows_size_and_tool_support(double: OllamaDouble, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    code, out, _ = run(["llm", "list"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "4.7 GB" in lines["qwen2.5-coder:7b"] and lines["qwen2.5-coder:7b"].endswith("yes")
    assert lines["gemma:2b"].endswith("no")


def test_list_when_ollama_is_down_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.ports import free_port

    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    code, _, err = run(["llm", "list"], capsys)
    assert code == 1
    assert "Ollama is not running" in err and "ollama serve" in err


def test_pull_streams_progress_and_expands_aliases(double: OllamaDouble, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    double.pullable["llama3.2:3b"] = FakeModel(name="llama3.2:3b", size=2_000_000_000)
    code, out, err = run(["llm", "pull", "llama3.2"], capsys)
    assert code == 0
    assert "pulled llama3.2:3b" in out
    assert "pulling manifest" in err and "success" in err
    assert "llama3.2:3b" in double.models


def test_pull_refuses_a_cloud_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["llm", "pull", "sonnet"], capsys)
    assert code == 2
    assert "only Ollama models are pulled" in err


def test_status_reports_the_active_model_and_readiness(double: OllamaDouble, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    code, out, _ = run(["llm", "status", "--llm-provider", "ollama"], capsys)
    assert code == 0
    assert "ollama:qwen2.5-coder:7b" in out
    assert "ready     yes (tools: native" in out and "tools     native: Ollama /api/show" in out


def test_status_when_the_model_is_not_pulled(double: OllamaDouble, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    code, _, err = run(["llm", "status", "--llm-model", "ollama:mistral:7b"], capsys)
    assert code == 1
    assert "stigmer llm pull mistral:7b" in err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("resolve", "list", "pull", "status"):
        code, out, _ = run(["llm", command, "--help"], capsys)
        assert code == 0 and "Examples:" in out


def test_resolve_says_how_a_model_calls_tools_and_why(double: OllamaDouble, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    code, out, _ = run(["llm", "resolve", "ollama:gemma:2b", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["tool_calls"] == {
        "mode": "emulated", "why": "Ollama /api/show: has no native tools; emulated with schema-constrained JSON "
                                   "(one tool call or the answer per step)"}
    code, out, _ = run(["llm", "resolve", "ollama:gemma:2b", "--llm-tool-calls", "none"], capsys)
    assert code == 0 and "tools     none (set by llm.tool_calls (flag: --llm-tool-calls))" in out
    code, _, err = run(["llm", "resolve", "ollama:gemma:2b", "--llm-tool-calls", "sometimes"], capsys)
    assert code != 0 and "unknown tool-call mode 'sometimes'" in err
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    code, out, _ = run(["llm", "resolve", "ollama:gemma:2b", "--json"], capsys)
    assert code == 0 and json.loads(out)["tool_calls"]["mode"] == "unknown"
