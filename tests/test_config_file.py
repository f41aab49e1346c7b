"""The config file: both layouts, bad input, and `config set` keeping the file whole and private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stigmer.config import KEYS, resolve
from stigmer.errors import ConfigError
from tests.test_config_precedence import NOTHING


def _resolve(home: Path) -> object:
    return resolve({}, {"STIGMER_HOME": str(home)}, detector=NOTHING)


def test_nested_layout_of_existing_users_is_read(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text(
        "backend:\n  local:\n    llm:\n      provider: ollama\n      model: llama3.2:3b\n"
        "    temporal:\n      address: old-cluster:7233\n")
    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home)}, detector=NOTHING)
    assert (cfg.llm.provider, cfg.llm.model, cfg.temporal.address) == ("ollama", "llama3.2:3b", "old-cluster:7233")
    assert cfg.items["llm.model"].origin.endswith("config.yaml:5")


def test_flat_layout_wins_over_nested(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text(
        "llm:\n  model: flat:1\nbackend:\n  local:\n    llm:\n      model: nested:1\n")
    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home), "LLM_PROVIDER": "ollama"}, detector=NOTHING)
    assert cfg.llm.model == "flat:1"


def test_malformed_yaml_names_file_and_line(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text("llm:\n  provider: ollama\n  model: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        _resolve(stigmer_home)
    assert f"{stigmer_home / 'config.yaml'}:" in str(info.value)
    assert "not valid YAML" in str(info.value)


def test_wrong_type_names_key_file_and_line(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text("llm:\n  temperature: hot\n")
    with pytest.raises(ConfigError) as info:
        _resolve(stigmer_home)
    assert "config.yaml:2" in str(info.value) and "llm.temperature" in str(info.value)


def test_unknown_provider_in_env_names_the_variable(stigmer_home: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({}, {"STIGMER_HOME": str(stigmer_home), "LLM_PROVIDER": "olama"}, detector=NOTHING)
    assert "LLM_PROVIDER" in str(info.value) and "did you mean 'ollama'" in str(info.value)


def test_unknown_key_warns_with_suggestion(stigmer_home: Path) -> None:
    (stigmer_home / "config.yaml").write_text("llm:\n  modle: x\n")
    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home)}, detector=NOTHING)
    assert any("llm.modle" in w and "did you mean 'llm.model'" in w for w in cfg.warnings)


def test_set_keeps_other_content_and_mode_0600(stigmer_home: Path) -> None:
    from stigmer.config import file as config_file

    path = stigmer_home / "config.yaml"
    path.write_text("llm:\n  provider: ollama\naliases:\n  fast: llama3.2\ncustom_section:\n  keep: me\n")
    os.chmod(path, 0o644)
    config_file.set_value(path, "llm.model", "llama3.2:3b")
    data = yaml.safe_load(path.read_text())
    assert data["llm"] == {"provider": "ollama", "model": "llama3.2:3b"}
    assert data["aliases"] == {"fast": "llama3.2"} and data["custom_section"] == {"keep": "me"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_unset_removes_only_that_key(stigmer_home: Path) -> None:
    from stigmer.config import file as config_file

    path = stigmer_home / "config.yaml"
    path.write_text("llm:\n  provider: ollama\n  model: x:1\n")
    assert config_file.unset_value(path, "llm.model") is True
    assert yaml.safe_load(path.read_text()) == {"llm": {"provider": "ollama"}}
    assert config_file.unset_value(path, "llm.model") is False


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_file_content_gives_a_config_or_a_clear_error(stigmer_home: Path, text: str) -> None:
    path = stigmer_home / "config.yaml"
    path.write_bytes(text.encode("utf-8"))
    try:
        cfg = _resolve(stigmer_home)
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert set(cfg.items) == set(KEYS)  # type: ignore[attr-defined]
    assert path.read_bytes() == text.encode("utf-8")  # reading never changes the file
