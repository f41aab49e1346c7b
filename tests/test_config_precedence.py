"""Precedence: flag > env > file > default, for every combination of sources."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stigmer.config import resolve
from stigmer.providers.names import infer_provider


@dataclass(frozen=True)
class FakeDetector:
    """The machine as a test wants it: which LLMs are there."""

    ollama_up: bool = False
    ollama_bin: str | None = None
    embedded: bool = False

    def ollama_answers(self, base_url: str) -> bool:
        return self.ollama_up

    def ollama_binary(self) -> str | None:
        return self.ollama_bin

    def embedded_installed(self) -> bool:
        return self.embedded


NOTHING = FakeDetector()

# key -> (flag name or None, env var, file value, flag value, env value, default)
CASES = {
    "llm.model": ("--llm-model", "STIGMER_LLM_MODEL", "file-model", "flag-model", "env-model"),
    "temporal.namespace": ("--temporal-namespace", "TEMPORAL_NAMESPACE", "ns-file", "ns-flag", "ns-env"),
    "temporal.address": ("--temporal-address", "TEMPORAL_ADDRESS", "file:7233", "flag:7233", "env:7233"),
    "llm.base_url": ("--llm-base-url", "STIGMER_LLM_BASE_URL", "http://file", "http://flag", "http://env"),
    "llm.temperature": (None, "STIGMER_LLM_TEMPERATURE", 0.3, None, "0.9"),
    "runner.task_queue": (None, "STIGMER_RUNNER_TASK_QUEUE", "q-file", None, "q-env"),
}


def _write_file(home: Path, values: dict[str, object]) -> None:
    data: dict[str, dict[str, object]] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    (home / "config.yaml").write_text(yaml.safe_dump(data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(sorted(CASES)), st.sets(st.sampled_from(["flag", "env", "file"]))))
def test_the_highest_present_source_wins(stigmer_home: Path, present: dict[str, set[str]]) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "STIGMER_LLM_PROVIDER": "ollama"}
    flags: dict[str, tuple[object, str]] = {}
    file_values: dict[str, object] = {}
    for key, sources in present.items():
        flag, var, file_value, flag_value, env_value = CASES[key]
        if "flag" in sources and flag:
            flags[key] = (flag_value, flag)
        if "env" in sources:
            env[var] = str(env_value)
        if "file" in sources:
            file_values[key] = file_value
    _write_file(stigmer_home, file_values)
    cfg = resolve(flags, env, detector=NOTHING)
    for key, sources in present.items():
        flag, var, file_value, flag_value, env_value = CASES[key]
        item = cfg.items[key]
        if "flag" in sources and flag:
            assert (item.value, item.source, item.origin) == (flag_value, "flag", flag)
        elif "env" in sources:
            assert item.source == "env" and item.origin == var
            assert str(item.value) == str(env_value)
        elif "file" in sources:
            assert item.source == "file" and str(stigmer_home / "config.yaml") in item.origin
            assert item.value == file_value
        else:
            assert item.source in ("default", "detected")


def test_smart_default_prefers_anthropic_key(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "ANTHROPIC_API_KEY": "sk-ant-test-0000000000000000"}
    cfg = resolve({}, env, detector=FakeDetector(ollama_up=True, embedded=True))
    assert cfg.items["llm.provider"].value == "anthropic"
    assert cfg.items["llm.provider"].source == "detected"
    assert "ANTHROPIC_API_KEY" in cfg.items["llm.provider"].origin
    assert cfg.llm.model == "claude-sonnet-5-5"
    assert cfg.llm.api_key == "sk-ant-test-0000000000000000"


@pytest.mark.parametrize(
    ("detector", "provider", "origin_part"),
    [
        (FakeDetector(ollama_up=True, embedded=True), "ollama", "Ollama answers"),
        (FakeDetector(ollama_bin="/usr/bin/ollama", embedded=True), "ollama", "/usr/bin/ollama"),
        (FakeDetector(embedded=True), "llamacpp", "embedded"),
    ],
)
def test_smart_default_without_key(stigmer_home: Path, detector: FakeDetector, provider: str, origin_part: str) -> None:
    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home)}, detector=detector)
    assert cfg.llm.provider == provider
    assert origin_part in cfg.items["llm.provider"].origin


def test_no_llm_at_all_names_the_three_ways(stigmer_home: Path) -> None:
    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home)}, detector=NOTHING)
    assert cfg.llm.provider is None
    with pytest.raises(Exception) as info:
        cfg.require_provider()
    text = str(info.value)
    assert "ANTHROPIC_API_KEY" in text and "Ollama" in text and "stigmer[embedded]" in text


def test_model_from_a_stronger_source_implies_its_provider(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text("llm:\n  provider: ollama\n")
    cfg = resolve({"llm.model": ("claude-sonnet-4-5", "--llm-model")}, {"STIGMER_HOME": str(stigmer_home)},
                  detector=NOTHING, infer_provider=infer_provider)
    assert cfg.llm.provider == "anthropic"
    assert "--llm-model" in cfg.items["llm.provider"].origin


def test_explicit_provider_of_same_rank_beats_inference(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "LLM_PROVIDER": "ollama", "LLM_MODEL": "claude-x"}
    cfg = resolve({}, env, detector=NOTHING, infer_provider=infer_provider)
    assert (cfg.llm.provider, cfg.items["llm.provider"].origin) == ("ollama", "LLM_PROVIDER")


def test_stigmer_names_beat_short_forms(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "STIGMER_LLM_MODEL": "a:1", "LLM_MODEL": "b:2",
           "STIGMER_LLM_PROVIDER": "ollama", "LLM_PROVIDER": "openai"}
    cfg = resolve({}, env, detector=NOTHING)
    assert (cfg.llm.provider, cfg.llm.model) == ("ollama", "a:1")


def test_mode_cloud_defaults_to_anthropic(stigmer_home: Path) -> None:
    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home), "MODE": "cloud"}, detector=FakeDetector(embedded=True))
    assert cfg.llm.provider == "anthropic"
    assert cfg.items["llm.provider"].origin == "MODE=cloud"


def test_ollama_host_forms_become_a_base_url(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "LLM_PROVIDER": "ollama", "OLLAMA_HOST": "0.0.0.0:11500"}
    cfg = resolve({}, env, detector=NOTHING)
    assert cfg.llm.base_url == "http://127.0.0.1:11500"
    assert cfg.items["llm.base_url"].origin == "OLLAMA_HOST"


def test_temporal_address_means_external(stigmer_home: Path) -> None:
    managed = resolve({}, {"STIGMER_HOME": str(stigmer_home)}, detector=NOTHING)
    assert managed.temporal.managed is True and managed.temporal.address == "127.0.0.1:7233"
    legacy = resolve({}, {"STIGMER_HOME": str(stigmer_home), "TEMPORAL_SERVICE_ADDRESS": "old:7233"},
                     detector=NOTHING)
    assert legacy.temporal.managed is False and legacy.temporal.address == "old:7233"
    assert legacy.items["temporal.address"].origin == "TEMPORAL_SERVICE_ADDRESS"


def test_children_resolve_the_same_configuration_from_to_env(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "ANTHROPIC_API_KEY": "sk-ant-secret-1234567890abcd",
           "TEMPORAL_NAMESPACE": "team"}
    parent = resolve({"llm.model": ("claude-opus-4", "--llm-model")}, env, detector=NOTHING)
    child = resolve({}, parent.to_env(), detector=FakeDetector(ollama_up=True))
    for key in parent.items:
        assert child.items[key].value == parent.items[key].value, key
