"""``stigmer doctor``: each check says what is wrong and what to do; exit 1 only when something must be fixed."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.support.daemon_api import invoke
from tests.support.ports import free_port
from tests.support.scripted_provider import PLUGIN


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    monkeypatch.setenv("STIGMER_LLM_PROVIDER", "scripted")
    monkeypatch.setenv("STIGMER_LLM_MODEL", "script.json")
    for var, port in (("STIGMER_SERVER_PORT", free_port()), ("STIGMER_TEMPORAL_PORT", free_port()),
                      ("STIGMER_TEMPORAL_UI_PORT", free_port())):
        monkeypatch.setenv(var, str(port))


def checks(capsys: Any, *argv: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out, err = invoke(capsys, "doctor", "--json", *argv)
    assert "Traceback" not in err
    return code, {c["name"]: c for c in json.loads(out)}


def test_a_healthy_setup_with_the_daemon_down_passes_and_says_how_to_start(scripted: None, capsys: Any) -> None:
    code, report = checks(capsys)
    assert code == 0
    assert report["config"]["status"] == "ok"
    assert report["provider"]["detail"].startswith("scripted (from env: STIGMER_LLM_PROVIDER")
    assert report["model"]["status"] == "ok" and "tool calls: native" in report["model"]["detail"]
    assert report["daemon"]["status"] == "warn" and "stigmer local start" in report["daemon"]["fix"]
    assert report["ports"]["status"] == "ok"
    assert report["disk"]["status"] in ("ok", "warn")


def test_an_ollama_that_is_not_running_is_reported_with_what_to_do(capsys: Any, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setenv("STIGMER_LLM_PROVIDER", "ollama")
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    _code, report = checks(capsys)
    assert report["model"]["status"] in ("warn", "fail")
    assert "Ollama is not running" in report["model"]["detail"]
    assert "ollama serve" in report["model"]["fix"]


def test_a_missing_cloud_key_and_a_taken_port_fail_with_fixes(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_LLM_PROVIDER", "anthropic")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("STIGMER_SERVER_PORT", str(port))
        code, out, _ = invoke(capsys, "doctor")
    assert code == 1
    assert "✗ api key" in out and "set ANTHROPIC_API_KEY" in out
    assert f"in use by another program: {port} (server.port)" in out
    assert "STIGMER_SERVER_PORT" in out
    assert "problem(s) to fix" in out


def test_an_invalid_setting_is_named_and_nothing_crashes(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_LLM_TEMPERATURE", "9")
    code, report = checks(capsys)
    assert code == 1
    assert report["config"]["status"] == "fail" and "STIGMER_LLM_TEMPERATURE" in report["config"]["detail"]
