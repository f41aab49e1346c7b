"""Name resolution: aliases, provider prefixes, inference and parameter translation (table tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stigmer.config import resolve
from stigmer.errors import UserError
from stigmer.providers import registry
from stigmer.providers.names import BUILTIN_ALIASES, infer_provider
from stigmer.providers.spec import ModelSpec


def _cfg(env: dict[str, str] | None = None, **flags: str) -> Any:
    home = {"STIGMER_HOME": str(Path.cwd() / "unused-home")} if env is None or "STIGMER_HOME" not in env else {}
    return resolve({k.replace("_", ".", 1): (v, "--flag") for k, v in flags.items()}, env={**home, **(env or {})},
                   infer_provider=infer_provider)


@pytest.fixture
def cfg(stigmer_home: Path) -> Any:
    return _cfg({"STIGMER_HOME": str(stigmer_home)}, llm_provider="ollama")


ALIASES = [
    ("qwen2.5-coder", "ollama", "qwen2.5-coder:7b"),
    ("llama3.2", "ollama", "llama3.2:3b"),
    ("deepseek-coder", "ollama", "deepseek-coder-v2:16b"),
    ("codellama", "ollama", "codellama:13b"),
    ("sonnet", "anthropic", "claude-sonnet-5-5"),
    ("claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5-20250929"),
    ("haiku", "anthropic", "claude-haiku-5-5"),
    ("opus", "anthropic", "claude-opus-5-5"),
    ("gpt-mini", "openai", "gpt-5-mini"),
    ("gemma3-270m", "llamacpp", "gemma3-270m"),
    ("smollm2-135m", "llamacpp", "smollm2-135m"),
    ("embedded", "llamacpp", "smollm2-135m"),
]


@pytest.mark.parametrize(("name", "provider", "model"), ALIASES)
def test_builtin_aliases_resolve_to_full_ids(cfg: Any, name: str, provider: str, model: str) -> None:
    spec = registry.resolve_model(cfg, name)
    assert (spec.provider, spec.model) == (provider, model)
    assert "alias" in spec.reason


def test_every_builtin_alias_is_covered_or_resolvable(cfg: Any) -> None:
    for name in BUILTIN_ALIASES:
        spec = registry.resolve_model(cfg, name)
        assert spec.id == BUILTIN_ALIASES[name] or spec.model == BUILTIN_ALIASES[name].split(":", 1)[1]


PREFIXES = [
    ("ollama:qwen2.5-coder:7b", "ollama", "qwen2.5-coder:7b"),
    ("anthropic:claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest"),
    ("openai:my-local-model", "openai", "my-local-model"),
    ("ollama:llama3.2", "ollama", "llama3.2:3b"),
    ("anthropic:sonnet", "anthropic", "claude-sonnet-5-5"),
]


@pytest.mark.parametrize(("name", "provider", "model"), PREFIXES)
def test_provider_prefix_splits_on_the_first_colon(cfg: Any, name: str, provider: str, model: str) -> None:
    spec = registry.resolve_model(cfg, name)
    assert (spec.provider, spec.model) == (provider, model)


INFERENCE = [
    ("claude-3-7-sonnet-latest", "anthropic", "'claude'"),
    ("gpt-4o-mini", "openai", "'gpt-'"),
    ("o1-preview", "openai", "'o1'"),
    ("o3-mini", "openai", "'o3'"),
    ("o4-mini", "openai", "'o4'"),
    ("mistral:7b", "ollama", "name:tag"),
    *[(f"{family}-test", "ollama", "family") for family in
      ("qwen", "llama", "mistral", "mixtral", "gemma", "phi", "deepseek", "codellama", "yi", "solar", "orca",
       "vicuna", "granite", "smollm")],
    ("models/tiny.gguf", "llamacpp", ".gguf"),
]


@pytest.mark.parametrize(("name", "provider", "why"), INFERENCE)
def test_provider_is_inferred_from_a_bare_name(cfg: Any, name: str, provider: str, why: str) -> None:
    spec = registry.resolve_model(cfg, name)
    assert spec.provider == provider
    assert why in spec.reason


def test_gguf_path_becomes_absolute(cfg: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = registry.resolve_model(cfg, "./m.gguf")
    assert spec.model == str(tmp_path / "m.gguf")
    assert spec.base_url == "http://127.0.0.1:18434/v1"


def test_unknown_name_suggests_and_shows_the_prefixed_form(cfg: Any) -> None:
    with pytest.raises(UserError) as info:
        registry.resolve_model(cfg, "sonet")
    text = str(info.value)
    assert "did you mean 'sonnet'" in text
    assert "ollama:sonet" in text


def test_user_aliases_from_config_win(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text("aliases:\n  fast: ollama:llama3.2:1b\n  sonnet: openai:gpt-4o\n")
    cfg = _cfg({"STIGMER_HOME": str(stigmer_home)}, llm_provider="ollama")
    fast = registry.resolve_model(cfg, "fast")
    assert (fast.provider, fast.model) == ("ollama", "llama3.2:1b")
    assert "user alias" in fast.reason
    assert registry.resolve_model(cfg, "sonnet").id == "openai:gpt-4o"


def test_alias_cycle_is_an_error_not_a_hang(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text("aliases:\n  a: b\n  b: a\n")
    cfg = _cfg({"STIGMER_HOME": str(stigmer_home)}, llm_provider="ollama")
    with pytest.raises(UserError, match="loops"):
        registry.resolve_model(cfg, "a")


def test_no_name_uses_the_configured_model_and_says_where_it_came_from(stigmer_home: Path) -> None:
    cfg = _cfg({"STIGMER_HOME": str(stigmer_home), "STIGMER_LLM_MODEL": "llama3.2"})
    spec = registry.resolve_model(cfg)
    assert spec.id == "ollama:llama3.2:3b"
    assert "STIGMER_LLM_MODEL" in spec.reason


def test_configured_provider_keeps_an_opaque_model_name(stigmer_home: Path) -> None:
    cfg = _cfg({"STIGMER_HOME": str(stigmer_home)}, llm_provider="openai", llm_model="local-model",
               llm_base_url="http://127.0.0.1:9/v1")
    spec = registry.resolve_model(cfg)
    assert (spec.provider, spec.model, spec.base_url) == ("openai", "local-model", "http://127.0.0.1:9/v1")


def test_bundled_model_is_the_embedded_provider_for_config_too() -> None:
    assert infer_provider("gemma3-270m") == "llamacpp"
    assert infer_provider("smollm2-135m") == "llamacpp"
    assert infer_provider("gemma2:2b") == "ollama"


TRANSLATION = [
    ("ollama:llama3.2:3b", {"max_tokens": "64", "temperature": "0.5", "top_p": "0.9", "stop": "a,b", "num_ctx": "4096"},
     {"num_predict": 64, "temperature": 0.5, "top_p": 0.9, "stop": ["a", "b"], "num_ctx": 4096}),
    ("anthropic:claude-x", {"max_tokens": "64", "temperature": "0.5", "top_p": "0.9", "stop": "END"},
     {"max_tokens": 64, "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"]}),
    ("openai:gpt-4o", {"max_tokens": "64", "temperature": "1", "stop": "x"},
     {"max_tokens": 64, "temperature": 1.0, "stop": ["x"]}),
    ("llamacpp:gemma3-270m", {"max_tokens": "8", "top_p": "1"}, {"max_tokens": 8, "top_p": 1.0}),
]


@pytest.mark.parametrize(("name", "given", "native"), TRANSLATION)
def test_common_parameters_translate_to_native_ones(cfg: Any, name: str, given: dict[str, str],
                                                    native: dict[str, Any]) -> None:
    spec = registry.resolve_model(cfg, name, given)
    assert {k: spec.params[k] for k in native} == native


def test_ollama_gets_a_fixed_num_ctx_by_default(cfg: Any) -> None:
    spec = registry.resolve_model(cfg, "llama3.2")
    assert spec.params["num_ctx"] == 8192
    assert spec.params["num_predict"] == 8192  # local models: the upstream runner's 8192 replies


@pytest.mark.parametrize(("name", "param", "expected"), [("llama3.2", "num_predict", 8192),
                                                         ("claude-sonnet-5-5", "max_tokens", 20_000),
                                                         ("gpt-5-mini", "max_tokens", 20_000)])
def test_max_tokens_defaults_per_provider_unless_set(cfg: Any, name: str, param: str, expected: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.resolve_model(cfg, name).params[param] == expected
    monkeypatch.setenv("STIGMER_LLM_MAX_TOKENS", "333")
    from stigmer.config import resolve

    assert registry.resolve_model(resolve(), name).params[param] == 333


@pytest.mark.parametrize("name", ["anthropic:claude-x", "openai:gpt-4o", "llamacpp:gemma3-270m"])
def test_a_parameter_a_provider_cannot_take_is_an_error_naming_it(cfg: Any, name: str) -> None:
    with pytest.raises(UserError) as info:
        registry.resolve_model(cfg, name, {"num_ctx": "4096"})
    assert name.split(":")[0] in str(info.value)
    assert "num_ctx" in str(info.value)


@pytest.mark.parametrize(("params", "words"), [({"temprature": "1"}, "did you mean 'temperature'"),
                                               ({"temperature": "3"}, "between 0 and 2"),
                                               ({"max_tokens": "many"}, "max_tokens")])
def test_bad_parameters_are_named(cfg: Any, params: dict[str, str], words: str) -> None:
    with pytest.raises(UserError, match=words):
        registry.resolve_model(cfg, "llama3.2", params)


def test_spec_round_trips_and_holds_no_secret(stigmer_home: Path) -> None:
    secret = "sk-ant-api03-very-secret-key"
    cfg = _cfg({"STIGMER_HOME": str(stigmer_home), "ANTHROPIC_API_KEY": secret})
    spec = registry.resolve_model(cfg)
    assert spec.provider == "anthropic"
    assert secret not in repr(spec.to_dict())
    assert ModelSpec.from_dict(spec.to_dict()) == spec


PLUGIN = '''
from stigmer.providers.base import Provider

class EchoProvider(Provider):
    name = "echo"
    default_model = "echo-1"

def register(registry):
    registry.register(EchoProvider())
'''


def test_plugins_register_through_the_same_hook(stigmer_home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "echo_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("STIGMER_PLUGINS", "echo=echo_plugin")
    env = {"STIGMER_HOME": str(stigmer_home), "STIGMER_PLUGINS": "echo=echo_plugin"}
    cfg = _cfg(env, llm_provider="echo")
    spec = registry.resolve_model(cfg)
    assert (spec.provider, spec.model) == ("echo", "echo-1")
    assert registry.resolve_model(cfg, "echo:other").model == "other"


def test_a_broken_plugin_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_PLUGINS", "ghost=no_such_module_xyz")
    with pytest.raises(UserError, match="STIGMER_PLUGINS"):
        registry.get_provider("ghost")


def test_unknown_provider_suggests(cfg: Any) -> None:
    with pytest.raises(UserError, match="did you mean 'ollama'"):
        registry.get_provider("olama")


def test_the_default_embedded_model_is_defined_once() -> None:
    """The config layer's default and the provider layer's bundled name are the same model (SmolLM2)."""
    from stigmer.config.keys import DEFAULT_MODELS
    from stigmer.providers.names import BUNDLED_MODEL

    assert DEFAULT_MODELS["llamacpp"] == BUNDLED_MODEL == "smollm2-135m"
