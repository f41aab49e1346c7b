"""`stigmer config ...` as a person uses it: output, exit codes, masking, no tracebacks."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import stigmer

SECRET = "sk-ant-api03-SENTINEL-abcdefghijklmnop-f00d"


def test_show_json_maps_every_key_to_value_source_origin() -> None:
    out = stigmer("config", "show", "--json", "--llm-provider", "ollama", env={"TEMPORAL_NAMESPACE": "team"})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["llm.provider"] == {"value": "ollama", "source": "flag", "origin": "--llm-provider"}
    assert data["temporal.namespace"] == {"value": "team", "source": "env", "origin": "TEMPORAL_NAMESPACE"}
    assert data["llm.model"]["value"] == "qwen2.5-coder:7b" and data["llm.model"]["source"] == "default"
    assert all(set(v) == {"value", "source", "origin"} for v in data.values())


def test_show_names_the_upstream_runner_variable_that_set_a_value() -> None:
    env = {"TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE": "agents-gpu", "TEMPORAL_MAX_CONCURRENCY": "7"}
    out = stigmer("config", "show", "--json", "--llm-provider", "ollama", env=env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["runner.task_queue"] == {"value": "agents-gpu", "source": "env",
                                         "origin": "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE"}
    assert data["runner.max_concurrent"] == {"value": 7, "source": "env", "origin": "TEMPORAL_MAX_CONCURRENCY"}
    table = stigmer("config", "show", "--llm-provider", "ollama", env=env)
    assert "TEMPORAL_MAX_CONCURRENCY" in table.stdout and "agents-gpu" in table.stdout


def test_secret_is_masked_in_show_and_get(stigmer_home: Path) -> None:
    env = {"ANTHROPIC_API_KEY": SECRET}
    shown = stigmer("config", "show", env=env)
    as_json = stigmer("config", "show", "--json", env=env)
    got = stigmer("config", "get", "llm.api_key", env=env)
    for out in (shown, as_json, got):
        assert out.returncode == 0, out.stderr
        assert SECRET not in out.stdout + out.stderr
    assert "sk-ant-…f00d" in shown.stdout
    assert json.loads(as_json.stdout)["llm.api_key"]["value"] == "sk-ant-…f00d"


def test_anthropic_key_flag_warns_and_is_masked() -> None:
    out = stigmer("config", "show", "--anthropic-key", SECRET)
    assert out.returncode == 0
    assert "process list" in out.stderr
    assert SECRET not in out.stdout + out.stderr
    assert "anthropic" in out.stdout


def test_anthropic_key_file_and_stdin(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    from_file = stigmer("config", "show", "--json", "--anthropic-key-file", str(key_file))
    from_stdin = stigmer("config", "show", "--json", "--anthropic-key-file", "-", input=SECRET + "\n")
    for out in (from_file, from_stdin):
        data = json.loads(out.stdout)
        assert data["llm.provider"]["value"] == "anthropic"
        assert data["llm.api_key"]["source"] == "flag"
        assert SECRET not in out.stdout + out.stderr


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    out = stigmer("config", "show", "--anthropic-key-file", str(tmp_path / "nope"))
    assert out.returncode == 2
    assert "--anthropic-key-file" in out.stderr and "nope" in out.stderr
    assert "Traceback" not in out.stderr


def test_set_get_unset_round_trip(stigmer_home: Path) -> None:
    assert stigmer("config", "set", "llm.temperature", "0.7").returncode == 0
    assert stigmer("config", "get", "llm.temperature").stdout.strip() == "0.7"
    path = stigmer_home / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stigmer("config", "unset", "llm.temperature").returncode == 0
    assert stigmer("config", "get", "llm.temperature").stdout.strip() == "-"


def test_set_secret_is_not_echoed(stigmer_home: Path) -> None:
    out = stigmer("config", "set", "llm.api_key", SECRET)
    assert out.returncode == 0 and SECRET not in out.stdout + out.stderr
    assert stat.S_IMODE((stigmer_home / "config.yaml").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("config", "set", "llm.temperature", "hot"), "llm.temperature: expected a number"),
        (("config", "set", "llm.provider", "olama"), "did you mean 'ollama'"),
        (("config", "set", "llm.temprature", "1"), "did you mean 'llm.temperature'"),
        (("config", "get", "nope"), "unknown setting 'nope'"),
        (("config", "show", "--llm-provider", "bogus"), "flag --llm-provider"),
    ],
)
def test_bad_input_is_one_clear_message(stigmer_home: Path, args: tuple[str, ...], needle: str) -> None:
    path = stigmer_home / "config.yaml"
    path.write_text("llm:\n  model: keep:me\n")
    before = path.read_bytes()
    out = stigmer(*args)
    assert out.returncode == 2, out
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert path.read_bytes() == before


def test_malformed_file_fails_every_command_clearly_and_is_left_alone(stigmer_home: Path) -> None:
    path = stigmer_home / "config.yaml"
    path.write_text("llm: [\n")
    out = stigmer("config", "set", "llm.model", "x")
    assert out.returncode == 2 and "config.yaml" in out.stderr and "Traceback" not in out.stderr
    assert path.read_text() == "llm: [\n"


def test_path_and_version(stigmer_home: Path) -> None:
    assert stigmer("config", "path").stdout.strip() == str(stigmer_home / "config.yaml")
    assert stigmer("--version").stdout.strip().startswith("stigmer, version")


def test_help_has_examples_on_every_config_command() -> None:
    for sub in ("show", "get", "set", "unset"):
        out = stigmer("config", sub, "--help")
        assert out.returncode == 0 and "stigmer config" in out.stdout, sub


@pytest.mark.parametrize("args", [("--help",), ("config", "show")])
def test_cli_does_not_import_heavy_stacks(args: tuple[str, ...]) -> None:
    """`--help` and `config show` must answer instantly: no LangChain, Temporal or web stack."""
    code = (
        "import sys; from stigmer.cli.main import main\n"
        "try:\n    main(list(sys.argv[1:]))\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langchain_anthropic', 'langchain_openai', 'langchain_ollama', 'temporalio', "
        "'fastapi', 'uvicorn', 'httpx', 'starlette', 'pydantic')]\n"
        "print('HEAVY', sorted(set(m.split('.')[0] for m in heavy)), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False)
    assert "HEAVY []" in out.stderr, out.stderr


def test_secret_from_stdin_never_on_the_command_line(stigmer_home: Path) -> None:
    out = stigmer("config", "set", "llm.api_key", "-", input=SECRET + "\n")
    assert out.returncode == 0 and SECRET not in out.stdout + out.stderr
    assert "process list" not in out.stderr
    assert SECRET in (stigmer_home / "config.yaml").read_text()
    literal = stigmer("config", "set", "llm.api_key", SECRET)
    assert literal.returncode == 0 and "process list" in literal.stderr and SECRET not in literal.stderr
    empty = stigmer("config", "set", "llm.api_key", "-", input="\n")
    assert empty.returncode == 2 and "empty value" in empty.stderr
    assert SECRET in (stigmer_home / "config.yaml").read_text()
