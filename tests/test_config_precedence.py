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


@pytest.mark.parametrize("key_where", ["env", "file"])
@pytest.mark.parametrize(("detector", "provider", "origin_part"), [
    (FakeDetector(ollama_up=True, embedded=True), "ollama", "Ollama answers"),
    (FakeDetector(embedded=True), "llamacpp", "embedded"),
])
def test_mode_local_is_an_explicit_choice_an_anthropic_key_does_not_switch(
        stigmer_home: Path, key_where: str, detector: FakeDetector, provider: str, origin_part: str) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "MODE": "local"}
    if key_where == "env":
        env["ANTHROPIC_API_KEY"] = "sk-ant-test-0000000000000000"
    else:
        (stigmer_home / "config.yaml").write_text("llm:\n  api_key: sk-ant-test-0000000000000000\n")
    cfg = resolve({}, env, detector=detector)
    item = cfg.items["llm.provider"]
    assert (item.value, item.source) == (provider, "detected")
    assert item.origin.startswith("MODE=local") and origin_part in item.origin


def test_mode_local_with_no_local_model_says_so_and_an_explicit_provider_still_wins(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "MODE": "local", "ANTHROPIC_API_KEY": "sk-ant-test-0000000000000000"}
    none = resolve({}, env, detector=NOTHING)
    assert none.llm.provider is None
    with pytest.raises(Exception, match="MODE=local") as info:
        none.require_provider()
    assert "unset MODE" in str(info.value)
    chosen = resolve({"llm.provider": ("anthropic", "--llm-provider")}, env, detector=NOTHING)
    assert (chosen.llm.provider, chosen.items["llm.provider"].origin) == ("anthropic", "--llm-provider")


# The upstream runner's own variable names, below stigmer's names and above the file.
UPSTREAM = {
    "runner.task_queue": ("STIGMER_RUNNER_TASK_QUEUE", ("STIGMER_TASK_QUEUE",
                                                        "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE"),
                          "--task-queue", "q-file"),
    "runner.max_concurrent": ("STIGMER_RUNNER_MAX_CONCURRENT", ("TEMPORAL_MAX_CONCURRENCY",), "--max-concurrent", 9),
}


def _upstream_cases() -> list[tuple[str, str]]:
    return [(key, name) for key, (_, names, _, _) in UPSTREAM.items() for name in names]


@pytest.mark.parametrize(("key", "upstream"), _upstream_cases())
def test_upstream_runner_variables_rank_flag_stigmer_upstream_file_default(
        stigmer_home: Path, key: str, upstream: str) -> None:
    own, names, flag, file_value = UPSTREAM[key]
    section, _, name = key.partition(".")
    (stigmer_home / "config.yaml").write_text(yaml.safe_dump({section: {name: file_value}}))
    base = {"STIGMER_HOME": str(stigmer_home), "STIGMER_LLM_PROVIDER": "ollama"}

    def winner(flags: dict[str, tuple[object, str]], **env: str) -> tuple[object, str, str]:
        item = resolve(flags, {**base, **env}, detector=NOTHING).items[key]
        return item.value, item.source, item.origin

    assert winner({}, **{upstream: "11"})[1:] == ("env", upstream)
    assert winner({}, **{upstream: "11", own: "12"}) == (_typed(key, "12"), "env", own)
    assert winner({(key): ("13", flag)}, **{upstream: "11", own: "12"}) == (_typed(key, "13"), "flag", flag)
    assert winner({})[1] == "file"
    (stigmer_home / "config.yaml").unlink()
    assert winner({})[1:] == ("default", "built-in default")
    if len(names) == 2:  # the two upstream task-queue names: the first listed wins over the second
        assert winner({}, **{names[0]: "a", names[1]: "b"}) == ("a", "env", names[0])


def _typed(key: str, raw: str) -> object:
    return int(raw) if key == "runner.max_concurrent" else raw


def test_a_child_given_its_parents_origins_says_why_and_its_own_flags_still_say_flag(stigmer_home: Path) -> None:
    from stigmer.config.resolve import origins_json, restore_origins
    from stigmer.worker.main import describe

    parent = resolve({}, {"STIGMER_HOME": str(stigmer_home)}, detector=FakeDetector(ollama_up=True))
    env = {**parent.to_env(), "STIGMER_CONFIG_ORIGINS": origins_json(parent)}
    child = restore_origins(resolve({"runner.task_queue": ("gpu", "--task-queue")}, env, detector=NOTHING), env)
    provider = child.items["llm.provider"]
    assert (provider.source, provider.origin) == ("detected", "Ollama answers at http://127.0.0.1:11434")
    assert (child.items["runner.task_queue"].source, child.value("runner.task_queue")) == ("flag", "gpu")
    line = describe(child)
    assert "provider=ollama (detected Ollama answers at http://127.0.0.1:11434)" in line
    assert "model=qwen2.5-coder:7b (default model for ollama; provider detected: Ollama answers at" in line
    assert "task_queue=gpu (flag --task-queue)" in line
